package watch_test

import (
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestNextPoll(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		rnd      float64
		want     time.Duration
	}{
		{time.Minute, 0.5, time.Minute},
		{time.Minute, 0, 54 * time.Second},
		{time.Minute, 0.999999, 66 * time.Second},
		{5 * time.Minute, 0.25, 285 * time.Second},
		{200 * time.Millisecond, 1, 220 * time.Millisecond},
	} {
		got := watch.NextPoll(t0, tc.interval, tc.rnd).Sub(t0)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("NextPoll(%v, rnd %v) = +%v, want +%v", tc.interval, tc.rnd, got, tc.want)
		}
	}
}

// lease builds a lease answered at t0 with the given remaining duration and
// gap to max_expires_at; skew moves the server's clock ahead of ours.
func lease(remaining, toMax time.Duration, renewable bool, skew time.Duration) *fetch.Lease {
	exp := t0.Add(skew + remaining)
	return &fetch.Lease{
		LeaseID: "dyn_x", LeaseDuration: int64(remaining / time.Second), Renewable: renewable,
		ExpiresAt: exp, MaxExpiresAt: exp.Add(toMax),
	}
}

func TestPlanLease(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		name   string
		l      *fetch.Lease
		inc    time.Duration
		rnd    float64
		action watch.LeaseAction
		at     time.Duration
	}{
		{"renewable, far from max", lease(h, 23*h, true, 0), h, 0.5, watch.LeaseRenew, 40 * time.Minute},
		{"jitter low", lease(h, 23*h, true, 0), h, 0, watch.LeaseRenew, 37 * time.Minute},
		{"jitter high", lease(h, 23*h, true, 0), h, 1, watch.LeaseRenew, 43 * time.Minute},
		{"short ttl", lease(3*time.Second, h, true, 0), 3 * time.Second, 0.5, watch.LeaseRenew, 2 * time.Second},
		{"not renewable", lease(3*time.Second, 0, false, 0), 0, 0.5, watch.LeaseReplace, 2 * time.Second},
		// At 40m a renewal could still reach 50m past now: worth it.
		{"max in reach, still worth", lease(h, 50*time.Minute, true, 0), h, 0.5, watch.LeaseRenew, 40 * time.Minute},
		// At 40m a renewal would reach only 25m past now (< half of 1h).
		{"max near", lease(h, 5*time.Minute, true, 0), h, 0.5, watch.LeaseReplace, 40 * time.Minute},
		{"at max", lease(h, 0, true, 0), h, 0.5, watch.LeaseReplace, 40 * time.Minute},
		{"no max known", &fetch.Lease{LeaseDuration: 3600, Renewable: true, ExpiresAt: t0.Add(h)}, h, 0.5, watch.LeaseRenew, 40 * time.Minute},
		{"zero increment is the remaining time", lease(h, 15*time.Minute, true, 0), 0, 0.5, watch.LeaseRenew, 40 * time.Minute},
		{"longer increment", lease(h, 15*time.Minute, true, 0), 2 * h, 0.5, watch.LeaseReplace, 40 * time.Minute},
		{"expired", lease(0, h, true, -time.Minute), h, 0.5, watch.LeaseReplace, 0},
		// Our clock is 10 minutes behind: expires_at looks 70m away, but
		// lease_duration says 60m.
		{"server clock ahead", lease(h, 23*h, true, 10*time.Minute), h, 0.5, watch.LeaseRenew, 40*time.Minute + 667*time.Millisecond},
		{"server clock behind", lease(h, 23*h, true, -10*time.Minute), h, 0.5, watch.LeaseRenew, 40*time.Minute - 667*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := watch.PlanLease(tc.l, t0, tc.inc, tc.rnd)
			if p.Action != tc.action {
				t.Errorf("action %v (%s), want %v", p.Action, p.Why, tc.action)
			}
			if d := p.At.Sub(t0) - tc.at; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("at +%v, want +%v", p.At.Sub(t0), tc.at)
			}
		})
	}
}

