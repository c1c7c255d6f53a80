package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	ossignal "os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/mask"
	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
)

// Config is what Supervisor runs and how. The zero value of each field is
// its documented default.
type Config struct {
	// FilesOnly runs no child (Argv is empty): the loop acts on Changes
	// with template commands and with signals to the process named by
	// ReloadPidFile, until SIGTERM, SIGINT or cancellation end it (exit
	// status 0). A change never restarts anything.
	FilesOnly bool
	// ReloadPidFile, with FilesOnly, names the file holding the pid that
	// reload signals go to, read at each signal ("" : none).
	ReloadPidFile string
	// Initial, when set, is acted on as the first change (FilesOnly: the
	// files the first render changed on disk).
	Initial *Change
	// Argv is the command. It goes to execve unchanged; no shell ever.
	// Argv[0] without a slash is looked up in the PATH of Env (the
	// environment the command runs in), or in scaivault-run's own PATH when
	// Env has no PATH; relative PATH entries are skipped. With a slash it
	// is used as is, relative to Dir.
	Argv []string
	// Env is the child's complete environment, sorted by the caller. nil
	// means empty: the child never inherits scaivault-run's environment.
	Env []string
	// Dir is the child's working directory; "" is ours.
	Dir string
	// Credential, when set, is the uid, gid and groups every child starts
	// with (--user; set in the forked child before execve, groups first);
	// nil: ours. The supervisor keeps its own.
	Credential *syscall.Credential
	// Stdin, Stdout, Stderr are given to the child directly (no pipes,
	// unless Mask); nil means os.Stdin, os.Stdout, os.Stderr. When Stdin
	// is the controlling terminal and we are in its foreground group, the
	// child's process group becomes the foreground group.
	Stdin, Stdout, Stderr *os.File
	// Mask, when set, puts a pipe between the child's stdout and Stdout
	// and between its stderr and Stderr (stdin stays the child's own),
	// each read through a mask.Filter on this set: every value in it is
	// concealed on the way out. Every child of the run writes to the same
	// two pipes; Run returns once the last child exited and what it wrote
	// was written out (without waiting for descendants that keep the pipe
	// open).
	Mask *mask.Set
	// MaskHoldBack bounds how long output that may start a concealed
	// value is held back; 0 means DefaultMaskHoldBack.
	MaskHoldBack time.Duration
	// KillSignal stops the child for a restart and on SIGTERM/SIGINT or
	// cancellation; 0 means SIGTERM.
	KillSignal syscall.Signal
	// KillTimeout is how long a child has to exit after KillSignal before
	// SIGKILL; 0 means 7s.
	KillTimeout time.Duration
	// ReloadSignal, when set, is sent instead of a restart when only files
	// changed; 0 means none: file-only changes restart the child too.
	// Files with an action of their own (Change.Commands, Change.Signals)
	// do not count.
	ReloadSignal syscall.Signal
	// CommandMask, when set, is concealed in the output of template
	// commands before it is logged (the run's values, as Mask).
	CommandMask *mask.Set
	// Reap makes Run the reaper of every orphan (when PID 1 or a subreaper;
	// the caller calls signal.SetSubreaper itself).
	Reap bool
	// WaitMin and WaitMax debounce changes (--wait MIN[:MAX]): act once no
	// change came for WaitMin, and at the latest WaitMax after the first
	// pending change (0: no limit). WaitMin 0 acts at once.
	WaitMin, WaitMax time.Duration
	// RestartSplay waits a random 0..RestartSplay before acting on changes.
	RestartSplay time.Duration
	// Changes delivers changes to act on; nil means no watching.
	Changes <-chan Change
	// Signals, when set, delivers the signals to handle, caught by the
	// caller (signal.Forwarded) since before start-up; a SIGINT or SIGTERM
	// waiting in it when Run begins ends Run before the child starts
	// (ExitFailure). nil: Run catches them itself.
	Signals <-chan os.Signal
	// Logger receives the supervisor's log; nil discards it.
	Logger *slog.Logger
	// Observer, when set, is told of the child's life (the status
	// endpoint); nil: nobody is.
	Observer Observer
}

