//go:build linux

package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// running is Run in the test process with its child's stdout on a pipe.
type running struct {
	t       *testing.T
	lines   <-chan string
	seen    []string
	changes chan Change
	cancel  context.CancelFunc
	result  chan [2]any
}

func startRunning(t *testing.T, cfg Config) *running {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	rn := &running{t: t, lines: lineReader(r), changes: make(chan Change, 10), cancel: cancel, result: make(chan [2]any, 1)}
	cfg.Changes, cfg.Stdout, cfg.Stdin, cfg.Stderr = rn.changes, w, devNull(t), devNull(t)
	go func() {
		code, err := New(cfg).Run(ctx)
		w.Close()
		rn.result <- [2]any{code, err}
	}()
	t.Cleanup(func() {
		cancel()
		rn.wait()
	})
	return rn
}

func (rn *running) expect(re string) []string {
	rn.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(deadline)
	for {
		select {
		case l, ok := <-rn.lines:
			if !ok {
				rn.t.Fatalf("output ended before a line matching %q; seen %q", re, rn.seen)
			}
			rn.seen = append(rn.seen, l)
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			rn.t.Fatalf("no line matching %q within %v; seen %q", re, deadline, rn.seen)
		}
	}
}

// wait returns Run's result, after reading the rest of the output.
func (rn *running) wait() (int, error) {
	rn.t.Helper()
	select {
	case r := <-rn.result:
		rn.result <- r
		for l := range rn.lines {
			rn.seen = append(rn.seen, l)
		}
		err, _ := r[1].(error)
		return r[0].(int), err
	case <-time.After(deadline):
		rn.t.Fatalf("Run did not return within %v", deadline)
	}
	return 0, nil
}

func (rn *running) count(re string) int {
	n := 0
	for _, l := range rn.seen {
		if regexp.MustCompile(re).MatchString(l) {
			n++
		}
	}
	return n
}

func TestRestartOnEnvChange(t *testing.T) {
	t.Parallel()
	rn := startRunning(t, Config{Argv: childArgv("signals"), Env: childEnv("SVTEST_VAL=one")})
	first := rn.expect(`^(\d+) ready .* val=one$`)[1]
	applied := make(chan error, 1)
	rn.changes <- Change{
		Env: childEnv("SVTEST_VAL=two"), EnvChanged: true, Reasons: []string{"secret app/db v1→v2"},
		Applied: func() {
			// The old child is gone (its one waiter reaped it) when the new one runs.
			_, err := os.Stat("/proc/" + first)
			if !errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("old child %s still there: %v", first, err)
			} else {
				err = nil
			}
			applied <- err
		},
	}
	rn.expect(`^` + first + ` got SIGTERM$`)
	second := rn.expect(`^(\d+) ready .* val=two$`)[1]
	if second == first {
		t.Errorf("restart kept pid %s", first)
	}
	select {
	case err := <-applied:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(deadline):
		t.Fatal("Applied not called")
	}
	rn.cancel()
	rn.expect(`^` + second + ` got SIGTERM$`)
	if code, err := rn.wait(); code != 0 || err != nil {
		t.Errorf("Run = %d, %v", code, err)
	}
}

func TestReloadOnFilesChange(t *testing.T) {
	t.Parallel()
	rn := startRunning(t, Config{Argv: childArgv("signals"), Env: childEnv(), ReloadSignal: syscall.SIGHUP})
	pid := rn.expect(`^(\d+) ready `)[1]
	applied := make(chan struct{})
	rn.changes <- Change{FilesChanged: true, Reasons: []string{"template nginx.conf"}, Applied: func() { close(applied) }}
	rn.expect(`^` + pid + ` got SIGHUP$`)
	<-applied
	rn.cancel()
	rn.expect(`^` + pid + ` got SIGTERM$`)
	if code, err := rn.wait(); code != 0 || err != nil {
		t.Errorf("Run = %d, %v", code, err)
	}
	if n := rn.count(`ready`); n != 1 {
		t.Errorf("%d children started; want 1 (a reload, no restart): %q", n, rn.seen)
	}
}

func TestFilesChangeRestartsWithoutReloadSignal(t *testing.T) {
	t.Parallel()
	rn := startRunning(t, Config{Argv: childArgv("signals"), Env: childEnv("SVTEST_VAL=same")})
	first := rn.expect(`^(\d+) ready `)[1]
	rn.changes <- Change{FilesChanged: true}
	rn.expect(`^` + first + ` got SIGTERM$`)
	second := rn.expect(`^(\d+) ready .* val=same$`)[1]
	if second == first {
		t.Errorf("restart kept pid %s", first)
	}
}

// Several changes within the quiet period make one restart, on the newest env.
func TestDebounceOneRestart(t *testing.T) {
	t.Parallel()
	rn := startRunning(t, Config{Argv: childArgv("signals"), Env: childEnv("SVTEST_VAL=0"), WaitMin: 300 * time.Millisecond})
	rn.expect(`ready .* val=0$`)
	for i := 1; i <= 5; i++ {
		rn.changes <- Change{Env: childEnv(fmt.Sprintf("SVTEST_VAL=%d", i)), EnvChanged: true}
	}
	rn.expect(`ready .* val=5$`)
	rn.cancel()
	if code, err := rn.wait(); code != 0 || err != nil {
		t.Errorf("Run = %d, %v", code, err)
	}
	if n := rn.count(`ready`); n != 2 {
		t.Errorf("%d children started; want 2: %q", n, rn.seen)
	}
}