// TestPlanLeaseSequence follows a renewable lease (ttl 3s, max 10s) through
// its renewals: every step leaves about a third of the remaining life, and
// the last one is a replacement well before max_expires_at.
func TestPlanLeaseSequence(t *testing.T) {
	now, exp, maxExp := t0, t0.Add(3*time.Second), t0.Add(10*time.Second)
	var steps []string
	for range 10 {
		l := &fetch.Lease{LeaseDuration: int64(exp.Sub(now) / time.Second), Renewable: true, ExpiresAt: exp, MaxExpiresAt: maxExp}
		p := watch.PlanLease(l, now, 3*time.Second, 0.5)
		steps = append(steps, p.Action.String())
		if p.Action == watch.LeaseReplace {
			if left := exp.Sub(p.At); left < 600*time.Millisecond {
				t.Errorf("replacement leaves %v of the old lease", left)
			}
			break
		}
		now = p.At
		exp = now.Add(3 * time.Second)
		if exp.After(maxExp) {
			exp = maxExp
		}
	}
	want := "renew renew renew renew replace"
	if got := strings.Join(steps, " "); got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestCertRefreshAt(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *fetch.Cert
		rnd  float64
		want time.Duration
	}{
		{"72h", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(72 * time.Hour)}, 0.5, 48 * time.Hour},
		{"jitter", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(3 * time.Hour)}, 0, 111 * time.Minute},
		{"no issued_at", &fetch.Cert{ExpiresAt: t0.Add(3 * time.Second)}, 0.5, 2 * time.Second},
		// Our clock is an hour ahead: NotAfter looks 2h away; the server
		// issued it for 3h.
		{"our clock ahead", &fetch.Cert{IssuedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(2 * time.Hour)}, 0.5, 2*time.Hour - 667*time.Millisecond},
		// Received a while after issue (latency): by our clock.
		{"received late", &fetch.Cert{IssuedAt: t0.Add(-500 * time.Millisecond), ExpiresAt: t0.Add(2500 * time.Millisecond)}, 0.5, 1667 * time.Millisecond},
		{"expired", &fetch.Cert{ExpiresAt: t0.Add(-time.Second)}, 0.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := watch.CertRefreshAt(tc.c, t0, tc.rnd).Sub(t0)
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("+%v, want +%v", got, tc.want)
			}
		})
	}
}

func TestRetryBackoff(t *testing.T) {
	for _, tc := range []struct {
		n     int
		limit time.Duration
		rnd   float64
		want  time.Duration
	}{
		{1, time.Minute, 0.5, time.Second},
		{2, time.Minute, 0.5, 2 * time.Second},
		{4, time.Minute, 0.5, 8 * time.Second},
		{7, time.Minute, 0.5, time.Minute},
		{30, time.Minute, 0.5, time.Minute},
		{1000, time.Minute, 0, 48 * time.Second},
		{1, time.Minute, 0, 800 * time.Millisecond},
		{1, 200 * time.Millisecond, 0.5, 200 * time.Millisecond},
		{1, 200 * time.Millisecond, 1, 200 * time.Millisecond},
		{3, 0, 0.5, 100 * time.Millisecond},
		{0, time.Minute, 0.5, time.Second},
	} {
		if got := watch.RetryBackoff(tc.n, tc.limit, tc.rnd); got != tc.want {
			t.Errorf("RetryBackoff(%d, %v, %v) = %v, want %v", tc.n, tc.limit, tc.rnd, got, tc.want)
		}
	}
}

func TestRetryLimit(t *testing.T) {
	for _, tc := range []struct{ rem, poll, want time.Duration }{
		{time.Hour, time.Minute, time.Minute},
		{3 * time.Second, time.Minute, time.Second},
		{0, time.Minute, 100 * time.Millisecond},
		{-time.Second, time.Minute, 100 * time.Millisecond},
	} {
		if got := watch.RetryLimit(tc.rem, tc.poll); got != tc.want {
			t.Errorf("RetryLimit(%v, %v) = %v, want %v", tc.rem, tc.poll, got, tc.want)
		}
	}
}

// A reused ACME order's certificate has what our clock says is left, not
// its whole life again (the clamp that suits a certificate issued now).
func TestACMERemainingReused(t *testing.T) {
	c := &fetch.Cert{IssuedAt: t0.Add(-60 * 24 * time.Hour), ExpiresAt: t0.Add(30 * 24 * time.Hour)}
	if got := watch.ACMERemaining(c, t0); got != 30*24*time.Hour {
		t.Errorf("ACMERemaining = %v, want 720h", got)
	}
	if got := watch.ACMERemaining(&fetch.Cert{ExpiresAt: t0.Add(-time.Second)}, t0); got != 0 {
		t.Errorf("ended: %v", got)
	}
}
