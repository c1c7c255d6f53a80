package fetch

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// The server's health as the requests see it (DESIGN.md, "Server
// unreachable while running"): one view for the whole process, shared by a
// Client and every client derived from it, told of every HTTP attempt and
// every token exchange, and, while a child runs (LogOutages), the only
// place that logs trouble with the server.
//
// The rules:
//
//   - Each outcome is one of: answered (any HTTP answer but a 5xx or a
//     429, so a 404 or a 403 is a server that works), unreachable (no
//     answer: refused, reset, timed out, a failed TLS handshake) or
//     answering with errors (5xx, 429).
//   - Requests are grouped by what they ask for (requestKind): the events
//     stream, secret reads (batch reads, reads, lists), leases (generate,
//     renew, revoke), certificates and the token endpoint.
//   - Trouble starts with the first failure. It is warned about once it
//     has lasted OutagePolicy.After while a kind that failed has not been
//     answered since (at that moment, or at the first failure after it),
//     then at most once every OutagePolicy.Every, at a failure, with the
//     count of failures so far. Every holds across troubles too: a new
//     trouble soon after one that was warned about waits for it. Before
//     that, failures are logged at debug only (with each attempt).
//   - Trouble is over once every kind that failed has been answered since
//     its last failure and nothing has failed for After: a renewal that
//     works says nothing about secret reads that fail, and a server that
//     fails 30% of requests is one trouble, not one per failure. A kind
//     not tried again for outageForget while others are answered (a
//     renewal that became a replacement, a revocation given up on) no
//     longer holds it open. The end is one line at info, saying how long
//     the trouble lasted (from the first failure to the answer that
//     cleared the last failing kind) when it was warned about, at debug
//     otherwise.
//
// Concurrency: every method takes the mutex; the logs are written under
// it, so that they come out in order. The one timer (time.AfterFunc) that
// warns when trouble reaches After and logs the end After later is
// armed only while trouble lasts and LogOutages is in force.

// Defaults of OutagePolicy.
const (
	DefaultOutageAfter = 10 * time.Second
	DefaultOutageEvery = time.Minute
)

// outageForget: a kind of request that failed and has not been tried
// again for this long, while others were answered, no longer holds the
// trouble open.
const outageForget = 5 * time.Minute

// OutagePolicy is when a client logs trouble with the server (see
// LogOutages). Zero fields take the defaults.
type OutagePolicy struct {
	// After: trouble is warned about once it has lasted this long, and
	// is over once nothing has failed for this long. 0: 10s.
	After time.Duration
	// Every: the least time between two warnings. 0: 1m.
	Every time.Duration
}

func (p OutagePolicy) withDefaults() OutagePolicy {
	if p.After <= 0 {
		p.After = DefaultOutageAfter
	}
	if p.Every <= 0 {
		p.Every = DefaultOutageEvery
	}
	return p
}

// outcome is what one exchange with the server says about its health.
type outcome uint8

const (
	answered    outcome = iota
	unreachable         // no answer
	erroring            // 5xx or 429
)

func (o outcome) String() string {
	if o == unreachable {
		return "unreachable"
	}
	return "answering with errors"
}

// IsUnreachable reports whether err is a request that got no answer from
// the server: a connection refused, reset or timed out, a failed TLS
// handshake. An answer, even a 503, is not, nor is an error that joins an
// answer with connections that failed: the server did answer.
func IsUnreachable(err error) bool { return outcomeOf(err) == unreachable }

// outcomeOf classifies a request's error (nil: answered).
func outcomeOf(err error) outcome {
	var ae *APIError
	var re *oauth2.RetrieveError
	var te *transportError
	var tlsErr *TLSError
	var ue *url.Error
	var ne net.Error
	switch {
	case err == nil:
		return answered
	case errors.As(err, &ae):
		return statusOutcome(ae.StatusCode)
	case errors.As(err, &re):
		return statusOutcome(retrieveStatus(re))
	case errors.As(err, &te), errors.As(err, &tlsErr), errors.As(err, &ue), errors.As(err, &ne),
		errors.Is(err, context.DeadlineExceeded):
		return unreachable
	}
	return answered // an answer that did not decode, or one too large: the server answered
}

func statusOutcome(status int) outcome {
	if status >= 500 || status == http.StatusTooManyRequests {
		return erroring
	}
	return answered
}

// requestKind groups a route's template by what it asks for.
func requestKind(pattern string) string {
	switch {
	case pattern == "/v1/events":
		return "events"
	case strings.HasPrefix(pattern, "/v1/secrets"):
		return "secrets"
	case strings.HasPrefix(pattern, "/v1/dynamic/"):
		return "leases"
	case strings.HasPrefix(pattern, "/v1/pki/"), strings.HasPrefix(pattern, "/v1/acme/"):
		return "certificates"
	}
	return pattern
}

// kindToken is the token endpoint's kind (client credentials).
const kindToken = "token"

// health is the shared view; the zero value is not usable (newHealth).
type health struct {
	mu     sync.Mutex
	policy OutagePolicy
	log    *slog.Logger
	on     uint64 // the LogOutages in force; 0: none, nothing is tracked
	gen    uint64
	timer  *time.Timer

	// The current trouble; since is zero when there is none.
	failing  map[string]time.Time // kind → its last failure
	since    time.Time
	lastFail time.Time
	cleared  time.Time // when failing last became empty; zero while not
	failures int
	last     outcome // of the last failure
	lastErr  error
	status   int // of the last failure, 0 when unreachable
	warned   bool
	warnedAs outcome
	lastWarn time.Time // kept from one trouble to the next
}

