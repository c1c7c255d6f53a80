package run

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
)

// The loop's timers, states and policies, under testing/synctest with fake
// children: time is virtual, so every timing below is exact.

type fakeWorld struct {
	mu       sync.Mutex
	t0       time.Time
	events   []string
	children []*fakeChild
	ignore   map[syscall.Signal]bool // signals children survive (besides forwarded ones)
	failNext error                   // the next spawn fails with it
	cmds     int                     // template commands forked
	cmdTakes time.Duration           // how long a command runs; 0: until signalled
	cmdCode  int                     // its exit status
}

type fakeChild struct {
	w   *fakeWorld
	id  int
	env []string
	ch  chan signal.Status
	end bool
	// ended, when not nil, is closed when it ends.
	ended chan struct{}
}

func (w *fakeWorld) record(format string, args ...any) {
	w.events = append(w.events, fmt.Sprintf("%v ", time.Since(w.t0))+fmt.Sprintf(format, args...))
}

func (w *fakeWorld) spawn(env []string) (child, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.failNext; err != nil {
		w.failNext = nil
		return nil, err
	}
	c := &fakeChild{w: w, id: 100 + len(w.children), env: env, ch: make(chan signal.Status, 1)}
	w.children = append(w.children, c)
	w.record("start %d %s", c.id, strings.Join(env, ","))
	return c, nil
}

// fork starts a fake template command: it exits with cmdCode after
// cmdTakes, or when signalled (SIGTERM unless ignored, SIGKILL).
func (w *fakeWorld) fork(func() (int, error)) (child, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := &fakeChild{w: w, id: 200 + w.cmds, ch: make(chan signal.Status, 1), ended: make(chan struct{})}
	w.cmds++
	w.record("command %d", c.id)
	if d := w.cmdTakes; d > 0 {
		go func() {
			select {
			case <-time.After(d):
			case <-c.ended:
				return
			}
			c.w.mu.Lock()
			defer c.w.mu.Unlock()
			if !c.end {
				c.w.record("command %d exits %d", c.id, c.w.cmdCode)
			}
			c.exitLocked(syscall.WaitStatus(c.w.cmdCode << 8))
		}()
	}
	return c, nil
}

func (c *fakeChild) pid() int                   { return c.id }
func (c *fakeChild) done() <-chan signal.Status { return c.ch }
func (c *fakeChild) signal(sig syscall.Signal) error {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	c.w.record("signal %d %s", c.id, signal.Name(sig))
	if sig == syscall.SIGKILL || (signal.ActionFor(sig) == signal.Stop && !c.w.ignore[sig]) {
		c.exitLocked(syscall.WaitStatus(sig))
	}
	return nil
}

// exit ends the child on its own with code.
func (c *fakeChild) exit(code int) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	c.exitLocked(syscall.WaitStatus(code << 8))
}

func (c *fakeChild) exitLocked(ws syscall.WaitStatus) {
	if !c.end {
		c.end = true
		c.ch <- signal.Status{Pid: c.id, Wait: ws}
		if c.ended != nil {
			close(c.ended)
		}
	}
}

func (w *fakeWorld) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

func (w *fakeWorld) child(i int) *fakeChild {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.children[i]
}

type loopResult struct {
	code int
	err  error
}

// startLoop runs the supervisor loop with fakes; call inside a bubble.
func startLoop(ctx context.Context, cfg Config, w *fakeWorld) (chan<- os.Signal, chan<- Change, <-chan loopResult) {
	sigs := make(chan os.Signal, 8)
	changes := make(chan Change, 16)
	cfg.Changes = changes
	if cfg.Env == nil {
		cfg.Env = []string{"V=1"}
	}
	cfg.Argv = []string{"app"}
	s := New(cfg)
	s.spawn, s.fork = w.spawn, w.fork
	s.randN = func(n int64) int64 { return n / 2 }
	w.t0 = time.Now()
	res := make(chan loopResult, 1)
	go func() {
		code, err := s.loop(ctx, sigs)
		res <- loopResult{code, err}
	}()
	return sigs, changes, res
}

