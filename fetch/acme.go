package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// ACME certificates (DESIGN.md "ACME certificates"). ScaiVault runs the
// ACME protocol with the public CA; the client sees accounts and orders.
// Public CAs rate-limit issuance (Let's Encrypt: 5 duplicate certificates
// a week), so an order is reused whenever one can be: a certificate is
// ordered only when the account has no valid, pending or processing order
// for exactly those domains, and never again while a failed one is recent.

// ACMERetryInvalidAfter is how old the newest failed (invalid) order for a
// set of domains must be before ObtainACME places a new one: until then it
// reports that order's failure. A launcher in a crash loop with a broken
// DNS record then costs the CA one failed validation per 15 minutes, not
// one per start (Let's Encrypt allows 5 failed validations per hostname an
// hour).
const ACMERetryInvalidAfter = 15 * time.Minute

// Bounds of ObtainACME's wait for a pending order.
const (
	acmeMaxWait   = 10 * time.Minute       // one wait, whatever ctx allows
	acmePollFirst = 250 * time.Millisecond // the first wait between reads
	acmePollMax   = 5 * time.Second
	acmeValidRead = 3 // valid orders read in full at most, newest first
)

// ErrOrderInvalid matches an ACME order that failed (ACMEOrderError);
// ErrOrderNotReady one still pending or processing when the wait ended.
var (
	ErrOrderInvalid  = errors.New("ACME order invalid")
	ErrOrderNotReady = errors.New("ACME order not ready")
)

// ACMEOrderError is an order that failed: its id, its domains and the
// server's reason. Hold, when set, says it is an earlier order found at
// start, Age old, and that no new one is placed before it is Hold old.
type ACMEOrderError struct {
	OrderID string
	Domains []string
	Reason  string
	Age     time.Duration
	Hold    time.Duration
}

func (e *ACMEOrderError) Error() string {
	s := fmt.Sprintf("ACME order %s for %s is invalid: %s", e.OrderID, strings.Join(e.Domains, ", "), e.Reason)
	if e.Hold > 0 {
		s += fmt.Sprintf(" (it failed %s ago; a new order is placed once the failed one is %s old, to stay within the CA's rate limits)",
			e.Age.Round(time.Second), e.Hold)
	}
	return s
}

// Is matches ErrOrderInvalid.
func (e *ACMEOrderError) Is(target error) bool { return target == ErrOrderInvalid }

// orderWaitError is an order still pending when the wait ended; it
// unwraps to the context's error.
type orderWaitError struct {
	id, status string
	domains    []string
	err        error
}

func (e *orderWaitError) Error() string {
	return fmt.Sprintf("ACME order %s for %s is still %s: %v", e.id, strings.Join(e.domains, ", "), e.status, e.err)
}
func (e *orderWaitError) Unwrap() error        { return e.err }
func (e *orderWaitError) Is(target error) bool { return target == ErrOrderNotReady }

// ACMEAccounts lists the ACME accounts this identity may use.
func (c *Client) ACMEAccounts(ctx context.Context) ([]ACMEAccount, error) {
	cl := &call{method: http.MethodGet, route: "/v1/acme/accounts", pattern: "/v1/acme/accounts"}
	var list ACMEAccountList
	if err := c.getJSON(ctx, cl, &list); err != nil {
		return nil, fmt.Errorf("list ACME accounts: %w", err)
	}
	return list.Data, nil
}