func newHealth(p OutagePolicy, log *slog.Logger) *health {
	return &health{policy: p.withDefaults(), log: log, failing: map[string]time.Time{}}
}

// LogOutages makes the client, and every client derived from it, log the
// server's health from now on, by the rules of health.go (DESIGN.md:
// warn once trouble has lasted past a threshold, then at most once a
// minute with a count, one line when it is over), starting from a server
// that works. Call it when the child starts: the start-up gate logs each
// of its attempts itself. stop ends it; what is in progress then is not
// logged.
func (c *Client) LogOutages() (stop func()) {
	h := c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	gen := h.gen
	h.on = gen
	h.reset()
	h.lastWarn = time.Time{}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.on == gen {
			h.on = 0
			h.reset()
		}
	}
}

// reset forgets the current trouble. h.mu is held.
func (h *health) reset() {
	if h.timer != nil {
		h.timer.Stop()
	}
	clear(h.failing)
	h.since, h.lastFail, h.cleared = time.Time{}, time.Time{}, time.Time{}
	h.failures, h.lastErr, h.status, h.warned = 0, nil, 0, false
}

// attempt reports one HTTP attempt on the route pattern: its status, or
// err when no answer came. A context that ended is no report (the caller
// gave up, the server did not fail).
func (h *health) attempt(ctx context.Context, pattern string, status int, err error) {
	if h == nil || ctx.Err() != nil {
		return
	}
	oc := statusOutcome(status)
	if err != nil {
		oc = outcomeOf(err)
	}
	h.report(requestKind(pattern), oc, status, err)
}

// exchange reports one token exchange.
func (h *health) exchange(ctx context.Context, err error) {
	if h == nil || ctx.Err() != nil {
		return
	}
	status := 0
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status = retrieveStatus(re)
	}
	h.report(kindToken, outcomeOf(err), status, err)
}

func (h *health) report(kind string, oc outcome, status int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.on == 0 {
		return
	}
	now := time.Now()
	if oc == answered {
		h.answered(kind, now)
		return
	}
	if h.since.IsZero() {
		h.since = now
	}
	h.failing[kind] = now
	h.cleared = time.Time{}
	h.failures++
	h.lastFail, h.last, h.lastErr, h.status = now, oc, err, status
	if oc == unreachable {
		h.status = 0
	}
	h.warnOrArm(now)
}

// warnOrArm warns when it is due, and else, before the first warning of
// the trouble, arms the timer for when it is (later warnings come with
// failures only). h.mu is held and failing is not empty.
func (h *health) warnOrArm(now time.Time) {
	due := h.warn(now)
	switch {
	case !h.warned:
		h.arm(due.Sub(now))
	case h.timer != nil:
		h.timer.Stop()
	}
}

// answered notes an answer of kind. h.mu is held.
func (h *health) answered(kind string, now time.Time) {
	if h.since.IsZero() {
		return
	}
	delete(h.failing, kind)
	for k, at := range h.failing {
		if now.Sub(at) >= outageForget {
			delete(h.failing, k)
			h.log.Debug("scaivault trouble: a kind of request not tried again is no longer counted", "kind", k, "failed", dur(now.Sub(at)))
		}
	}
	if len(h.failing) == 0 && h.cleared.IsZero() {
		h.cleared = now
		h.arm(h.lastFail.Add(h.policy.After).Sub(now))
	}
}

// warn logs the trouble when it is due: the first time once it has lasted
// After, then at most once every Every (since the last warning, of this
// trouble or of one before). It returns when a warning is due when none
// was logged. h.mu is held and failing is not empty.
func (h *health) warn(now time.Time) (due time.Time) {
	due = h.since.Add(h.policy.After)
	if !h.lastWarn.IsZero() && h.lastWarn.Add(h.policy.Every).After(due) {
		due = h.lastWarn.Add(h.policy.Every)
	}
	if now.Before(due) {
		return due
	}
	msg := "scaivault " + h.last.String() + "; the child keeps running on what it has"
	if h.warned && h.warnedAs == h.last {
		msg = "scaivault still " + h.last.String()
	}
	attrs := []any{"for", dur(now.Sub(h.since)), "failures", h.failures, "failing", strings.Join(slices.Sorted(maps.Keys(h.failing)), ",")}
	if h.status != 0 {
		attrs = append(attrs, "status", h.status)
	}
	attrs = append(attrs, "error", h.lastErr)
	h.log.Warn(msg, attrs...)
	h.warned, h.warnedAs, h.lastWarn = true, h.last, now
	return time.Time{}
}

// arm sets the timer to fire in d.
func (h *health) arm(d time.Duration) {
	d = max(d, 0)
	if h.timer == nil {
		h.timer = time.AfterFunc(d, h.fire)
		return
	}
	h.timer.Reset(d)
}

// fire: the trouble has lasted After (warn when a kind still fails), or
// nothing has failed for After since every kind was answered (the end).
func (h *health) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.on == 0 || h.since.IsZero() {
		return
	}
	now := time.Now()
	if len(h.failing) > 0 {
		h.warnOrArm(now)
		return
	}
	if quiet := now.Sub(h.lastFail); quiet < h.policy.After {
		h.arm(h.policy.After - quiet)
		return
	}
	level := slog.LevelDebug
	if h.warned {
		level = slog.LevelInfo
	}
	h.log.Log(context.Background(), level, "scaivault answering normally again",
		"after", dur(h.cleared.Sub(h.since)), "failures", h.failures)
	h.reset()
}

// dur rounds a duration for the log: to the millisecond below a second,
// to the tenth of a second above.
func dur(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
