package watch_test

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// TestWatchStatePublished: the state handed to OnState follows what the
// watcher does: a poll moves each secret's refresh time and the last
// success, a renewal moves the lease's expiry on, a poll the server does
// not answer moves neither; it never holds a value.
func TestWatchStatePublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		var st atomic.Pointer[watch.State]
		lsrc := dynSrc(t, "renew")
		wr := w.watch(watch.WatchConfig{PollInterval: 10 * time.Second, NoEvents: true,
			OnState: func(s *watch.State) { st.Store(s) }}, []fetch.Source{srcDB, lsrc}, nil)
		defer wr.stop()
		synctest.Wait()
		s0 := st.Load()
		if s0 == nil || len(s0.Secrets) != 1 || len(s0.Leases) != 1 || s0.EventsConnected {
			t.Fatalf("first state %+v", s0)
		}
		if sec := s0.Secrets[0]; sec.Path != "app/db" || sec.Version != 1 || sec.Refreshed.IsZero() || sec.Pinned {
			t.Errorf("secret state %+v", sec)
		}
		l0 := s0.Leases[0]
		if l0.Engine != "db" || l0.Role != "renew" || l0.LeaseID != wr.snap.Leases[lsrc].LeaseID || l0.ExpiresAt.IsZero() {
			t.Errorf("lease state %+v", l0)
		}

		time.Sleep(12 * time.Second) // a poll (10s ± 10%) and renewals (every 2s)
		synctest.Wait()
		s1 := st.Load()
		if !s1.Secrets[0].Refreshed.After(s0.Secrets[0].Refreshed) || !s1.LastSuccess.After(s0.LastSuccess) {
			t.Errorf("a poll did not move the refresh times: %v → %v, %v → %v",
				s0.Secrets[0].Refreshed, s1.Secrets[0].Refreshed, s0.LastSuccess, s1.LastSuccess)
		}
		if !s1.Leases[0].ExpiresAt.After(l0.ExpiresAt) || s1.Leases[0].LeaseID != l0.LeaseID {
			t.Errorf("renewals did not move the lease's expiry on: %+v → %+v", l0, s1.Leases[0])
		}

		w.srv.SetFaults(devserver.Faults{Rate: 1, PathPrefix: "/v1/secrets"})
		time.Sleep(25 * time.Second)
		synctest.Wait()
		s2 := st.Load()
		if !s2.Secrets[0].Refreshed.Equal(s1.Secrets[0].Refreshed) {
			t.Errorf("refresh time moved while every read failed: %v → %v", s1.Secrets[0].Refreshed, s2.Secrets[0].Refreshed)
		}
		if !s2.At.After(s1.At) {
			t.Error("no state published while the reads failed")
		}
	})
}
