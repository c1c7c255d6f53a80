package fetch_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

const revokeRoute = "DELETE /v1/dynamic/leases/{lease_id}"

// rateLimitOnce makes the next request answer 429 with Retry-After secs
// and sends it through c, which must not retry.
func rateLimitOnce(t *testing.T, h *harness, c *fetch.Client, secs int) {
	t.Helper()
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusTooManyRequests, RetryAfter: secs})
	_, err := c.Read(ctxT(t), "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrRateLimited)
}

// A 429 seen by one client holds back the clients derived from it, and
// the other way round: a revocation through a derived client whose
// deadline comes before the Retry-After fails at once with the 429, and
// sends nothing.
func TestRateGateSharedByDerivedClients(t *testing.T) {
	h := newHarness(t, "")
	parent := h.client(t, func(cfg *fetch.Config) { cfg.Retry.MaxRetries = -1 })
	lease, err := parent.Generate(ctxT(t), "support-db", "readonly", "")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := parent.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer derived.Close()
	rateLimitOnce(t, h, parent, 60)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := time.Now()
	err = derived.Revoke(ctx, lease.LeaseID)
	mustFail(t, err, fetch.ErrRateLimited)
	if d := time.Since(before); d > 2*time.Second {
		t.Errorf("held back for %v, want an error at once (the deadline is before the Retry-After)", d)
	}
	if n := h.srv.Requests(revokeRoute); n != 0 {
		t.Errorf("%d revocations reached the server through the closed gate", n)
	}

	// A client derived from the derived one shares the same gate, and a
	// 429 it sees holds back the first client too.
	h2 := newHarness(t, "")
	root := h2.client(t, func(cfg *fetch.Config) { cfg.Retry.MaxRetries = -1 })
	d1, _ := root.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	d2, _ := d1.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	defer d1.Close()
	defer d2.Close()
	rateLimitOnce(t, h2, d2, 60)
	reads := h2.srv.Requests(readRoute)
	_, err = root.Read(ctx, "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrRateLimited)
	if n := h2.srv.Requests(readRoute) - reads; n != 0 {
		t.Errorf("the first client sent %d reads through the gate its derived client closed", n)
	}
}

// With time to wait, a derived client's request waits for the gate and
// goes out only once the Retry-After has passed.
func TestRateGateDerivedWaits(t *testing.T) {
	h := newHarness(t, "")
	parent := h.client(t, func(cfg *fetch.Config) { cfg.Retry.MaxRetries = -1 })
	derived, err := parent.WithRetry(fetch.RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer derived.Close()
	var arrived atomic.Int64
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodDelete {
			arrived.Store(time.Now().UnixNano())
		}
		return false
	})
	before := time.Now()
	rateLimitOnce(t, h, parent, 1)
	if err := derived.Revoke(ctxT(t), "dyn_unknown"); err != nil {
		t.Fatal(err) // an unknown lease's 404 is no error
	}
	at := time.Unix(0, arrived.Load())
	if arrived.Load() == 0 || at.Before(before.Add(time.Second)) {
		t.Errorf("revocation reached the server %v after the 429's request was sent, want at least the Retry-After of 1s",
			at.Sub(before))
	}
}

// A derived client has its own retry policy and its own Close; it shares
// the credential (a token file re-read is seen by both) and keeps working
// when the client it came from is closed.
func TestWithRetry(t *testing.T) {
	h := newHarness(t, "")
	parent := h.client(t, nil)
	if _, err := parent.WithRetry(fetch.RetryPolicy{Multiplier: 0.5}); err == nil {
		t.Error("WithRetry accepted a multiplier below 1")
	}
	derived, err := parent.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	h.srv.SetFaults(devserver.Faults{Next: 1})
	_, err = derived.Read(ctxT(t), "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrUnavailable)
	if n := h.srv.Requests(readRoute); n != 1 {
		t.Errorf("derived client without retries made %d requests, want 1", n)
	}
	h.srv.SetFaults(devserver.Faults{Next: 1})
	if _, err := parent.Read(ctxT(t), "app/db", fetch.ReadOptions{}); err != nil {
		t.Errorf("the parent lost its retries: %v", err)
	}
	derived.Close()
	if _, err := derived.Read(ctxT(t), "app/db", fetch.ReadOptions{}); !errors.Is(err, fetch.ErrClientClosed) {
		t.Errorf("closed derived client: %v", err)
	}
	if _, err := parent.Read(ctxT(t), "app/db", fetch.ReadOptions{}); err != nil {
		t.Errorf("closing the derived client closed the parent: %v", err)
	}
	other, _ := parent.WithRetry(fetch.RetryPolicy{})
	defer other.Close()
	parent.Close()
	if _, err := other.Read(ctxT(t), "app/db", fetch.ReadOptions{}); err != nil {
		t.Errorf("closing the parent stopped a derived client: %v", err)
	}
	closed, _ := parent.WithRetry(fetch.RetryPolicy{})
	if _, err := closed.Read(ctxT(t), "app/db", fetch.ReadOptions{}); !errors.Is(err, fetch.ErrClientClosed) {
		t.Errorf("a client derived from a closed client: %v", err)
	}
}

// A derived client uses the token its parent obtained: one exchange at
// the token endpoint serves both.
func TestWithRetrySharesCredential(t *testing.T) {
	h := newHarness(t, "")
	parent := h.client(t, asClient("app", "app-SECRET-0002"))
	derived, err := parent.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer derived.Close()
	for _, c := range []*fetch.Client{parent, derived, parent} {
		if _, err := c.Read(ctxT(t), "app/db", fetch.ReadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.srv.Requests(tokenRoute); n != 1 {
		t.Errorf("%d token exchanges, want 1 shared by both clients", n)
	}
}