// Observer is told of the child's life, on Run's goroutine: each method
// must return at once (store a copy, count), never block or call back
// into the Supervisor.
type Observer interface {
	ChildStarted(pid int, at time.Time)
	ChildExited(pid int)
	// Restarting: a restart begins (the kill signal went out) because of
	// reason: the kind of what changed, "secret", "lease",
	// "certificate" or "list", or "multiple".
	Restarting(reason string)
	Reloaded()
	// CommandEnded: a template command ended: "ok", "failed" (non-zero
	// status), "timeout", or "error" (it did not start, or was killed at
	// exit).
	CommandEnded(result string)
	// LoopDone: Run's loop has ended; no child runs any more.
	LoopDone()
}

// nopObserver is the Observer of a Config without one.
type nopObserver struct{}

func (nopObserver) ChildStarted(int, time.Time) {}
func (nopObserver) ChildExited(int)             {}
func (nopObserver) Restarting(string)           {}
func (nopObserver) Reloaded()                   {}
func (nopObserver) CommandEnded(string)         {}
func (nopObserver) LoopDone()                   {}

// Change is one update of what the child runs on.
type Change struct {
	Env        []string // the new complete env; nil when unchanged
	EnvChanged bool     // restart needed
	// FilesChanged: files with no action of their own changed (as=file
	// files, templates without a command or reload signal): the reload
	// signal, or a restart without one.
	FilesChanged bool
	// Commands are the commands of changed templates that have one; they
	// run once the change settles, whatever else it does, and the change's
	// Applied waits for them to end.
	Commands []Command
	// Signals are the reload signals of changed templates that have one:
	// sent to the child in place of a restart.
	Signals []syscall.Signal
	// Wait, when set, is the debounce of the changed templates that have
	// a wait of their own, in place of WaitMin/WaitMax; with WaitAlso the
	// change also touches what WaitMin/WaitMax debounce (the environment,
	// as=file files, templates without a wait), and the two combine: the
	// longest quiet period, the shortest limit.
	Wait     *template.Wait
	WaitAlso bool
	Reasons  []string // what changed, for the log (never values)
	// Causes are the kinds of what changed ("secret", "lease",
	// "certificate", "list"), for the restart counter; may be empty.
	Causes []string
	// ActBy, when set, is when the child must run on this change at the
	// latest: the end of the credential or certificate it replaces. --wait
	// and --restart-splay give way to it: the act starts no later than
	// ActBy less the kill timeout and actMargin.
	ActBy time.Time
	// Applied, when set, is called on Run's goroutine once the child runs
	// on this change (after the restart or the reload signal). It must not
	// block. It is not called when the change is dropped because the child
	// is being stopped or exited.
	Applied func()
}

// Supervisor runs one command. Create it with New; call Run once.
type Supervisor struct {
	cfg   Config
	log   *slog.Logger
	spawn func(env []string) (child, error)
	fork  func(fork func() (int, error)) (child, error) // a template command, to its one waiter
	randN func(n int64) int64

	// Everything below is owned by Run's goroutine.
	st       state
	cur      child
	env      []string // the env cur runs with
	nextEnv  []string // the env of the restart in progress
	changes  <-chan Change
	pending  *batch    // changes not acted on yet
	inflight *batch    // the changes a restart in progress applies
	due      bool      // pending is settled and waits for a running child
	quiet    timer     // WaitMin since the last change
	latest   timer     // the earliest wait limit of the pending changes
	latestBy time.Time // when latest fires
	splay    timer     // random delay before acting
	deadline timer     // the latest moment to act on pending (its ActBy)
	kill     timer     // KillTimeout after the kill signal
	// cmdRunning: the files whose command runs (one each); cmdQueued:
	// the next command of such a file.
	cmdRunning map[string]bool
	cmdQueued  map[string]*queuedCmd
	cmdDone    chan func()
	stopCmds   chan struct{} // closed when Run ends: kill the commands left
	code       int
	err        error
}

