package watch_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

func TestReusable(t *testing.T) {
	h := time.Hour
	for _, c := range []struct {
		remaining, life time.Duration
		want            bool
	}{
		{h, h, true},
		{h / 3, h, true},
		{h/3 - time.Second, h, false},
		{0, h, false},
		{-time.Second, h, false},
		{time.Second, 0, true}, // life unknown: any lease not ended
		{0, 0, false},
		{2 * h, h, true}, // renewed further than we knew
	} {
		if got := watch.Reusable(c.remaining, c.life); got != c.want {
			t.Errorf("Reusable(%v, %v) = %v, want %v", c.remaining, c.life, got, c.want)
		}
	}
}

// Reclaim against the dev server: a lease with enough life is reused
// (entered in use, with the previous run's data and the server's times),
// one with too little is revoked, one the server forgot is dropped, and
// an unreachable server changes nothing.
func TestReclaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := dynSrc(t, "renew")
		gen := func() *fetch.Lease {
			l, err := w.c.Generate(context.Background(), "db", "renew", "1h")
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		fresh, old, gone, down := gen(), gen(), gen(), gen()
		if err := w.c.Revoke(context.Background(), gone.LeaseID); err != nil {
			t.Fatal(err)
		}
		l := watch.NewLedger(w.c, w.log)
		var changes atomic.Int32
		l.SetOnChange(func() { changes.Add(1) })
		time.Sleep(30 * time.Minute) // fake time: half the life of each

		reused, err := l.Reclaim(context.Background(), src, fresh, time.Hour)
		if err != nil || reused == nil {
			t.Fatalf("Reclaim of a lease with half its life: %v, %v", reused, err)
		}
		if string(reused.Data["password"]) != string(fresh.Data["password"]) || reused.LeaseDuration > 1800 || reused.LeaseDuration < 1790 {
			t.Errorf("reused lease: duration %d, data kept %v", reused.LeaseDuration, string(reused.Data["password"]) == string(fresh.Data["password"]))
		}
		if ph, held := l.Phase(fresh.LeaseID); !held || ph != watch.InUse {
			t.Errorf("reused lease: held %v, phase %v", held, ph)
		}
		if changes.Load() != 1 {
			t.Errorf("%d change notices, want 1", changes.Load())
		}

		// Half its life left is too little when its life was 2h.
		if got, err := l.Reclaim(context.Background(), src, old, 2*time.Hour); got != nil || err != nil {
			t.Fatalf("Reclaim of a lease with a quarter of its life: %v, %v", got, err)
		}
		if active(t, w, old.LeaseID) {
			t.Error("a lease with too little life left was not revoked")
		}
		if got, err := l.Reclaim(context.Background(), src, gone, time.Hour); got != nil || err != nil {
			t.Fatalf("Reclaim of a revoked lease: %v, %v", got, err)
		}

		w.srv.SetFaults(devserver.Faults{Rate: 1, Status: 503, PathPrefix: leasesPrefix})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if got, err := l.Reclaim(ctx, src, down, time.Hour); got != nil || !fetch.IsTemporary(err) {
			t.Fatalf("Reclaim with the server down: %v, %v", got, err)
		}
		w.srv.SetFaults(devserver.Faults{})
		if !active(t, w, down.LeaseID) {
			t.Error("a lease was revoked although its look-up failed")
		}
		if _, held := l.Phase(down.LeaseID); held {
			t.Error("a lease whose look-up failed was entered")
		}
		if l.Len() != 1 {
			t.Errorf("the table holds %d leases, want 1", l.Len())
		}
		held := l.Held()
		if len(held) != 1 || held[0].Lease.LeaseID != fresh.LeaseID || held[0].Source != src {
			t.Fatalf("Held = %+v", held)
		}
		if end := held[0].ExpiresAt(); end.Sub(time.Now()) > 30*time.Minute+time.Second || end.Sub(time.Now()) < 29*time.Minute {
			t.Errorf("held lease ends in %v, want 30m", end.Sub(time.Now()))
		}
	})
}

