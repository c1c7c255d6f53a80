package fetch_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

const readRoute = "GET /v1/secrets/{path}"

func TestRetryThenSuccess(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	h.srv.SetFaults(devserver.Faults{Next: 2})
	s, err := c.Read(ctxT(t), "app/db", fetch.ReadOptions{})
	if err != nil || s.Version != 1 {
		t.Fatalf("read: %v", err)
	}
	if n := h.srv.Requests(readRoute); n != 3 {
		t.Errorf("%d requests, want 3 (two 503s, then success)", n)
	}
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	h.srv.SetFaults(devserver.Faults{Next: 10, Status: http.StatusInternalServerError})
	_, err := c.Read(ctxT(t), "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrUnavailable)
	if n := h.srv.Requests(readRoute); n != 4 {
		t.Errorf("%d requests, want 4 (3 retries)", n)
	}
	if !strings.HasPrefix(err.Error(), `read secret "app/db": giving up after 4 attempts: `) {
		t.Errorf("error %q", err)
	}
	c2 := h.client(t, func(cfg *fetch.Config) { cfg.Retry.MaxRetries = -1 })
	_, err = c2.Read(ctxT(t), "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrUnavailable)
	if n := h.srv.Requests(readRoute); n != 5 {
		t.Errorf("MaxRetries -1 made %d requests, want 1", n-4)
	}
}

func TestNonRetryableReturnAtOnce(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	_, err := c.Read(ctx, "app/missing", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrNotFound)
	_, err = h.client(t, asClient("app", "app-SECRET-0002")).Read(ctx, "other/x", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrAccessDenied)
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusBadRequest})
	_, err = c.Read(ctx, "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrValidation)
	if n := h.srv.Requests(readRoute); n != 3 {
		t.Errorf("%d requests for 3 final errors, want 3", n)
	}
}

func TestCreatesRetriedOnlyWhenSafe(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	const gen = "POST /v1/dynamic/{engine}/creds/{role}"
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusInternalServerError})
	_, err := c.Generate(ctx, "support-db", "readonly", "")
	mustFail(t, err, fetch.ErrUnavailable)
	if n := h.srv.Requests(gen); n != 1 {
		t.Errorf("generate after a 500: %d requests, want 1 (it may have created a lease)", n)
	}
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusServiceUnavailable})
	if l, err := c.Generate(ctx, "support-db", "readonly", ""); err != nil {
		t.Fatalf("generate after a 503: %v", err)
	} else {
		c.Revoke(ctx, l.LeaseID)
	}
	if n := h.srv.Requests(gen); n != 3 {
		t.Errorf("generate after a 503: %d requests in all, want 3", n)
	}
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusInternalServerError})
	if _, err := c.LookupLease(ctx, "dyn_x"); !errors.Is(err, fetch.ErrNotFound) {
		t.Errorf("look-up after a 500 was not retried to its 404: %v", err)
	}
}

