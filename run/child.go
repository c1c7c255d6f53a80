package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/scailabs/scaivault-run/signal"
)

// child is one started child process as the loop sees it.
type child interface {
	pid() int
	signal(sig syscall.Signal) error // to the child's process group
	done() <-chan signal.Status      // one value, when the child has ended
}

type procChild struct {
	id int
	ch <-chan signal.Status
}

func (c *procChild) pid() int                        { return c.id }
func (c *procChild) signal(sig syscall.Signal) error { return signal.KillGroup(c.id, sig) }
func (c *procChild) done() <-chan signal.Status      { return c.ch }

// setupError marks a failure of scaivault-run itself to start the child
// (exit status 125), as opposed to the command not being found or not
// being executable.
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

func exitCodeFor(err error) int {
	if se := (*setupError)(nil); errors.As(err, &se) {
		return ExitFailure
	}
	return ExitCodeForExecError(err)
}

// spawner starts children for one Run: the process attributes, the one
// waiter per child (or the reaper), the terminal's foreground group.
type spawner struct {
	cfg    *Config
	log    *slog.Logger
	ctty   int // controlling terminal handed to the child, or -1
	guard  *signal.TTYGuard
	reaper *signal.Reaper // nil unless cfg.Reap
	wg     sync.WaitGroup // waiter goroutines
	// out and errOut are the child's stdout and stderr under --mask (nil
	// otherwise: the child gets cfg.Stdout and cfg.Stderr themselves).
	out, errOut *maskPipe
}

func newSpawner(cfg *Config, log *slog.Logger) (*spawner, error) {
	sp := &spawner{cfg: cfg, log: log, ctty: -1}
	if cfg.Mask != nil {
		hold := cfg.MaskHoldBack
		if hold <= 0 {
			hold = DefaultMaskHoldBack
		}
		var err error
		if sp.out, err = startMaskPipe("stdout", cfg.Stdout, cfg.Mask, hold, log); err != nil {
			return nil, err
		}
		if sp.errOut, err = startMaskPipe("stderr", cfg.Stderr, cfg.Mask, hold, log); err != nil {
			sp.out.stop()
			return nil, err
		}
	}
	sp.ctty, sp.guard = signal.ForegroundTTY(cfg.Stdin), signal.GuardTTY()
	if cfg.Reap {
		// Not Run's context: the reaper must outlive its cancellation to
		// hand over the status of the child stopped because of it.
		sp.reaper = signal.StartReaper(context.Background(), log)
	}
	if sp.ctty >= 0 {
		log.Debug("child gets the terminal's foreground group")
	}
	return sp, nil
}

// close joins the spawner's goroutines, writes out the last child's
// output (--mask) and gives the terminal back. The last child has ended by
// then.
func (sp *spawner) close() {
	if sp.reaper != nil {
		sp.reaper.Stop()
	}
	sp.wg.Wait()
	if sp.out != nil {
		// Both at once: each waits at most maxStopWait for its stream.
		done := make(chan struct{})
		go func() { sp.errOut.stop(); close(done) }()
		sp.out.stop()
		<-done
	}
	if sp.ctty >= 0 {
		if err := signal.RestoreForeground(sp.ctty); err != nil {
			sp.log.Warn("terminal foreground not restored", "err", err)
		}
	}
	sp.guard.Release()
}

// spawn starts the command on env. It runs on Run's locked goroutine.
func (sp *spawner) spawn(env []string) (child, error) {
	argv := sp.cfg.Argv
	if err := checkDir(sp.cfg.Dir); err != nil {
		return nil, &setupError{fmt.Errorf("start %q: %w", argv[0], err)}
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return nil, fmt.Errorf("start %q: %w", argv[0], err)
	}
	files := []uintptr{sp.cfg.Stdin.Fd(), sp.cfg.Stdout.Fd(), sp.cfg.Stderr.Fd()}
	if sp.out != nil {
		files[1], files[2] = sp.out.wfd, sp.errOut.wfd
	}
	attr := &syscall.ProcAttr{
		Dir:   sp.cfg.Dir,
		Env:   env,
		Files: files,
		Sys:   signal.ChildAttr(sp.ctty),
	}
	attr.Sys.Credential = sp.cfg.Credential
	fork := func() (pid int, err error) {
		err = sp.guard.Fork(func() error {
			pid, err = syscall.ForkExec(path, argv, attr)
			return err
		})
		return pid, err
	}
	c, err := sp.start(fork)
	runtime.KeepAlive(sp.cfg.Stdin) // their descriptors were in use until here
	runtime.KeepAlive(sp.cfg.Stdout)
	runtime.KeepAlive(sp.cfg.Stderr)
	if sp.out != nil {
		runtime.KeepAlive(sp.out.w)
		runtime.KeepAlive(sp.errOut.w)
	}
	if err != nil {
		return nil, fmt.Errorf("start %q: %w", argv[0], err)
	}
	return c, nil
}

// start forks and hands the child to its one waiter: the reaper, or a
// goroutine of its own blocked in wait4(pid).
func (sp *spawner) start(fork func() (int, error)) (child, error) {
	if sp.reaper != nil {
		pid, ch, err := sp.reaper.Start(fork)
		if err != nil {
			return nil, err
		}
		return &procChild{id: pid, ch: ch}, nil
	}
	pid, err := fork()
	if err != nil {
		return nil, err
	}
	ch := make(chan signal.Status, 1)
	sp.wg.Add(1)
	go func() {
		defer sp.wg.Done()
		ch <- signal.WaitPid(pid)
	}()
	return &procChild{id: pid, ch: ch}, nil
}

// checkDir fails when dir is set and is not a directory, before a fork
// whose chdir error would look like a missing command.
func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("working directory %q: not a directory", dir)
	}
	return nil
}
