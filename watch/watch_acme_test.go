package watch_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// ACME certificates under the watcher: ScaiVault renews them; the watcher
// reads the order again (on acme.renewed, or on a poll that follows the
// certificate's remaining life) and hands on the new certificate.

func acmeWatchSeed(certTTL string) string {
	return `{"root_token": "root-SECRET-watch-acme",
	  "acme": {"accounts": {"le": {"cert_ttl": "` + certTTL + `"}}}}`
}

func acmeSrc(t testing.TB) fetch.Source {
	s, err := fetch.ACMESource("le", []string{"www.example.com", "example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func acmeCertOf(t testing.TB, snap *fetch.Snapshot, src fetch.Source) *fetch.Cert {
	t.Helper()
	c := snap.Certs[src]
	if c == nil || c.OrderID == "" {
		t.Fatalf("no ACME certificate with its order in the snapshot: %+v", c)
	}
	noteSecret(c.PrivateKeyPEM)
	return c
}

// Without events: the order is polled at a pace that follows the
// certificate's life, and each renewal the server made is an update.
func TestWatchACMERenewalPolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, acmeWatchSeed("30m"))
		defer w.stop()
		src := acmeSrc(t)
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, nil)
		defer wr.stop()
		old := acmeCertOf(t, wr.snap, src)
		for range 2 {
			u := wr.next(t, 30*time.Minute)
			nc := acmeCertOf(t, u.Snapshot, src)
			if nc.SerialNumber == old.SerialNumber || nc.OrderID != old.OrderID {
				t.Fatalf("update with serial %s order %s, was %s order %s", nc.SerialNumber, nc.OrderID, old.SerialNumber, old.OrderID)
			}
			want := "acme certificate le order " + old.OrderID + " serial " + old.SerialNumber + "→" + nc.SerialNumber
			if len(u.Reasons) != 1 || u.Reasons[0] != want {
				t.Errorf("reasons %q, want %q", u.Reasons, want)
			}
			if u.ActBy.IsZero() {
				t.Error("no ActBy: the old certificate's end")
			}
			old = nc
		}
		if n := w.srv.ACMEOrders("le"); n != 1 {
			t.Errorf("%d orders: the watcher placed one", n)
		}
	})
}

// With events: a renewal long before the end (the server decided) is
// taken on its acme.renewed event, without waiting for a poll.
func TestWatchACMERenewedEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, acmeWatchSeed("2160h"))
		defer w.stop()
		src := acmeSrc(t)
		var st *watch.State
		wr := w.watch(watch.WatchConfig{PollInterval: 24 * time.Hour, SafetyPoll: 24 * time.Hour,
			OnState: func(s *watch.State) { st = s }}, []fetch.Source{src}, nil)
		defer wr.stop()
		old := acmeCertOf(t, wr.snap, src)
		synctest.Wait() // the events stream is up, the first poll of the order done
		if n := w.srv.RenewACMEOrders("le"); n != 1 {
			t.Fatalf("renewed %d", n)
		}
		u := wr.next(t, time.Minute)
		nc := acmeCertOf(t, u.Snapshot, src)
		if nc.SerialNumber == old.SerialNumber {
			t.Fatal("same serial")
		}
		synctest.Wait()
		if len(st.Certs) != 1 || st.Certs[0].Account != "le" || st.Certs[0].OrderID != old.OrderID ||
			st.Certs[0].Serial != nc.SerialNumber || st.Certs[0].ExpiresAt.Sub(nc.ExpiresAt).Abs() > time.Second {
			t.Errorf("state %+v", st.Certs)
		}
		wr.none(t, time.Hour) // nothing more: the order is unchanged
	})
}

// An order the server no longer shows is lost (logged at error, reported
// on every attempt); the child keeps its certificate.
func TestWatchACMEOrderLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, acmeWatchSeed("30m"))
		defer w.stop()
		src := acmeSrc(t)
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, nil)
		defer wr.stop()
		acmeCertOf(t, wr.snap, src)
		w.srv.SetFaults(devserver.Faults{Rate: 1, Status: 404, PathPrefix: "/v1/acme/orders/"})
		var e *watch.LostError
		select {
		case e = <-wr.lost:
		case <-time.After(10 * time.Minute):
			t.Fatal("no loss reported")
		}
		if e.Source != src || !errors.Is(e, fetch.ErrNotFound) || !strings.Contains(e.Error(), "acme le domains=example.com,www.example.com lost") {
			t.Errorf("lost %v", e)
		}
		if !strings.Contains(w.buf.String(), `msg="lost for good; the child keeps running on what it has"`) {
			t.Error("no error line")
		}
		w.srv.SetFaults(devserver.Faults{})
		u := wr.next(t, 30*time.Minute) // the renewal at 20 minutes, once it answers again
		acmeCertOf(t, u.Snapshot, src)
	})
}