func expectEvents(t *testing.T, w *fakeWorld, want ...string) {
	t.Helper()
	if got := w.log(); !slices.Equal(got, want) {
		t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func expectResult(t *testing.T, res <-chan loopResult, code int) loopResult {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-res:
		if r.code != code {
			t.Errorf("exit code %d (err %v); want %d", r.code, r.err, code)
		}
		return r
	default:
		t.Fatalf("loop still running; want exit %d", code)
	}
	return loopResult{}
}

func envChange(v string, applied func()) Change {
	return Change{Env: []string{"V=" + v}, EnvChanged: true, Reasons: []string{"secret app/db v" + v}, Applied: applied}
}

func TestLoopDebounceMergesChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		var applied atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{WaitMin: 100 * time.Millisecond}, w)
		for i, gap := range []time.Duration{0, 50 * time.Millisecond, 40 * time.Millisecond} {
			time.Sleep(gap)
			changes <- envChange(fmt.Sprint(i+2), func() { applied.Add(1) })
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if applied.Load() != 3 {
			t.Errorf("Applied called %d times; want 3", applied.Load())
		}
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"190ms signal 100 SIGTERM",
			"190ms start 101 V=4",
			"1.09s signal 101 SIGTERM")
	})
}

func TestLoopWaitMaxCapsDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{WaitMin: 100 * time.Millisecond, WaitMax: 250 * time.Millisecond}, w)
		for i := range 8 {
			changes <- envChange(fmt.Sprint(i+2), nil)
			time.Sleep(60 * time.Millisecond)
		}
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"250ms signal 100 SIGTERM",
			"250ms start 101 V=6",      // changes at 0..240ms
			"520ms signal 101 SIGTERM", // changes at 300..420ms settle 100ms after the last
			"520ms start 102 V=9",
			"1.48s signal 102 SIGTERM")
	})
}

func TestLoopSplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{WaitMin: 100 * time.Millisecond, RestartSplay: time.Second}, w)
		changes <- envChange("2", nil)
		time.Sleep(300 * time.Millisecond)
		changes <- envChange("3", nil) // during the splay: acted on with it
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"600ms signal 100 SIGTERM", // settled at 100ms, splay 500ms (randN gives half)
			"600ms start 101 V=3",
			"1.3s signal 101 SIGTERM")
	})
}

func TestLoopKillTimeoutOnRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{ignore: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{KillTimeout: 5 * time.Second}, w)
		changes <- envChange("2", nil)
		time.Sleep(10 * time.Second)
		cancel()
		time.Sleep(10 * time.Second)
		expectResult(t, res, 137)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGTERM",
			"5s signal 100 SIGKILL",
			"5s start 101 V=2",
			"10s signal 101 SIGTERM",
			"15s signal 101 SIGKILL")
	})
}

func TestLoopReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		var applied atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{ReloadSignal: syscall.SIGHUP}, w)
		changes <- Change{FilesChanged: true, Reasons: []string{"template x"}, Applied: func() { applied.Add(1) }}
		time.Sleep(time.Second)
		if applied.Load() != 1 {
			t.Errorf("Applied called %d times; want 1", applied.Load())
		}
		changes <- Change{FilesChanged: true, EnvChanged: true, Env: []string{"V=2"}} // env wins: restart
		time.Sleep(time.Second)
		changes <- Change{Reasons: []string{"nothing"}, Applied: func() { applied.Add(1) }} // nothing to do
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		if applied.Load() != 2 {
			t.Errorf("Applied called %d times; want 2", applied.Load())
		}
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGHUP",
			"1s signal 100 SIGTERM",
			"1s start 101 V=2",
			"3s signal 101 SIGTERM")
	})
}

func TestLoopFilesWithoutReloadSignalRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{}, w)
		changes <- Change{FilesChanged: true}
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGTERM",
			"0s start 101 V=1", // same env
			"1s signal 101 SIGTERM")
	})
}

// A child that exits on its own while a change is being debounced ends
// Run with its status; a child that exits during a restart does not.
func TestLoopExitWhilePending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		_, changes, res := startLoop(context.Background(), Config{WaitMin: time.Second}, w)
		changes <- envChange("2", func() { t.Error("Applied called for a dropped change") })
		time.Sleep(100 * time.Millisecond)
		w.child(0).exit(3)
		expectResult(t, res, 3)
		expectEvents(t, w, "0s start 100 V=1")
	})
}

func TestLoopChildDiesDuringRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{ignore: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{KillTimeout: 5 * time.Second}, w)
		changes <- envChange("2", nil)
		time.Sleep(time.Second)
		w.child(0).exit(1) // dies of its own during the kill: not reported
		time.Sleep(time.Second)
		w.child(1).exit(0)
		expectResult(t, res, 0)
		cancel()
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGTERM",
			"1s start 101 V=2")
	})
}

func TestLoopChangesDuringRestartWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{ignore: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		var mu sync.Mutex
		var order []string
		add := func(v string) func() { return func() { mu.Lock(); order = append(order, v); mu.Unlock() } }
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{KillTimeout: 5 * time.Second}, w)
		changes <- envChange("2", add("2"))
		time.Sleep(time.Second)
		changes <- envChange("3", add("3")) // settles while restarting
		time.Sleep(20 * time.Second)
		cancel()
		time.Sleep(10 * time.Second)
		expectResult(t, res, 137)
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(order, []string{"2", "3"}) {
			t.Errorf("Applied order %v", order)
		}
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGTERM",
			"5s signal 100 SIGKILL",
			"5s start 101 V=2",
			"5s signal 101 SIGTERM",
			"10s signal 101 SIGKILL",
			"10s start 102 V=3",
			"21s signal 102 SIGTERM",
			"26s signal 102 SIGKILL")
	})
}

// SIGTERM and SIGINT reach the child as received, each time; the first
// arms the kill timeout, and only the timeout escalates. --kill-signal is
// not used for them.
func TestLoopStopSignals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{ignore: map[syscall.Signal]bool{syscall.SIGINT: true, syscall.SIGTERM: true}}
		sigs, changes, res := startLoop(context.Background(), Config{KillSignal: syscall.SIGQUIT, KillTimeout: 10 * time.Second}, w)
		sigs <- syscall.SIGHUP
		sigs <- syscall.SIGPIPE // dropped
		time.Sleep(time.Second)
		sigs <- syscall.SIGINT
		time.Sleep(time.Second)
		changes <- envChange("2", func() { t.Error("Applied called while stopping") })
		time.Sleep(time.Second)
		sigs <- syscall.SIGTERM // second: forwarded too, no SIGKILL yet
		time.Sleep(time.Minute) // the kill timeout passes
		expectResult(t, res, 137)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGHUP",
			"1s signal 100 SIGINT",
			"3s signal 100 SIGTERM",
			"11s signal 100 SIGKILL")
	})
}

// A child that does not handle SIGINT dies of it: status 130, not 143.
func TestLoopSIGINTAsReceived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		sigs, _, res := startLoop(context.Background(), Config{KillTimeout: time.Minute}, w)
		sigs <- syscall.SIGINT
		expectResult(t, res, 130)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGINT")
	})
}

// Cancellation during a restart stops instead of starting the next child.
// Signals after it are forwarded as received; the kill timeout the restart
// armed escalates.
func TestLoopCancelDuringRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{ignore: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		ctx, cancel := context.WithCancel(context.Background())
		sigs, changes, res := startLoop(ctx, Config{KillTimeout: 10 * time.Second}, w)
		changes <- envChange("2", func() { t.Error("Applied called for a stopped restart") })
		time.Sleep(time.Second)
		cancel()
		sigs <- syscall.SIGTERM
		time.Sleep(time.Second)
		sigs <- syscall.SIGTERM
		time.Sleep(time.Minute) // the restart's kill timeout passes
		expectResult(t, res, 137)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGTERM",
			"1s signal 100 SIGTERM",
			"2s signal 100 SIGTERM",
			"10s signal 100 SIGKILL")
	})
}

func TestLoopRestartFailsToStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		_, changes, res := startLoop(context.Background(), Config{}, w)
		w.mu.Lock()
		w.failNext = fmt.Errorf("start %q: %w", "app", exec.ErrNotFound)
		w.mu.Unlock()
		changes <- envChange("2", func() { t.Error("Applied called for a failed restart") })
		r := expectResult(t, res, 127)
		if r.err == nil {
			t.Error("no error")
		}
	})
}

func TestLoopChangesClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{}, w)
		close(changes)
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w, "0s start 100 V=1", "1s signal 100 SIGTERM")
	})
}

// --wait and --restart-splay give way to a change's ActBy: the act starts
// at ActBy less the kill timeout and actMargin, so that the child runs on
// the new credential before the old one ends; with no time left, at once.
func TestLoopActByCapsWaitAndSplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		cfg := Config{WaitMin: time.Minute, WaitMax: 10 * time.Minute, RestartSplay: time.Hour, KillTimeout: 2 * time.Second}
		_, changes, res := startLoop(ctx, cfg, w)
		c := envChange("2", nil)
		c.ActBy = time.Now().Add(10 * time.Second) // act by 10s - 2s - 1s = 7s
		changes <- c
		time.Sleep(20 * time.Second)
		c = envChange("3", nil)
		c.ActBy = time.Now().Add(time.Second) // no time left: at once
		changes <- c
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"7s signal 100 SIGTERM",
			"7s start 101 V=2",
			"20s signal 101 SIGTERM",
			"20s start 102 V=3",
			"21s signal 102 SIGTERM")
	})
}