// ACMEOrders lists the orders of an account (status "" for every status),
// without their certificates.
func (c *Client) ACMEOrders(ctx context.Context, accountID, status string) ([]ACMEOrder, error) {
	op := fmt.Sprintf("list ACME orders of account %q", accountID)
	if err := checkName("account id", accountID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	q := url.Values{"account_id": {accountID}}
	if status != "" {
		q.Set("status", status)
	}
	cl := &call{method: http.MethodGet, route: "/v1/acme/orders", pattern: "/v1/acme/orders", query: q}
	var list ACMEOrderList
	if err := c.getJSON(ctx, cl, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return list.Data, nil
}

// ACMEOrder reads an order, with its certificate once it is valid.
func (c *Client) ACMEOrder(ctx context.Context, id string) (*ACMEOrder, error) {
	op := fmt.Sprintf("read ACME order %q", id)
	if err := checkName("order id", id); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl := &call{method: http.MethodGet, route: "/v1/acme/orders/" + url.PathEscape(id), pattern: "/v1/acme/orders/{id}"}
	var o ACMEOrder
	if err := c.getJSON(ctx, cl, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkOrder(&o, true); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if o.ID != id {
		return nil, fmt.Errorf("%s: decode answer: the answer is order %q", op, o.ID)
	}
	return &o, nil
}

// CreateACMEOrder places an order. It creates something, so it is retried
// only where the server cannot have acted (429, 503, nothing written); an
// order whose answer was lost is found again by the next ObtainACME.
func (c *Client) CreateACMEOrder(ctx context.Context, req ACMEOrderRequest) (*ACMEOrder, error) {
	op := fmt.Sprintf("create ACME order for %s", strings.Join(req.Domains, ", "))
	if err := checkName("account id", req.AccountID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl := &call{method: http.MethodPost, route: "/v1/acme/orders", pattern: "/v1/acme/orders", body: req, creates: true}
	var o ACMEOrder
	if err := c.getJSON(ctx, cl, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkOrder(&o, true); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &o, nil
}

// ACMEState is what the server holds for one account and set of domains.
type ACMEState struct {
	Account ACMEAccount
	// Valid is the newest valid order whose certificate has not ended,
	// read in full; Pending the newest pending or processing one; Invalid
	// the newest failed one. Any may be nil.
	Valid, Pending, Invalid *ACMEOrder
	// Newest is the order placed last, whatever its status (nil: none).
	Newest *ACMEOrder
}

// HeldOff is, when the newest order is a failed one younger than
// ACMERetryInvalidAfter, its failure (an *ACMEOrderError with Hold set):
// no new order is placed for the domains yet. Otherwise nil.
func (st *ACMEState) HeldOff(domains []string) error {
	if st.Valid != nil || st.Pending != nil || st.Invalid == nil {
		return nil
	}
	age := time.Since(st.Invalid.CreatedAt)
	if age >= ACMERetryInvalidAfter {
		return nil
	}
	e := orderFailed(st.Invalid, domains)
	e.Age, e.Hold = max(age, 0), ACMERetryInvalidAfter
	return e
}

// LookupACME finds the account named account and its orders for exactly
// domains (canonical: CanonicalDomains), creating nothing. An account this
// identity cannot see is an error matching ErrNotFound.
func (c *Client) LookupACME(ctx context.Context, account string, domains []string) (*ACMEState, error) {
	op := fmt.Sprintf("look up ACME orders of account %q for %s", account, strings.Join(domains, ", "))
	accounts, err := c.ACMEAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	i := slices.IndexFunc(accounts, func(a ACMEAccount) bool { return a.Name == account })
	if i < 0 {
		return nil, fmt.Errorf("%s: %w: no ACME account %q that this identity may use", op, ErrNotFound, account)
	}
	st := &ACMEState{Account: accounts[i]}
	list, err := c.ACMEOrders(ctx, st.Account.ID, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var valid []*ACMEOrder
	for i := range list {
		o := &list[i]
		if !sameDomains(o.Domains, domains) {
			continue
		}
		if err := checkOrder(o, false); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if st.Newest == nil || o.CreatedAt.After(st.Newest.CreatedAt) {
			st.Newest = o
		}
		switch o.Status {
		case OrderValid:
			valid = append(valid, o)
		case OrderPending, OrderProcessing:
			st.Pending = newerOrder(st.Pending, o)
		case OrderInvalid:
			st.Invalid = newerOrder(st.Invalid, o)
		}
	}
	slices.SortStableFunc(valid, func(a, b *ACMEOrder) int { return orderTime(b).Compare(orderTime(a)) })
	for _, o := range valid[:min(len(valid), acmeValidRead)] {
		full, err := c.ACMEOrder(ctx, o.ID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if full.Status == OrderValid && sameDomains(full.Domains, domains) && time.Now().Before(full.Certificate.ExpiresAt) {
			st.Valid = full
			break
		}
	}
	return st, nil
}

// ObtainACME gives the certificate of an order of account for exactly
// domains (canonical), ordering one only when there is none to use: a
// valid order whose certificate has not ended is used; a pending or
// processing one is waited for; a failed one younger than
// ACMERetryInvalidAfter is its error (ErrOrderInvalid); else an order is
// placed, with auto_renew, and waited for. The wait ends with ctx, and
// after 10 minutes at most (ErrOrderNotReady). created says whether this
// call placed the order. Calls for one account and set of domains run one
// at a time, so that two references never both place one.
func (c *Client) ObtainACME(ctx context.Context, account string, domains []string, challenge string) (o *ACMEOrder, created bool, err error) {
	unlock, err := c.orders.lock(ctx, account+"\x00"+strings.Join(domains, ","))
	if err != nil {
		return nil, false, fmt.Errorf("ACME order of account %q for %s: %w", account, strings.Join(domains, ", "), err)
	}
	defer unlock()
	st, err := c.LookupACME(ctx, account, domains)
	if err != nil {
		return nil, false, err
	}
	held := st.HeldOff(domains) // once: it reads the clock
	switch {
	case st.Valid != nil:
		return st.Valid, false, nil
	case st.Pending != nil:
		o = st.Pending
		c.log.Info("waiting for a pending ACME order", "order", o.ID, "account", account, "domains", strings.Join(domains, ","))
	case held != nil:
		return nil, false, held
	case st.Newest != nil && time.Since(st.Newest.CreatedAt) < ACMERetryInvalidAfter:
		// A valid order placed minutes ago whose certificate has ended by
		// our clock: a clock ahead, or a stale answer. Ordering again at
		// every start is the rate-limit trap; say what to check instead.
		return nil, false, fmt.Errorf("ACME order %s for %s was placed %s ago and is %s, but no certificate of it is valid by this machine's clock (%s): check this machine's clock; no new order is placed for these names until the last one is %s old, to stay within the CA's rate limits",
			st.Newest.ID, strings.Join(domains, ", "), time.Since(st.Newest.CreatedAt).Round(time.Second), st.Newest.Status, time.Now().UTC().Format(time.RFC3339), ACMERetryInvalidAfter)
	default:
		req := ACMEOrderRequest{AccountID: st.Account.ID, Domains: domains, ChallengeType: challenge, AutoRenew: true}
		if o, err = c.CreateACMEOrder(ctx, req); err != nil {
			return nil, false, err
		}
		created = true
		c.log.Info("ACME order created", "order", o.ID, "account", account, "domains", strings.Join(domains, ","), "status", o.Status)
	}
	o, err = c.waitOrder(ctx, o, domains)
	return o, created, err
}

// waitOrder reads o again until it is valid or invalid, with a growing
// pause, until ctx ends (or acmeMaxWait has passed).
func (c *Client) waitOrder(ctx context.Context, o *ACMEOrder, domains []string) (*ACMEOrder, error) {
	ctx, cancel := context.WithTimeout(ctx, acmeMaxWait)
	defer cancel()
	for n := 1; ; n++ {
		switch o.Status {
		case OrderValid:
			if !time.Now().Before(o.Certificate.ExpiresAt) {
				return nil, fmt.Errorf("ACME order %s for %s is valid, but its certificate ended at %s by this machine's clock (%s): check this machine's clock", o.ID, strings.Join(domains, ", "), o.Certificate.ExpiresAt.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
			}
			return o, nil
		case OrderInvalid:
			return nil, orderFailed(o, domains)
		}
		t := time.NewTimer(Backoff(n, acmePollFirst, 1.5, acmePollMax, 0.5))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &orderWaitError{id: o.ID, status: o.Status, domains: domains, err: ctx.Err()}
		case <-t.C:
		}
		next, err := c.ACMEOrder(ctx, o.ID)
		if err != nil {
			return nil, err
		}
		if !sameDomains(next.Domains, domains) {
			return nil, fmt.Errorf("read ACME order %q: decode answer: it is for other domains", o.ID)
		}
		o = next
	}
}

// orderFailed is the error of an invalid order.
func orderFailed(o *ACMEOrder, domains []string) *ACMEOrderError {
	reason := "the server gave no reason"
	if o.Error != nil {
		reason = strings.TrimSpace(strings.ReplaceAll(o.Error.Code, "_", " ") + ": " + o.Error.Message)
	}
	return &ACMEOrderError{OrderID: o.ID, Domains: domains, Reason: clip(reason, 300)}
}

// CertOf is the certificate of a valid order, as a snapshot holds it: a
// copy that names its order.
func CertOf(o *ACMEOrder) *Cert {
	c := *o.Certificate
	c.CAChain = slices.Clone(c.CAChain)
	c.OrderID = o.ID
	return &c
}

// checkOrder checks an order answer: an id usable in a URL and a log, a
// known status, and, for a full answer of a valid order, a certificate
// with its key and expiry.
func checkOrder(o *ACMEOrder, full bool) error {
	if err := validateSegment(o.ID); err != nil || len(o.ID) > 200 {
		return errors.New("decode answer: order without a usable id")
	}
	switch o.Status {
	case OrderPending, OrderProcessing, OrderInvalid:
	case OrderValid:
		if !full {
			return nil
		}
		if o.Certificate == nil {
			return fmt.Errorf("decode answer: valid order %s without a certificate", o.ID)
		}
		if err := checkCert(o.Certificate); err != nil {
			return fmt.Errorf("order %s: %w", o.ID, err)
		}
	default:
		return fmt.Errorf("decode answer: order %s has unknown status %q", o.ID, clip(o.Status, 40))
	}
	return nil
}

// sameDomains reports whether an order's domains are exactly want
// (canonical), in any order and case.
func sameDomains(got, want []string) bool {
	c, err := CanonicalDomains(got)
	return err == nil && slices.Equal(c, want)
}

// orderTime is when an order last got a certificate (or was placed).
func orderTime(o *ACMEOrder) time.Time {
	if o.RenewedAt != nil && o.RenewedAt.After(o.CreatedAt) {
		return *o.RenewedAt
	}
	return o.CreatedAt
}

func newerOrder(a, b *ACMEOrder) *ACMEOrder {
	if a == nil || orderTime(b).After(orderTime(a)) {
		return b
	}
	return a
}

// clip shortens a server's text for an error.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// orderLocks serializes work per key; a waiter gives up when its ctx ends.
type orderLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func (l *orderLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		l.mu.Lock()
		if l.held == nil {
			l.held = map[string]chan struct{}{}
		}
		busy, ok := l.held[key]
		if !ok {
			done := make(chan struct{})
			l.held[key] = done
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.held, key)
				l.mu.Unlock()
				close(done)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
