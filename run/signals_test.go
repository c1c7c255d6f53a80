//go:build linux

package run

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Signals sent to the supervisor process reach the child's process group.
func TestForwardSignals(t *testing.T) {
	t.Parallel()
	p := startSupervisor(t, svConfig{Argv: childArgv("signals"), Env: childEnv()}, nil, nil)
	m := p.expect(`^(\d+) ready pg=(\d+) `)
	if m[1] != m[2] {
		t.Errorf("child %s is in process group %s; want its own", m[1], m[2])
	}
	if pg, _ := unix.Getpgid(p.cmd.Process.Pid); strconv.Itoa(pg) == m[2] {
		t.Errorf("child shares the supervisor's process group %d", pg)
	}
	sigs := []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT, syscall.SIGWINCH}
	for _, sig := range sigs {
		p.signal(sig)
		p.expect(`^\d+ got ` + signalName(sig) + `$`)
	}
	// Several in a row (distinct signals, so none coalesces): all arrive.
	for _, sig := range sigs {
		p.signal(sig)
	}
	want := map[string]bool{}
	for _, sig := range sigs {
		want[signalName(sig)] = true
	}
	for len(want) > 0 {
		m := p.expect(`^\d+ got (\w+)$`)
		delete(want, m[1])
	}
	p.signal(syscall.SIGTERM)
	p.expect(`^\d+ got SIGTERM$`)
	p.expect(`^\d+ sv exit 0 err=<nil>$`)
	if code := p.wait(); code != 0 {
		t.Errorf("supervisor exit %d", code)
	}
}

func signalName(sig syscall.Signal) string { return unix.SignalName(sig) }

// SIGTERM and SIGINT reach the child as received, whatever the kill
// signal (that one is for stops scaivault-run decides on).
func TestStopSignals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		send, kill syscall.Signal
		want       string
	}{
		{syscall.SIGTERM, 0, "SIGTERM"},
		{syscall.SIGINT, 0, "SIGINT"},
		{syscall.SIGTERM, syscall.SIGUSR2, "SIGTERM"},
		{syscall.SIGINT, syscall.SIGTERM, "SIGINT"},
	}
	for _, tt := range tests {
		t.Run(signalName(tt.send)+"-"+tt.want, func(t *testing.T) {
			t.Parallel()
			p := startSupervisor(t, svConfig{Argv: childArgv("signals"), Env: childEnv("SVTEST_EXIT_ON=" + tt.want), KillSignal: tt.kill}, nil, nil)
			p.expect(`^\d+ ready `)
			p.signal(tt.send)
			p.expect(`^\d+ got ` + tt.want + `$`)
			p.expect(`^\d+ sv exit 0 `)
			if code := p.wait(); code != 0 {
				t.Errorf("supervisor exit %d", code)
			}
		})
	}
}

// A child that ignores the stop signal gets SIGKILL after the kill
// timeout; a second signal is forwarded like the first, not escalated.
func TestKillEscalation(t *testing.T) {
	t.Parallel()
	p := startSupervisor(t, svConfig{Argv: childArgv("signals"), Env: childEnv("SVTEST_EXIT_ON="), KillTimeout: 300 * time.Millisecond}, nil, nil)
	p.expect(`^\d+ ready `)
	p.signal(syscall.SIGINT)
	p.expect(`^\d+ got SIGINT$`) // handled: the second cannot coalesce with it
	p.signal(syscall.SIGINT)
	p.expect(`^\d+ got SIGINT$`)
	p.expect(`^\d+ sv exit 137 `)
	if code := p.wait(); code != 137 {
		t.Errorf("supervisor exit %d; want 137", code)
	}
}

// kill -9 of the supervisor takes the child with it (parent-death signal).
func TestParentDeath(t *testing.T) {
	t.Parallel()
	p := startSupervisor(t, svConfig{Argv: childArgv("signals"), Env: childEnv()}, nil, nil)
	m := p.expect(`^(\d+) ready `)
	child, _ := strconv.Atoi(m[1])
	p.signal(syscall.SIGKILL)
	p.wait()
	pidGone(t, child)
}

// A SIGINT or SIGTERM that arrived during the hand-over from start-up (it
// waits in the one signal channel) ends Run before the child starts, with
// ExitFailure; other signals waiting there are dropped.
func TestSignalAtHandOver(t *testing.T) {
	marker := t.TempDir() + "/started"
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		sigs := make(chan os.Signal, 4)
		sigs <- syscall.SIGHUP
		sigs <- sig
		code, err := New(Config{Argv: []string{"/bin/sh", "-c", "touch " + marker}, Signals: sigs}).Run(context.Background())
		if code != ExitFailure || err == nil || !strings.Contains(err.Error(), "interrupted by "+signalName(sig)) {
			t.Errorf("%s waiting: exit %d, %v; want %d, interrupted", signalName(sig), code, err, ExitFailure)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s waiting: the child was started", signalName(sig))
		}
	}
	// Only a SIGHUP waiting: dropped, the child runs.
	sigs := make(chan os.Signal, 4)
	sigs <- syscall.SIGHUP
	if code, err := New(Config{Argv: []string{"/bin/sh", "-c", "touch " + marker}, Signals: sigs}).Run(context.Background()); code != 0 || err != nil {
		t.Fatalf("exit %d, %v", code, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the child did not run")
	}
}