// RevokeLeftover revokes what it is given, counts a forgotten lease as
// done, and names each failure.
func TestRevokeLeftover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		a, b := generate(t, w, watch.NewLedger(nil, nil), 2)[0], generate(t, w, watch.NewLedger(nil, nil), 1)[0]
		if err := l.RevokeLeftover(context.Background(), []string{a.LeaseID, b.LeaseID, "dyn_db_renew_unknown", a.LeaseID}); err != nil {
			t.Fatal(err)
		}
		if active(t, w, a.LeaseID) || active(t, w, b.LeaseID) {
			t.Fatal("leftover leases still active")
		}
		c := generate(t, w, watch.NewLedger(nil, nil), 1)[0]
		w.srv.SetFaults(devserver.Faults{Rate: 1, Status: 403, PathPrefix: leasesPrefix})
		err := l.RevokeLeftover(context.Background(), []string{c.LeaseID})
		var re *watch.RevokeError
		if !errors.As(err, &re) || re.LeaseID != c.LeaseID || !strings.Contains(err.Error(), c.LeaseID) {
			t.Fatalf("err = %v, want a RevokeError naming %s", err, c.LeaseID)
		}
	})
}

// Held reports renewed times and the phase; a renewal notices a change.
func TestHeldFollowsRenewals(t *testing.T) {
	l := watch.NewLedger(nil, nil)
	var changes atomic.Int32
	l.SetOnChange(func() { changes.Add(1) })
	src := dynSrc(t, "renew")
	now := time.Now()
	lease := &fetch.Lease{LeaseID: "dyn_1", LeaseDuration: 60, ExpiresAt: now.Add(time.Minute), Data: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}}
	l.Add(src, lease)
	l.Add(src, lease) // again: no change
	renewed := *lease
	renewed.LeaseDuration, renewed.ExpiresAt = 3600, now.Add(time.Hour)
	l.Renewed(&renewed)
	l.Release([]*fetch.Lease{lease}, watch.Superseded, time.Hour)
	h := l.Held()
	if len(h) != 1 || h[0].Lease.LeaseDuration != 3600 || h[0].Phase != watch.Superseded || string(h[0].Lease.Data["k"]) != `"v"` {
		t.Fatalf("Held = %+v", h)
	}
	if changes.Load() != 2 {
		t.Errorf("%d change notices, want 2 (one add, one renewal)", changes.Load())
	}
}

// A reused lease keeps its whole life (what it was issued with), not what
// the look-up found left: a second reuse, a run later, compares against
// the whole. Its schedule follows what is left.
func TestReclaimKeepsLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := dynSrc(t, "renew")
		issued, err := w.c.Generate(context.Background(), "db", "renew", "1h")
		if err != nil {
			t.Fatal(err)
		}
		life := time.Duration(issued.LeaseDuration) * time.Second
		time.Sleep(30 * time.Minute) // fake time
		first := watch.NewLedger(w.c, w.log)
		reused, err := first.Reclaim(context.Background(), src, issued, life)
		if err != nil || reused == nil {
			t.Fatalf("first reuse: reused %v, %v", reused != nil, err)
		}
		held := first.Held()
		if got := held[0].Lease.LifeSeconds(); got != 3600 {
			t.Errorf("life after a reuse: %ds, want 3600s (not the 1800s left)", got)
		}
		if rem := watch.LeaseRemaining(reused, time.Now()); rem > 30*time.Minute+time.Second || rem < 29*time.Minute {
			t.Errorf("reused lease has %v left by its times, want 30m", rem)
		}
		if p := watch.PlanLease(reused, time.Now(), 0, 0.5); p.At.Sub(time.Now()) > 21*time.Minute || p.At.Sub(time.Now()) < 19*time.Minute {
			t.Errorf("renewal of the reused lease in %v, want two thirds of the 30m left", p.At.Sub(time.Now()))
		}

		// A run later: 15 of its 60 minutes are left, less than a third.
		// Against the 30 minutes the first reuse found it would pass.
		time.Sleep(15 * time.Minute)
		next := watch.NewLedger(w.c, w.log)
		again, err := next.Reclaim(context.Background(), src, held[0].Lease, time.Duration(held[0].Lease.LifeSeconds())*time.Second)
		if err != nil || again != nil {
			t.Fatalf("second reuse with a quarter of its life left: reused %v, %v; want it revoked", again != nil, err)
		}
		if active(t, w, issued.LeaseID) {
			t.Error("a lease with a quarter of its life left was not revoked")
		}
	})
}
