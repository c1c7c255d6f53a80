//go:build linux

package run

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// TestPhaseOutageRefused: the server's port closes, as when its process
// stops, and opens again: the child runs on without a restart; one warning
// once the outage has lasted the threshold (300ms here), then warnings
// with the count (at most one a second here), one line when the server
// answers again, saying for how long it did not; the reconnections of the
// events stream at debug only.
func TestPhaseOutageRefused(t *testing.T) {
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Client.Outage = fetch.OutagePolicy{After: 300 * time.Millisecond, Every: time.Second}
	})
	pid := p.ready("pw-SECRET-1")
	p.log.await(t, `msg="following change events"`, 1)
	addr := p.hs.Listener.Addr().String()
	before := len(p.log.String())
	p.hs.Listener.Close()
	p.hs.CloseClientConnections()
	p.log.await(t, `level=WARN msg="scaivault unreachable; the child keeps running on what it has" for=\S+ failures=\d+ failing=\S+ error=.*connection refused`, 1)
	p.log.await(t, `level=WARN msg="scaivault still unreachable" for=\S+ failures=\d+ `, 2)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	hs := &http.Server{Handler: p.srv.Handler()}
	go hs.Serve(ln)
	up := len(p.log.String())
	p.log.await(t, `level=INFO msg="scaivault answering normally again" after=\S+ failures=\d+`, 1)
	p.quiet()
	p.write("app/db", map[string]any{"password": "pw-SECRET-back", "username": "app"})
	p.restarted(pid, "pw-SECRET-back")

	log := p.log.String()
	if n := p.log.count(`level=WARN msg="scaivault unreachable;`); n != 1 {
		t.Errorf("%d first warnings, want 1", n)
	}
	if n := p.log.count(`answering with errors`); n != 0 {
		t.Errorf("refused connections logged as errors")
	}
	if n := p.log.count(`level=INFO msg="scaivault events stream dropped`); n != 0 {
		t.Errorf("%d reconnections at info", n)
	}
	if n := p.log.count(`level=DEBUG msg="scaivault events stream dropped; reconnecting"`); n < 2 {
		t.Errorf("%d reconnections at debug, want every one", n)
	}
	for _, l := range strings.Split(log[before:up], "\n") {
		if strings.Contains(l, "level=INFO") || strings.Contains(l, "level=ERROR") ||
			(strings.Contains(l, "level=WARN") && !strings.Contains(l, `msg="scaivault `)) {
			t.Errorf("logged during the outage: %s", l)
		}
	}
	p.cancel()
	p.wait()
	hs.Close()
}
