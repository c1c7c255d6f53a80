package watch_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// The ledger against the real dev server, in a synctest bubble.

const leasesPrefix = "/v1/dynamic/leases/"

// generate makes n leases of role "renew" (3s, renewable to 1h) and
// enters them in l as in use.
func generate(t *testing.T, w *world, l *watch.Ledger, n int) []*fetch.Lease {
	t.Helper()
	src := dynSrc(t, "renew")
	var out []*fetch.Lease
	for range n {
		lease, err := w.c.Generate(context.Background(), "db", "renew", "1h")
		if err != nil {
			t.Fatal(err)
		}
		l.Add(src, lease)
		out = append(out, lease)
	}
	return out
}

// active looks a lease up with the faults off.
func active(t *testing.T, w *world, id string) bool {
	t.Helper()
	_, err := w.c.LookupLease(context.Background(), id)
	if err != nil && !errors.Is(err, fetch.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// A superseded lease whose revocation fails (503s) is retried with
// backoff while running, until the server takes it; a lease in use is
// never revoked by Run.
func TestLedgerRetriesRevocation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		leases := generate(t, w, l, 2)
		used, old := leases[0], leases[1]
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()

		// The client retries 3 times within a call: 10 failures in a row
		// fail three of the ledger's attempts.
		w.srv.SetFaults(devserver.Faults{Next: 10, PathPrefix: leasesPrefix})
		l.Release([]*fetch.Lease{old}, watch.Superseded, 0)
		synctest.Wait()
		if n := w.srv.ActiveLeases(); n != 2 {
			t.Fatalf("%d leases active, want 2: revoked although the revocation failed", n)
		}
		time.Sleep(2 * time.Minute) // fake time: the backoff runs its course
		synctest.Wait()
		if n := w.srv.ActiveLeases(); n != 1 {
			t.Fatalf("%d leases active, want 1", n)
		}
		if active(t, w, old.LeaseID) {
			t.Errorf("superseded lease still valid after its revocation failed and time passed; log:\n%s", w.buf.String())
		}
		if _, held := l.Phase(old.LeaseID); held {
			t.Error("the ledger still holds the revoked lease")
		}
		if !strings.Contains(w.buf.String(), `msg="revoking a lease failed; retrying" lease=`+old.LeaseID) {
			t.Errorf("no retry warning:\n%s", w.buf.String())
		}
		if !active(t, w, used.LeaseID) {
			t.Error("the lease in use was revoked")
		}
		if ph, held := l.Phase(used.LeaseID); !held || ph != watch.InUse {
			t.Errorf("lease in use: phase %v, held %v", ph, held)
		}
		cancel()
		<-done
		if left, err := l.Close(context.Background(), true); err != nil || left != 0 {
			t.Errorf("close: %d left, %v", left, err)
		}
		if active(t, w, used.LeaseID) {
			t.Error("the lease in use survived Close")
		}
	})
}

// Release after a grace keeps the lease until the grace is over.
func TestLedgerGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		lease := generate(t, w, l, 1)[0]
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go l.Run(ctx)
		l.Release([]*fetch.Lease{lease}, watch.Superseded, 10*time.Second)
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if !active(t, w, lease.LeaseID) {
			t.Fatal("revoked before its grace ended")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if active(t, w, lease.LeaseID) {
			t.Error("not revoked after its grace")
		}
	})
}

// Close revokes concurrently: 20 leases, each revocation answered after
// 300ms, all revoked within a 2s bound (one after the other would take 6s).
// A server that hangs is given up at the bound, and every lease left is
// named.
func TestLedgerCloseConcurrentAndBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		generate(t, w, l, 20)
		w.srv.SetFaults(devserver.Faults{Latency: 300 * time.Millisecond, PathPrefix: leasesPrefix})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		left, err := l.Close(ctx, true)
		cancel()
		if err != nil || left != 0 {
			t.Fatalf("close: %d left, %v", left, err)
		}
		w.srv.SetFaults(devserver.Faults{})
		if n := w.srv.ActiveLeases(); n != 0 {
			t.Errorf("%d leases active after Close", n)
		}

		l = watch.NewLedger(w.c, w.log)
		leases := generate(t, w, l, 3)
		w.srv.SetFaults(devserver.Faults{Latency: time.Hour, PathPrefix: leasesPrefix})
		start := time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
		left, err = l.Close(ctx, true)
		cancel()
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("close against a hung server took %v, want the 2s bound", took)
		}
		if left != 3 || err == nil {
			t.Fatalf("close against a hung server: %d left, %v", left, err)
		}
		for _, lease := range leases {
			if !strings.Contains(err.Error(), lease.LeaseID) {
				t.Errorf("error does not name lease %s: %v", lease.LeaseID, err)
			}
		}
		w.srv.SetFaults(devserver.Faults{})
	})
}

// Close with revoke false (--no-revoke) leaves every lease to its ttl.
func TestLedgerCloseNoRevoke(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		lease := generate(t, w, l, 1)[0]
		if left, err := l.Close(context.Background(), false); err != nil || left != 1 {
			t.Errorf("close: %d left, %v", left, err)
		}
		if !active(t, w, lease.LeaseID) {
			t.Error("revoked with revoke false")
		}
	})
}

// Run returns once its context ends, also while a revocation fails and is
// due again at once (it used to spin, and the exit never came).
func TestLedgerRunStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		lease := generate(t, w, l, 1)[0]
		w.srv.SetFaults(devserver.Faults{Latency: time.Hour, PathPrefix: leasesPrefix})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ctx) }()
		l.Release([]*fetch.Lease{lease}, watch.Superseded, 0)
		synctest.Wait() // the revocation hangs
		before := w.srv.Requests("DELETE /v1/dynamic/leases/{lease_id}")
		cancel()
		<-done
		if n := w.srv.Requests("DELETE /v1/dynamic/leases/{lease_id}") - before; n > 0 {
			t.Errorf("%d more revocations after the cancel", n)
		}
		if _, held := l.Phase(lease.LeaseID); !held {
			t.Error("the lease left the table without being revoked")
		}
		w.srv.SetFaults(devserver.Faults{})
	})
}

// The watcher tells the ledger of each renewal: Latest gives the renewed
// times (what the reload grace and the revocation retries count from), not
// those at issue.
func TestLedgerKnowsRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		l := watch.NewLedger(w.c, w.log)
		src := dynSrc(t, "renew") // 3s, renewable to 1h
		wr := w.watch(watch.WatchConfig{PollInterval: time.Hour, NoEvents: true, Ledger: l}, []fetch.Source{src}, nil)
		defer wr.stop()
		issued := wr.snap.Leases[src]
		l.Add(src, issued)
		time.Sleep(10 * time.Second) // fake time: several renewals
		synctest.Wait()
		got := l.Latest([]*fetch.Lease{issued})[0]
		if !got.ExpiresAt.After(issued.ExpiresAt.Add(5 * time.Second)) {
			t.Errorf("ledger's expiry %v; issued %v, renewed for 10s since", got.ExpiresAt, issued.ExpiresAt)
		}
		if !got.ExpiresAt.After(time.Now()) {
			t.Errorf("ledger's copy ended at %v, now %v", got.ExpiresAt, time.Now())
		}
	})
}