// A deadline that falls while a restart is in progress folds its changes
// into that restart: the new child starts on them, instead of being
// restarted once more after its start (which could pass the deadline).
func TestLoopActByDuringRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{ignore: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		ctx, cancel := context.WithCancel(context.Background())
		var applied atomic.Int32
		_, changes, res := startLoop(ctx, Config{KillTimeout: 2 * time.Second, WaitMin: time.Minute}, w)
		c := envChange("2", func() { applied.Add(1) })
		c.ActBy = time.Now().Add(3 * time.Second) // act at once: 3s - 2s - 1s
		changes <- c
		time.Sleep(500 * time.Millisecond)
		c = envChange("3", func() { applied.Add(1) })
		c.ActBy = time.Now().Add(3500 * time.Millisecond) // due at 1s, while the restart runs
		changes <- c
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := applied.Load(); n != 2 {
			t.Errorf("Applied called %d times, want 2", n)
		}
		cancel()
		time.Sleep(3 * time.Second) // the child ignores SIGTERM: the kill timeout ends it
		expectResult(t, res, 137)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGTERM",
			"2s signal 100 SIGKILL",
			"2s start 101 V=3",
			"10.5s signal 101 SIGTERM",
			"12.5s signal 101 SIGKILL")
	})
}

// A template with a command: the command runs once the change settles,
// the child is neither restarted nor signalled, and Applied (the release
// of what the file held) waits for the command to end.
func TestLoopTemplateCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{cmdTakes: 5 * time.Second}
		var applied atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{ReloadSignal: syscall.SIGHUP}, w)
		changes <- Change{Commands: []Command{{Dst: "a.conf", Argv: []string{"/bin/true"}}},
			Reasons: []string{"template a.conf"}, Applied: func() { applied.Add(1) }}
		time.Sleep(4 * time.Second)
		if applied.Load() != 0 {
			t.Errorf("Applied before the command ended")
		}
		time.Sleep(2 * time.Second)
		if applied.Load() != 1 {
			t.Errorf("Applied called %d times once the command ended; want 1", applied.Load())
		}
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s command 200",
			"5s command 200 exits 0",
			"6s signal 100 SIGTERM")
	})
}

// A failing command is not fatal; a command past its timeout gets SIGTERM,
// then SIGKILL after the grace; a restart for env runs the commands too.
func TestLoopTemplateCommandFailsAndTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{cmdTakes: time.Second, cmdCode: 3, ignore: map[syscall.Signal]bool{syscall.SIGTERM: true}}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{KillTimeout: time.Second}, w)
		changes <- Change{Commands: []Command{{Dst: "a.conf", Argv: []string{"/bin/false"}}}}
		time.Sleep(2 * time.Second)
		w.mu.Lock()
		w.cmdTakes = time.Hour
		w.mu.Unlock()
		changes <- Change{Commands: []Command{{Dst: "a.conf", Argv: []string{"/bin/sleep"}, Timeout: 10 * time.Second}},
			EnvChanged: true, Env: []string{"V=2"}}
		time.Sleep(20 * time.Second)
		cancel()
		time.Sleep(2 * time.Second)
		expectResult(t, res, 137)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s command 200",
			"1s command 200 exits 3",
			"2s command 201",
			"2s signal 100 SIGTERM", // ignored: killed after KillTimeout
			"3s signal 100 SIGKILL",
			"3s start 101 V=2",
			"12s signal 201 SIGTERM", // the command's timeout
			"14s signal 201 SIGKILL", // its grace
			"22s signal 101 SIGTERM",
			"23s signal 101 SIGKILL")
	})
}

// Templates with a reload signal of their own: that signal, no restart;
// with files of no action of their own and --reload-signal, both signals.
func TestLoopTemplateSignals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{ReloadSignal: syscall.SIGHUP}, w)
		changes <- Change{Signals: []syscall.Signal{syscall.SIGUSR1}}
		time.Sleep(time.Second)
		changes <- Change{FilesChanged: true, Signals: []syscall.Signal{syscall.SIGUSR2, syscall.SIGHUP}}
		time.Sleep(time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s signal 100 SIGUSR1",
			"1s signal 100 SIGHUP",
			"1s signal 100 SIGUSR2",
			"2s signal 100 SIGTERM")
	})
}

