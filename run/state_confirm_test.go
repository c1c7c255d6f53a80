package run

import (
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// A confirming poll a minute after the last resolution wakes the writer
// and returns: it took the state's lock twice and hung the watcher (and
// with it every later change and the exit).
func TestStateConfirmedDoesNotHang(t *testing.T) {
	s := &stateRun{wake: make(chan struct{}, 1)}
	s.rec = &record{snap: &fetch.Snapshot{Secrets: map[fetch.Source]*fetch.Secret{}}, resolvedAt: time.Now().Add(-2 * confirmEvery)}
	done := make(chan struct{})
	go func() {
		s.confirmed(time.Now(), nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("confirmed did not return")
	}
	select {
	case <-s.wake:
	default:
		t.Error("the writer was not woken")
	}
	if !s.dirty {
		t.Error("the state is not marked to be written")
	}
}
