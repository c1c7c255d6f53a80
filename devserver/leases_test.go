package devserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func (h *harness) generate(path, token string, body any) *fetch.Lease {
	h.t.Helper()
	var l fetch.Lease
	h.do("POST", "/v1/dynamic/"+path, token, body).want(h.t, 200).decode(h.t, &l)
	return &l
}

func TestGenerateLookupRenew(t *testing.T) {
	h := newHarness(t, testSeed())
	now := h.clock.Now()
	l := h.generate("support-db/creds/readonly", rootTok, map[string]string{"ttl": "2h"})
	user := str(t, l.Data["username"])
	if !strings.HasPrefix(user, "v-readonly-") || len(user) != len("v-readonly-")+8 ||
		len(str(t, l.Data["password"])) < 24 {
		t.Fatalf("lease data %v", l.Data)
	}
	if !strings.HasPrefix(l.LeaseID, "dyn_support-db_readonly_") || l.Engine != "support-db" || l.Role != "readonly" ||
		l.LeaseDuration != 7200 || !l.Renewable || !l.IssuedAt.Equal(now) || !l.ExpiresAt.Equal(now.Add(2*time.Hour)) ||
		!l.MaxExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("lease %+v", l)
	}
	// Look-up: no data, remaining seconds.
	h.clock.Advance(30 * time.Minute)
	var got fetch.Lease
	r := h.do("GET", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 200)
	r.decode(t, &got)
	if got.Data != nil || got.LeaseDuration != 5400 {
		t.Fatalf("look-up %+v", got)
	}
	// Renew counts from now; default increment is the role's ttl.
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, map[string]string{"increment": "3h"}).
		want(t, 200).decode(t, &got)
	if got.Data != nil || got.LeaseDuration != 3*3600 || !got.ExpiresAt.Equal(h.clock.Now().Add(3*time.Hour)) {
		t.Fatalf("renew 3h: %+v", got)
	}
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, nil).want(t, 200).decode(t, &got)
	if got.LeaseDuration != 3600 {
		t.Fatalf("default renew: %+v", got)
	}
	// Capped at max_expires_at.
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, map[string]string{"increment": "30h"}).
		want(t, 200).decode(t, &got)
	if !got.ExpiresAt.Equal(l.MaxExpiresAt) {
		t.Fatalf("renew 30h: %+v", got)
	}
	h.clock.Advance(23 * time.Hour)
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, map[string]string{"increment": "5h"}).
		want(t, 200).decode(t, &got)
	if !got.ExpiresAt.Equal(l.MaxExpiresAt) || got.LeaseDuration != 1800 {
		t.Fatalf("capped renew: %+v", got)
	}
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, map[string]string{"increment": "-5h"}).
		wantErr(t, 400, fetch.CodeValidation)
	// Expired: look-up and renew are 404, revoke is still 204.
	h.clock.Advance(30 * time.Minute)
	h.do("GET", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 204)
	// The sweeper forgets it.
	h.s.sweep(context.Background())
	h.s.mu.Lock()
	n := len(h.s.leases)
	h.s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d leases after sweep", n)
	}
}

func TestLeaseTTLCapsAndErrors(t *testing.T) {
	h := newHarness(t, testSeed())
	l := h.generate("support-db/creds/fixed", rootTok, map[string]string{"ttl": "100h"})
	if l.LeaseDuration != 2*3600 || l.Renewable {
		t.Fatalf("capped lease %+v", l)
	}
	e := h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	if !strings.Contains(e.Message, "not renewable") {
		t.Fatalf("message %q", e.Message)
	}
	if l := h.generate("support-db/creds/readonly", rootTok, nil); l.LeaseDuration != 3600 {
		t.Fatalf("default ttl lease %+v", l)
	}
	h.do("POST", "/v1/dynamic/support-db/creds/readonly", rootTok, map[string]string{"ttl": "1x"}).
		wantErr(t, 400, fetch.CodeValidation)
	h.do("POST", "/v1/dynamic/support-db/creds/readonly", rootTok, map[string]string{"ttl": "0"}).
		wantErr(t, 400, fetch.CodeValidation)
	h.do("POST", "/v1/dynamic/nope/creds/readonly", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("POST", "/v1/dynamic/support-db/creds/nope", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("GET", "/v1/dynamic/leases/dyn_none", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("DELETE", "/v1/dynamic/leases/dyn_none", rootTok, nil).want(t, 204)
	// Another client's token without the dynamic permission may not touch it.
	app := h.token("app", "app-secret")
	h.do("GET", "/v1/dynamic/leases/"+l.LeaseID, app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
	h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
}

func TestRevokeTwice(t *testing.T) {
	h := newHarness(t, testSeed())
	l := h.generate("support-db/creds/readonly", rootTok, nil)
	h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 204)
	h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 204)
	h.do("GET", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
}

func TestDevExpireLease(t *testing.T) {
	h := newHarness(t, testSeed())
	l := h.generate("support-db/creds/readonly", rootTok, nil)
	var got fetch.Lease
	h.do("POST", "/v1/dev/leases/"+l.LeaseID+"/expire", rootTok, map[string]string{"in": "2s"}).
		want(t, 200).decode(t, &got)
	if got.LeaseDuration != 2 || !got.MaxExpiresAt.Equal(got.ExpiresAt) {
		t.Fatalf("shortened lease %+v", got)
	}
	// Renewal cannot pass the new max.
	h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, nil).want(t, 200).decode(t, &got)
	if got.LeaseDuration != 2 {
		t.Fatalf("renew after shortening %+v", got)
	}
	h.do("POST", "/v1/dev/leases/"+l.LeaseID+"/expire", rootTok, nil).want(t, 200)
	h.do("GET", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("POST", "/v1/dev/leases/"+l.LeaseID+"/expire", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
}

// TestLeaseExpiresOnRealClock checks the sweeper on the real clock: a 1s
// lease is gone from the store shortly after it ends, without any request.
func TestLeaseExpiresOnRealClock(t *testing.T) {
	seed := testSeed()
	seed.Dynamic["support-db"].Roles["short"] = SeedEngineRole{TTL: "1s", MaxTTL: "2s"}
	s, err := New(Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eng := s.cfg.engines["support-db"]
	if _, aerr := s.createLease(ctx, eng, eng.roles["short"], time.Second); aerr != nil {
		t.Fatal(aerr.msg)
	}
	for {
		s.mu.Lock()
		n := len(s.leases)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("lease still stored 5s after a 1s ttl")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
