package devserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// ACME, simulated without any network (scaivault-api.md "ACME"): accounts
// come from the seed; an order goes pending → processing (at half of the
// ACME delay) → valid (after the delay) with a certificate of the dev ACME
// CA, or invalid when it names one of the account's fail_domains; an order
// with auto_renew gets a new certificate at two thirds of the old one's
// life, and an acme.renewed event. The sweeper moves orders on time, and
// every handler moves them first, so an answer never lags the clock.

// DefaultACMEDelay is Options.ACMEDelay's default.
const DefaultACMEDelay = time.Second

// defaultCertTTL is an account's cert_ttl by default: 90 days, as Let's
// Encrypt's certificates last.
const defaultCertTTL = 2160 * time.Hour

// acmeRenewShare is the share of a certificate's life after which an
// order with auto_renew is renewed.
const acmeRenewShare = 2.0 / 3

type acmeAccountConfig struct {
	id, name, provider, environment, email string
	certTTL                                time.Duration
	fail                                   map[string]bool
}

// resource is what the acme permission is matched against.
func (a *acmeAccountConfig) resource() string { return "acme/" + a.name }

func compileACME(c *seedChecker, accounts map[string]SeedACMEAccount) (byName, byID map[string]*acmeAccountConfig) {
	byName = make(map[string]*acmeAccountConfig, len(accounts))
	byID = make(map[string]*acmeAccountConfig, len(accounts))
	for _, name := range sortedKeys(accounts) {
		a := accounts[name]
		field := "acme.accounts." + name
		c.segment(field, name)
		sum := sha256.Sum256([]byte(name))
		ac := &acmeAccountConfig{
			id: "acct_" + hex.EncodeToString(sum[:8]), name: name,
			provider: orText(a.Provider, "letsencrypt"), environment: orText(a.Environment, "staging"), email: a.Email,
			certTTL: c.duration(field+".cert_ttl", a.CertTTL, defaultCertTTL), fail: map[string]bool{},
		}
		for i, d := range a.FailDomains {
			if err := checkOrderDomain(strings.ToLower(d)); err != nil {
				c.fail(fmt.Sprintf("%s.fail_domains[%d]", field, i), "%q is not a DNS name: %v", d, err)
			}
			ac.fail[strings.ToLower(d)] = true
		}
		byName[name], byID[ac.id] = ac, ac
	}
	return byName, byID
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkOrderDomain accepts a DNS name, or "*." and one (a wildcard).
func checkOrderDomain(d string) error {
	return checkHostname(strings.TrimPrefix(d, "*."))
}

// acmeOrder is an order. The JSON tags are its saved form.
type acmeOrder struct {
	ID        string          `json:"id"`
	AccountID string          `json:"account_id"`
	Domains   []string        `json:"domains"`
	Status    string          `json:"status"`
	Challenge string          `json:"challenge_type"`
	AutoRenew bool            `json:"auto_renew"`
	Error     *fetch.ErrorRef `json:"error,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	RenewedAt *time.Time      `json:"renewed_at,omitempty"`
	ReadyAt   time.Time       `json:"ready_at"` // when it turns valid or invalid
	Cert      *fetch.Cert     `json:"certificate,omitempty"`

	keys []string // every private key it handed out (SecretValues); not saved
}

// wire is the order as the API answers it; the list leaves out the
// certificate.
func (o *acmeOrder) wire(withCert bool) *fetch.ACMEOrder {
	w := &fetch.ACMEOrder{
		ID: o.ID, AccountID: o.AccountID, Domains: slices.Clone(o.Domains), Status: o.Status,
		ChallengeType: o.Challenge, AutoRenew: o.AutoRenew, Error: o.Error, CreatedAt: o.CreatedAt, RenewedAt: o.RenewedAt,
	}
	if withCert {
		w.Certificate = o.Cert
	}
	return w
}

// renewAt is when an order with auto_renew gets its next certificate.
func (o *acmeOrder) renewAt() time.Time {
	life := o.Cert.ExpiresAt.Sub(o.Cert.IssuedAt)
	return o.Cert.IssuedAt.Add(time.Duration(float64(life) * acmeRenewShare))
}

func newACMECA(now time.Time) (*caCert, error) {
	return newCA(now, "ScaiVault Dev ACME CA", 10*365*24*time.Hour, nil)
}

// advanceACMELocked moves every order on to now and returns when the next
// one moves (zero: none will) and whether any changed.
func (s *Server) advanceACMELocked(now time.Time) (next time.Time, changed bool) {
	for _, id := range sortedKeys(s.orders) {
		o := s.orders[id]
		acct := s.cfg.acmeByID[o.AccountID]
		if acct == nil {
			continue
		}
		if s.settleLocked(o, acct, now) {
			changed = true
		}
		var due time.Time
		switch {
		case o.Status == fetch.OrderPending:
			due = o.CreatedAt.Add(s.acmeDelay / 2)
		case o.Status == fetch.OrderProcessing:
			due = o.ReadyAt
		case o.Status == fetch.OrderValid && o.AutoRenew:
			due = o.renewAt()
		default:
			continue
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next, changed
}

// settleLocked moves one order on to now.
func (s *Server) settleLocked(o *acmeOrder, acct *acmeAccountConfig, now time.Time) bool {
	switch {
	case o.Status == fetch.OrderPending && !now.Before(o.CreatedAt.Add(s.acmeDelay/2)) && now.Before(o.ReadyAt):
		o.Status = fetch.OrderProcessing
	case (o.Status == fetch.OrderPending || o.Status == fetch.OrderProcessing) && !now.Before(o.ReadyAt):
		for _, d := range o.Domains {
			if acct.fail[strings.TrimPrefix(d, "*.")] || acct.fail[d] {
				o.Status = fetch.OrderInvalid
				o.Error = &fetch.ErrorRef{Code: "unauthorized",
					Message: fmt.Sprintf("%s challenge for %s failed (the dev server fails the fail_domains of account %s)", o.Challenge, d, acct.name)}
				return true
			}
		}
		if err := s.issueACMELocked(o, acct, now); err != nil {
			s.logger.Error("acme: issue certificate", "order", o.ID, "error", err)
			return false
		}
		o.Status = fetch.OrderValid
	case o.Status == fetch.OrderValid && o.AutoRenew && !now.Before(o.renewAt()):
		s.renewLocked(o, acct, now)
	default:
		return false
	}
	return true
}

// renewLocked gives a valid order a new certificate now, as ScaiVault's
// renewal does, and sends acme.renewed.
func (s *Server) renewLocked(o *acmeOrder, acct *acmeAccountConfig, now time.Time) {
	if err := s.issueACMELocked(o, acct, now); err != nil {
		s.logger.Error("acme: renew certificate", "order", o.ID, "error", err)
		return
	}
	at := now
	o.RenewedAt = &at
	s.hub.publish(fetch.EventACMERenewed, fetch.EventData{OrderID: o.ID, AccountID: o.AccountID, At: now})
}

// issueACMELocked signs a certificate for the order's names from the dev
// ACME CA: the first name is the common name, all of them are DNS SANs.
func (s *Server) issueACMELocked(o *acmeOrder, acct *acmeAccountConfig, now time.Time) error {
	key, err := generateKey("ec", 256)
	if err != nil {
		return err
	}
	ca := s.acmeCA
	notAfter := now.Add(acct.certTTL).Truncate(time.Second)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	serial := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: strings.TrimPrefix(o.Domains[0], "*.")},
		DNSNames:  o.Domains,
		NotBefore: now.Add(-30 * time.Second).Truncate(time.Second), NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	o.Cert = &fetch.Cert{
		SerialNumber: colonHex(serial), CertificatePEM: pemString("CERTIFICATE", der),
		PrivateKeyPEM: pemString("PRIVATE KEY", keyDER), CAChain: []string{ca.pem},
		CAID: ca.id, IssuedAt: now, ExpiresAt: notAfter,
	}
	o.keys = append(o.keys, o.Cert.PrivateKeyPEM)
	return nil
}

func (s *Server) handleACMEAccounts(c *call) *apiError {
	out := fetch.ACMEAccountList{Data: []fetch.ACMEAccount{}}
	for _, name := range sortedKeys(s.cfg.acme) {
		a := s.cfg.acme[name]
		if c.who.can(permACME, a.resource()) {
			out.Data = append(out.Data, fetch.ACMEAccount{ID: a.id, Name: a.name, Provider: a.provider, Environment: a.environment, Email: a.email})
		}
	}
	c.json(http.StatusOK, out)
	return nil
}

// account is the account of an account id the caller may use.
func (s *Server) account(c *call, id string) (*acmeAccountConfig, *apiError) {
	a := s.cfg.acmeByID[id]
	if a == nil {
		return nil, errNotFound("ACME account %s not found", id)
	}
	if !c.who.can(permACME, a.resource()) {
		return nil, errDenied("acme", a.resource())
	}
	return a, nil
}

func (s *Server) handleCreateOrder(c *call) *apiError {
	var req fetch.ACMEOrderRequest
	if aerr := c.decode(&req, false); aerr != nil {
		return aerr
	}
	if req.AccountID == "" {
		return errValidation("account_id: required")
	}
	acct, aerr := s.account(c, req.AccountID)
	if aerr != nil {
		return aerr
	}
	domains, aerr := orderDomains(req)
	if aerr != nil {
		return aerr
	}
	challenge := orText(req.ChallengeType, fetch.ChallengeHTTP01)
	switch challenge {
	case fetch.ChallengeHTTP01, fetch.ChallengeDNS01, fetch.ChallengeTLSALPN01:
	default:
		return errValidation("challenge_type %q: want http-01, dns-01 or tls-alpn-01", req.ChallengeType)
	}
	for _, d := range domains {
		if strings.HasPrefix(d, "*.") && challenge != fetch.ChallengeDNS01 {
			return errValidation("domains: the wildcard %s needs challenge_type dns-01", d)
		}
	}
	now := s.now()
	o := &acmeOrder{ID: "ord_" + randomHex(8), AccountID: acct.id, Domains: domains, Status: fetch.OrderPending,
		Challenge: challenge, AutoRenew: req.AutoRenew, CreatedAt: now, ReadyAt: now.Add(s.acmeDelay)}
	s.mu.Lock()
	s.orders[o.ID] = o
	w := o.wire(true)
	s.mu.Unlock()
	s.kick()
	return s.saved(c, http.StatusCreated, w)
}

// orderDomains checks an order's names: lower case, duplicates dropped,
// in the order given.
func orderDomains(req fetch.ACMEOrderRequest) ([]string, *apiError) {
	if len(req.Domains) == 0 {
		return nil, errValidation("domains: required (at least one name)")
	}
	if len(req.Domains) > fetch.MaxACMEDomains {
		return nil, errValidation("domains: %d names, at most %d", len(req.Domains), fetch.MaxACMEDomains)
	}
	var out []string
	for i, d := range req.Domains {
		d = strings.ToLower(d)
		if err := checkOrderDomain(d); err != nil {
			return nil, errValidation("domains[%d]: %q is not a DNS name: %v", i, d, err)
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *Server) handleListOrders(c *call) *apiError {
	q, aerr := c.query()
	if aerr != nil {
		return aerr
	}
	accountID, status := q.Get("account_id"), q.Get("status")
	switch status {
	case "", fetch.OrderPending, fetch.OrderProcessing, fetch.OrderValid, fetch.OrderInvalid:
	default:
		return errValidation("status %q: want pending, processing, valid or invalid", status)
	}
	if accountID != "" {
		if _, aerr := s.account(c, accountID); aerr != nil {
			return aerr
		}
	}
	s.mu.Lock()
	_, changed := s.advanceACMELocked(s.now())
	var list []*acmeOrder
	for _, o := range s.orders {
		acct := s.cfg.acmeByID[o.AccountID]
		if acct == nil || (accountID != "" && o.AccountID != accountID) || (status != "" && o.Status != status) ||
			!c.who.can(permACME, acct.resource()) {
			continue
		}
		list = append(list, o)
	}
	slices.SortFunc(list, func(a, b *acmeOrder) int {
		if n := a.CreatedAt.Compare(b.CreatedAt); n != 0 {
			return n
		}
		return strings.Compare(a.ID, b.ID)
	})
	out := fetch.ACMEOrderList{Data: []fetch.ACMEOrder{}}
	for _, o := range list {
		out.Data = append(out.Data, *o.wire(false))
	}
	s.mu.Unlock()
	return s.answerAdvanced(c, changed, out)
}

// answerAdvanced answers v, saving the state first when moving the orders
// on changed it.
func (s *Server) answerAdvanced(c *call, changed bool, v any) *apiError {
	if changed {
		return s.saved(c, http.StatusOK, v)
	}
	c.json(http.StatusOK, v)
	return nil
}

// order is the order of the route's {id}, moved on to now, which the
// caller may see; the caller holds s.mu.
func (s *Server) orderLocked(c *call) (*acmeOrder, *acmeAccountConfig, bool, *apiError) {
	id, aerr := c.name(0, "order id")
	if aerr != nil {
		return nil, nil, false, aerr
	}
	_, changed := s.advanceACMELocked(s.now())
	o := s.orders[id]
	if o == nil || s.cfg.acmeByID[o.AccountID] == nil {
		return nil, nil, changed, errNotFound("ACME order %s not found", id)
	}
	acct := s.cfg.acmeByID[o.AccountID]
	if !c.who.can(permACME, acct.resource()) {
		return nil, nil, changed, errDenied("acme", acct.resource())
	}
	return o, acct, changed, nil
}

func (s *Server) handleReadOrder(c *call) *apiError {
	s.mu.Lock()
	o, _, changed, aerr := s.orderLocked(c)
	var w *fetch.ACMEOrder
	if aerr == nil {
		w = o.wire(true)
	}
	s.mu.Unlock()
	if aerr != nil {
		if changed {
			s.persist()
		}
		return aerr
	}
	return s.answerAdvanced(c, changed, w)
}

// handleRenewOrder is POST /v1/dev/acme/orders/{id}/renew: renew a valid
// order now, as ScaiVault does at two thirds of its certificate's life.
func (s *Server) handleRenewOrder(c *call) *apiError {
	s.mu.Lock()
	o, acct, _, aerr := s.orderLocked(c)
	if aerr == nil && o.Status != fetch.OrderValid {
		aerr = errConflict("ACME order %s is %s, not valid", o.ID, o.Status)
	}
	var w *fetch.ACMEOrder
	if aerr == nil {
		s.renewLocked(o, acct, s.now())
		w = o.wire(true)
	}
	s.mu.Unlock()
	if aerr != nil {
		return aerr
	}
	s.kick()
	return s.saved(c, http.StatusOK, w)
}

// ACMEOrders is the number of ACME orders placed with the account (every
// account for ""), whatever their status: what a test counts to see that
// restarts reuse an order.
func (s *Server) ACMEOrders(account string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.orders {
		if a := s.cfg.acmeByID[o.AccountID]; a != nil && (account == "" || a.name == account) {
			n++
		}
	}
	return n
}

// RenewACMEOrders renews every valid order of the account (every account
// for "") now, with an acme.renewed event each, and returns how many.
func (s *Server) RenewACMEOrders(account string) int {
	s.mu.Lock()
	now := s.now()
	s.advanceACMELocked(now)
	n := 0
	for _, id := range sortedKeys(s.orders) {
		o := s.orders[id]
		a := s.cfg.acmeByID[o.AccountID]
		if a != nil && o.Status == fetch.OrderValid && (account == "" || a.name == account) {
			s.renewLocked(o, a, now)
			n++
		}
	}
	s.mu.Unlock()
	s.kick()
	if err := s.persist(); err != nil {
		s.logger.Error("save state after ACME renewals", "error", err)
	}
	return n
}

// ACMECAPEM is the dev ACME CA's certificate (also GET /v1/pki/cas/acme/pem).
func (s *Server) ACMECAPEM() string { return s.acmeCA.pem }
