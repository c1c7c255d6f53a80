package signal

import (
	"context"
	"errors"
	"log/slog"
	"os"
	ossignal "os/signal"
	"sync"
	"syscall"
)

// Reaper reaps every child of the process, orphans included, from one
// goroutine that wakes on SIGCHLD and loops wait4(-1, WNOHANG). Children
// registered with Start get their status handed over on a channel; every
// other child is reaped silently (a debug log line with its pid). Use it
// when the process is PID 1 or a subreaper; while it runs it must be the
// only caller of wait4 in the process.
type Reaper struct {
	log    *slog.Logger
	sigs   chan os.Signal
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex // held while reaping and while a child is started and registered
	watch map[int]chan Status
}

// StartReaper starts the reaper's goroutine; it runs until ctx is done or
// Stop is called. log may be nil.
func StartReaper(ctx context.Context, log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Reaper{
		log:    log,
		sigs:   make(chan os.Signal, 1), // SIGCHLDs coalesce: one pending wake-up covers them all
		cancel: cancel,
		done:   make(chan struct{}),
		watch:  make(map[int]chan Status),
	}
	ossignal.Notify(r.sigs, syscall.SIGCHLD)
	go r.run(ctx)
	return r
}

// Stop ends the reaper's goroutine and waits for it. Children still
// registered get no status.
func (r *Reaper) Stop() {
	r.cancel()
	<-r.done
}

// Start runs fork, which starts one child and returns its pid, and
// registers the pid so that its status is handed over on the returned
// channel (buffered, one value). The reaper does not reap while fork runs,
// so a child that exits at once is not lost.
func (r *Reaper) Start(fork func() (pid int, err error)) (int, <-chan Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Status, 1)
	r.watch[pid] = ch
	return pid, ch, nil
}

func (r *Reaper) run(ctx context.Context) {
	defer close(r.done)
	defer ossignal.Stop(r.sigs)
	r.reap() // children that ended before Notify took effect
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.sigs:
			r.reap()
		}
	}
}

// reap collects every child that has ended, without blocking.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none has ended
			return
		}
		if ch, ok := r.watch[pid]; ok {
			delete(r.watch, pid)
			ch <- Status{Pid: pid, Wait: ws}
			continue
		}
		r.log.Debug("reaped orphan", "pid", pid, "code", ExitCode(ws))
	}
}