// TestConnectionErrors cuts the connection after the server read the
// request: reads are retried, creates are not (the server may have acted).
func TestConnectionErrors(t *testing.T) {
	h := newHarness(t, "")
	var cuts atomic.Int32
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if cuts.Load() <= 0 || r.URL.Path == "/v1/dev/faults" {
			return false
		}
		cuts.Add(-1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	c := h.client(t, nil)
	ctx := ctxT(t)
	cuts.Store(2)
	if _, err := c.Read(ctx, "app/db", fetch.ReadOptions{}); err != nil {
		t.Fatalf("read after two cut connections: %v", err)
	}
	cuts.Store(1)
	_, err := c.Issue(ctx, "svc-mtls", fetch.IssueRequest{CommonName: "localhost"})
	noteErr(err)
	if err == nil || h.srv.Requests("POST /v1/pki/issue/{role}") != 0 {
		t.Errorf("issue on a cut connection: %v; want an error and no retry", err)
	}

	// Nothing listening: nothing was written, so even a create is retried.
	h.hs.Close()
	start := time.Now()
	_, err = c.Generate(ctx, "support-db", "readonly", "")
	noteErr(err)
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Errorf("generate against a closed server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, func(cfg *fetch.Config) { cfg.RequestTimeout = 100 * time.Millisecond })
	// The server would take a minute per answer, three times the test's
	// context: only attempts cut at 100ms can make 4 of them before it ends.
	h.srv.SetFaults(devserver.Faults{Latency: time.Minute, PathPrefix: "/v1/secrets/"})
	ctx := ctxT(t)
	_, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
	mustFail(t, err, context.DeadlineExceeded)
	if ctx.Err() != nil {
		t.Errorf("the read ran into the caller's deadline: attempts were not cut at 100ms")
	}
	if n := h.srv.Requests(readRoute); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
}

func TestDeadlineNeverExceeded(t *testing.T) {
	h := newHarness(t, "")
	// The next retry would wait at least 10s; the caller gives 5s.
	c := h.client(t, func(cfg *fetch.Config) { cfg.Retry = fetch.RetryPolicy{Initial: 10 * time.Second} })
	h.srv.SetFaults(devserver.Faults{Rate: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrUnavailable)
	// The client gives up at once instead of sleeping into the deadline.
	if ctx.Err() != nil {
		t.Errorf("returned only at the deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "no time left before the deadline") {
		t.Errorf("error %q", err)
	}
	if n := h.srv.Requests(readRoute); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestRetryAfterHoldsBackEveryRequest(t *testing.T) {
	h := newHarness(t, "")
	var mu sync.Mutex
	arrivals := map[string][]time.Time{}
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		arrivals[r.URL.Path] = append(arrivals[r.URL.Path], time.Now())
		mu.Unlock()
		return false
	})
	retrying := make(chan struct{}, 1)
	c := h.client(t, func(cfg *fetch.Config) {
		cfg.Logger = newSignalLogger(cfg.Logger, "scaivault request failed; retrying", retrying)
	})
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusTooManyRequests, RetryAfter: 1})
	ctx := ctxT(t)
	first := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
		first <- err
	}()
	recv(t, retrying, "the 429")
	if _, err := c.Read(ctx, "app/api", fetch.ReadOptions{}); err != nil {
		t.Fatalf("other request: %v", err)
	}
	if err := recv(t, first, "the retried read"); err != nil {
		t.Fatalf("retried read: %v", err)
	}
	mu.Lock()
	db, api := arrivals["/v1/secrets/app/db"], arrivals["/v1/secrets/app/api"]
	mu.Unlock()
	if len(db) != 2 || len(api) != 1 {
		t.Fatalf("arrivals: app/db %d, app/api %d", len(db), len(api))
	}
	if d := db[1].Sub(db[0]); d < time.Second {
		t.Errorf("retried after %v, before Retry-After", d)
	}
	if d := api[0].Sub(db[0]); d < time.Second {
		t.Errorf("another request went out %v after the 429, before Retry-After passed", d)
	}

	// A Retry-After past the deadline fails at once, for every request.
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusTooManyRequests, RetryAfter: 30})
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Read(short, "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrRateLimited)
	before := h.srv.Requests("")
	_, err = c.Read(short, "app/api", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrRateLimited)
	if h.srv.Requests("") != before || time.Since(start) > time.Second {
		t.Errorf("a held-back request reached the server or waited (%v)", time.Since(start))
	}
}

func TestErrorsIsEverySentinel(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	noRetry := h.client(t, func(cfg *fetch.Config) { cfg.Retry.MaxRetries = -1 })
	zero := 0
	checks := []struct {
		sentinel error
		call     func() error
	}{
		{fetch.ErrValidation, func() error { _, err := c.ListPage(ctx, "", 0, "bad-cursor"); return err }},
		{fetch.ErrAuthentication, func() error {
			_, err := h.client(t, func(cfg *fetch.Config) { cfg.Token = "nope-SECRET-token" }).Whoami(ctx)
			return err
		}},
		{fetch.ErrAccessDenied, func() error {
			_, err := h.client(t, asClient("app", "app-SECRET-0002")).Read(ctx, "other/x", fetch.ReadOptions{})
			return err
		}},
		{fetch.ErrNotFound, func() error { _, err := c.Read(ctx, "app/none", fetch.ReadOptions{}); return err }},
		{fetch.ErrConflict, func() error { _, err := h.admin().Write(ctx, "app/db", fetch.WriteRequest{CAS: &zero}); return err }},
		{fetch.ErrRateLimited, func() error {
			h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusTooManyRequests})
			_, err := noRetry.Read(ctx, "app/db", fetch.ReadOptions{})
			return err
		}},
		{fetch.ErrUnavailable, func() error {
			h.srv.SetFaults(devserver.Faults{Next: 1})
			_, err := noRetry.Read(ctx, "app/db", fetch.ReadOptions{})
			return err
		}},
		{fetch.ErrNotModified, func() error { _, err := c.Read(ctx, "app/db", fetch.ReadOptions{IfNoneMatch: 1}); return err }},
	}
	for _, ck := range checks {
		err := ck.call()
		noteErr(err)
		if !errors.Is(err, ck.sentinel) {
			t.Errorf("err %v does not match %v", err, ck.sentinel)
		}
		var apiErr *fetch.APIError
		if ck.sentinel != fetch.ErrNotModified && (!errors.As(err, &apiErr) || apiErr.RequestID == "") {
			t.Errorf("err %v is not an *APIError with a request id", err)
		}
	}
}

// signalHandler passes records on and signals ch when one has message msg.
type signalHandler struct {
	slog.Handler
	msg string
	ch  chan<- struct{}
}

func newSignalLogger(l *slog.Logger, msg string, ch chan<- struct{}) *slog.Logger {
	return slog.New(&signalHandler{Handler: l.Handler(), msg: msg, ch: ch})
}

func (h *signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &signalHandler{Handler: h.Handler.WithAttrs(as), msg: h.msg, ch: h.ch}
}

func (h *signalHandler) WithGroup(g string) slog.Handler {
	return &signalHandler{Handler: h.Handler.WithGroup(g), msg: h.msg, ch: h.ch}
}