// A change whose files all have a wait of their own is debounced with it;
// one that also touches what --wait debounces combines the two.
func TestLoopTemplateWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{WaitMin: time.Second, WaitMax: 4 * time.Second}, w)
		changes <- Change{FilesChanged: true, Wait: &template.Wait{Min: 10 * time.Second}}
		time.Sleep(20 * time.Second)
		changes <- Change{FilesChanged: true, Wait: &template.Wait{Min: 3 * time.Second}, WaitAlso: true}
		time.Sleep(10 * time.Second)
		changes <- Change{FilesChanged: true, Wait: &template.Wait{Min: 6 * time.Second}, WaitAlso: true}
		time.Sleep(10 * time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"10s signal 100 SIGTERM", // its own 10s, not --wait's 1s
			"10s start 101 V=1",
			"23s signal 101 SIGTERM", // 3s: the longer quiet period
			"23s start 102 V=1",
			"34s signal 102 SIGTERM", // 4s: --wait's limit
			"34s start 103 V=1",
			"40s signal 103 SIGTERM")
	})
}

func TestCombineWait(t *testing.T) {
	for _, tc := range []struct{ a, b, want template.Wait }{
		{template.Wait{}, template.Wait{Min: time.Second}, template.Wait{Min: time.Second}},
		{template.Wait{Min: time.Second, Max: 4 * time.Second}, template.Wait{Min: 2 * time.Second}, template.Wait{Min: 2 * time.Second, Max: 4 * time.Second}},
		{template.Wait{Min: time.Second, Max: 4 * time.Second}, template.Wait{Min: 2 * time.Second, Max: 3 * time.Second}, template.Wait{Min: 2 * time.Second, Max: 3 * time.Second}},
	} {
		if got := combineWait(tc.a, tc.b); got != tc.want {
			t.Errorf("combineWait(%v, %v) = %v; want %v", tc.a, tc.b, got, tc.want)
		}
		if got := combineWait(tc.b, tc.a); got != tc.want {
			t.Errorf("combineWait(%v, %v) = %v; want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

// A change with a shorter limit than the pending batch's brings the act
// forward: each limit counts from its own change.
func TestLoopWaitShorterLimitJoins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{}
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{}, w)
		changes <- Change{FilesChanged: true, Wait: &template.Wait{Min: time.Second, Max: 30 * time.Second}}
		for range 10 { // every 0.3s for 3s: the quiet period never passes
			time.Sleep(300 * time.Millisecond)
			changes <- Change{FilesChanged: true, Wait: &template.Wait{Min: time.Second, Max: 2 * time.Second}}
		}
		time.Sleep(5 * time.Second)
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"2.3s signal 100 SIGTERM", // the first short-limit change at 0.3s, plus 2s
			"2.3s start 101 V=1",
			"4s signal 101 SIGTERM", // the next batch (from 2.4s): quiet 1s after the last change at 3s
			"4s start 102 V=1",
			"8s signal 102 SIGTERM")
	})
}

// One command per file at a time: changes that come while it runs are
// coalesced into one run of the latest once it has ended, and their
// Applied wait for that run.
func TestLoopTemplateCommandsSerialized(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &fakeWorld{cmdTakes: 5 * time.Second}
		var applied atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		_, changes, res := startLoop(ctx, Config{}, w)
		cmd := Change{Commands: []Command{{Dst: "a.conf", Argv: []string{"/bin/true"}}}, Applied: func() { applied.Add(1) }}
		changes <- cmd
		time.Sleep(time.Second)
		changes <- cmd
		time.Sleep(time.Second)
		changes <- cmd
		time.Sleep(7 * time.Second) // 9s: the second run is still going
		if applied.Load() != 1 {
			t.Errorf("Applied %d times at 9s; want 1", applied.Load())
		}
		time.Sleep(2 * time.Second)
		if applied.Load() != 3 {
			t.Errorf("Applied %d times at 11s; want 3", applied.Load())
		}
		cancel()
		expectResult(t, res, 143)
		expectEvents(t, w,
			"0s start 100 V=1",
			"0s command 200",
			"5s command 200 exits 0",
			"5s command 201",
			"10s command 201 exits 0",
			"11s signal 100 SIGTERM")
	})
}