// New returns a supervisor for cfg, with defaults filled in.
func New(cfg Config) *Supervisor {
	if cfg.KillSignal == 0 {
		cfg.KillSignal = syscall.SIGTERM
	}
	if cfg.KillTimeout <= 0 {
		cfg.KillTimeout = 7 * time.Second
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Env == nil {
		cfg.Env = []string{}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{cfg: cfg, log: log, randN: rand.Int64N, changes: cfg.Changes,
		cmdDone: make(chan func()), stopCmds: make(chan struct{}),
		cmdRunning: map[string]bool{}, cmdQueued: map[string]*queuedCmd{}}
}

// Run starts the child, forwards signals, acts on Changes, and returns the
// child's exit status once it exits on its own (there is no restart loop):
// its exit code, or 128+N when signal N killed it. When the command cannot
// be found it returns 127, when it cannot be executed 126, when it cannot
// be started for another reason 125, each with an error; a restart that
// fails to start the new child ends Run the same way. A first SIGTERM or
// SIGINT, or ctx's cancellation, sends KillSignal to the child's process
// group and arms KillTimeout (a SIGTERM or SIGINT is forwarded as itself
// instead, each time it comes); the timeout sends SIGKILL;
// Run then returns the child's status. Run returns as soon as the child
// has exited, whatever its descendants do with their stdio.
func (s *Supervisor) Run(ctx context.Context) (exitCode int, err error) {
	if len(s.cfg.Argv) == 0 && !s.cfg.FilesOnly {
		return ExitFailure, errors.New("start child: no command")
	}
	runtime.LockOSThread() // the parent-death signal follows the forking thread
	defer runtime.UnlockOSThread()
	sigs := s.cfg.Signals
	if sigs == nil {
		own := make(chan os.Signal, 64)
		ossignal.Notify(own, signal.Forwarded()...)
		defer ossignal.Stop(own)
		sigs = own
	}
	if sig := pendingStop(sigs); sig != nil {
		return ExitFailure, fmt.Errorf("start-up interrupted by %s; no child started", signal.Name(sig.(syscall.Signal)))
	}
	sp, err := newSpawner(&s.cfg, s.log)
	if err != nil {
		return ExitFailure, err
	}
	defer sp.close()
	s.spawn, s.fork = sp.spawn, sp.start
	defer s.endCommands()
	return s.loop(ctx, sigs)
}

// pendingStop drains the signals that came before the child: the first
// SIGINT or SIGTERM among them, or nil; the others are dropped (there was
// no child to forward them to).
func pendingStop(sigs <-chan os.Signal) os.Signal {
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGINT || sig == syscall.SIGTERM {
				return sig
			}
		default:
			return nil
		}
	}
}

// loop is the supervisor's event loop; each arm calls one method.
func (s *Supervisor) loop(ctx context.Context, sigs <-chan os.Signal) (int, error) {
	defer s.stopTimers()
	defer s.cfg.Observer.LoopDone()
	if s.cfg.FilesOnly {
		s.cur, s.env, s.st = &pidFileTarget{path: s.cfg.ReloadPidFile}, s.cfg.Env, stateRunning
	} else {
		s.startChild(s.cfg.Env)
	}
	if c := s.cfg.Initial; c != nil && s.st == stateRunning {
		s.onChange(*c, true)
	}
	done := ctx.Done()
	for s.st != stateExited {
		select {
		case sig := <-sigs:
			s.onSignal(sig)
		case st := <-s.cur.done():
			s.onExit(st)
		case c, ok := <-s.changes:
			s.onChange(c, ok)
		case <-s.quiet.C:
			s.onSettled()
		case <-s.latest.C:
			s.onSettled()
		case <-s.splay.C:
			s.onSplayed()
		case <-s.deadline.C:
			s.onDeadline()
		case <-s.kill.C:
			s.onKillTimeout()
		case f := <-s.cmdDone:
			f()
		case <-done:
			done = nil
			s.onCancel()
		}
	}
	return s.code, s.err
}
