package fetch_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

func TestLeaseLifecycle(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)

	l, err := c.Generate(ctx, "support-db", "readonly", "2h")
	if err != nil {
		t.Fatal(err)
	}
	var user, pass string
	if json.Unmarshal(l.Data["username"], &user) != nil || json.Unmarshal(l.Data["password"], &pass) != nil || user == "" || pass == "" {
		t.Fatalf("lease data %v", l.Data)
	}
	noteSecret(pass)
	if l.LeaseID == "" || l.Engine != "support-db" || l.Role != "readonly" || !l.Renewable ||
		l.LeaseDuration < 7190 || l.LeaseDuration > 7200 || l.MaxExpiresAt.Before(l.ExpiresAt) {
		t.Fatalf("lease %+v", l)
	}

	got, err := c.LookupLease(ctx, l.LeaseID)
	if err != nil || got.LeaseID != l.LeaseID || len(got.Data) != 0 {
		t.Fatalf("look up: %+v, %v", got, err)
	}
	r, err := c.Renew(ctx, l.LeaseID, "30h") // capped at max_expires_at
	if err != nil || len(r.Data) != 0 || r.ExpiresAt.After(l.MaxExpiresAt) {
		t.Fatalf("renew: %+v, %v", r, err)
	}
	if r, err := c.Renew(ctx, l.LeaseID, ""); err != nil || time.Until(r.ExpiresAt) > time.Hour+time.Minute {
		t.Fatalf("renew by the role's ttl: %+v, %v", r, err)
	}

	if err := c.Revoke(ctx, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	_, err = c.LookupLease(ctx, l.LeaseID)
	mustFail(t, err, fetch.ErrNotFound)
	_, err = c.Renew(ctx, l.LeaseID, "1h")
	mustFail(t, err, fetch.ErrNotFound)
	if err := c.Revoke(ctx, l.LeaseID); err != nil {
		t.Errorf("revoking again: %v", err)
	}
	if err := c.Revoke(ctx, "dyn_never_existed"); err != nil {
		t.Errorf("revoking an unknown lease: %v", err)
	}
}

func TestLeaseErrors(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	c := h.client(t, nil)
	fixed, err := c.Generate(ctx, "support-db", "fixed", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Renew(ctx, fixed.LeaseID, "1h")
	mustFail(t, err, fetch.ErrValidation)
	_, err = c.Generate(ctx, "support-db", "nope", "")
	mustFail(t, err, fetch.ErrNotFound)
	_, err = c.Generate(ctx, "support-db", "readonly", "-1h")
	mustFail(t, err, fetch.ErrValidation)
	_, err = c.Generate(ctx, "", "readonly", "")
	noteErr(err)
	if err == nil {
		t.Error("empty engine accepted")
	}
	_, err = h.client(t, asClient("app", "app-SECRET-0002")).Generate(ctx, "support-db", "readonly", "")
	mustFail(t, err, fetch.ErrAccessDenied)
	if n := h.srv.Requests("POST /v1/dynamic/{engine}/creds/{role}"); n != 4 {
		t.Errorf("%d generate requests, want 4 (no retries of errors that are final)", n)
	}
}

// A Generate that has started is not abandoned when its context is
// cancelled: the lease is returned, so that the caller can revoke it
// rather than leave it behind unknown.
func TestGenerateSurvivesCancellation(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	h.srv.SetFaults(devserver.Faults{Latency: 300 * time.Millisecond, PathPrefix: "/v1/dynamic/"})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // while the request is at the server
	l, err := c.Generate(ctx, "support-db", "readonly", "")
	if err != nil {
		t.Fatalf("Generate cancelled mid-flight: %v", err)
	}
	h.srv.SetFaults(devserver.Faults{})
	if err := c.Revoke(context.Background(), l.LeaseID); err != nil {
		t.Fatal(err)
	}
	if n := h.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases active after revoking the one generated", n)
	}
	// A context cancelled before the call starts nothing.
	if _, err := c.Generate(ctx, "support-db", "readonly", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Generate with a cancelled context: %v", err)
	}
}
