package run

import (
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/mask"
	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
)

// Command is a template's command (its config block's command): run once
// a change that rewrote Dst settles, after the file was written.
type Command struct {
	Dst     string        // the file whose change runs it, for the log
	Argv    []string      // no shell
	Timeout time.Duration // 0: template.DefaultCommandTimeout
}

// commandTail is how much of a command's output (stdout and stderr
// together, masked) is kept for its log line: the end, where errors are.
const commandTail = 2048

// commandGrace is how long a command that outlived its timeout has after
// SIGTERM before its process group is killed.
const commandGrace = 2 * time.Second

// cmdRun is one template command in flight: its process, and the
// goroutine that reads its output and waits for it.
type cmdRun struct {
	c     Command
	proc  child
	start time.Time
	out   *tailBuffer
	read  chan struct{} // closed once its output pipe reached EOF
}

// queuedCmd is the next command of a file whose previous command still
// runs: the latest change's, with the done callbacks of every change it
// stands for.
type queuedCmd struct {
	c    Command
	env  []string
	done []func()
}

// runCommand runs c now, or, while the previous command of the same file
// still runs, once that one has ended: one command per file at a time
// (as consul-template), changes that came meanwhile coalesced into one
// run of the latest.
func (s *Supervisor) runCommand(c Command, env []string, done func()) {
	if !s.cmdRunning[c.Dst] {
		s.startCommand(c, env, done)
		return
	}
	q := s.cmdQueued[c.Dst]
	if q == nil {
		q = &queuedCmd{}
		s.cmdQueued[c.Dst] = q
		s.log.Info("template command waits: the previous one for this file still runs", "file", c.Dst)
	}
	q.c, q.env, q.done = c, env, append(q.done, done)
}

// startCommand forks c on Run's goroutine (the parent-death signal follows
// the forking thread), with the environment the child runs on, stdin from
// /dev/null and stdout and stderr into one pipe, in a process group of its
// own. Its end (exit, or the timeout's kill) is reported on s.cmdDone; the
// log line gives its status and the tail of its output, every value of
// s.cfg.CommandMask concealed. A command that cannot start is logged and
// counts as done: it is never fatal.
func (s *Supervisor) startCommand(c Command, env []string, done func()) {
	r, err := s.forkCommand(c, env)
	if err != nil {
		s.log.Error("template command did not start", "file", c.Dst, "command", c.Argv[0], "err", err)
		s.cfg.Observer.CommandEnded("error")
		done()
		return
	}
	s.cmdRunning[c.Dst] = true
	s.log.Info("template command started", "file", c.Dst, "command", c.Argv[0], "pid", r.proc.pid())
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = template.DefaultCommandTimeout
	}
	go func() {
		var st signal.Status
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		killed := ""
		select {
		case st = <-r.proc.done():
		case <-timer.C:
			killed = "timeout"
			_ = r.proc.signal(syscall.SIGTERM)
			timer.Reset(commandGrace)
			select {
			case st = <-r.proc.done():
			case <-timer.C:
				_ = r.proc.signal(syscall.SIGKILL)
				st = <-r.proc.done()
			}
		case <-s.stopCmds:
			select {
			case st = <-r.proc.done(): // it ended as Run did
			default:
				killed = "scaivault-run exiting"
				_ = r.proc.signal(syscall.SIGKILL)
				st = <-r.proc.done()
			}
		}
		// A descendant that keeps the pipe open does not hold the log
		// line up for long.
		select {
		case <-r.read:
		case <-time.After(100 * time.Millisecond):
		}
		s.cmdDone <- func() { s.commandEnded(r, st, killed, timeout); done() }
	}()
}

// endCommands kills the template commands still running when Run ends
// and waits for them (their waiters are the spawner's, joined after).
func (s *Supervisor) endCommands() {
	s.cmdQueued = nil // none starts any more
	if len(s.cmdRunning) == 0 {
		return
	}
	close(s.stopCmds)
	for len(s.cmdRunning) > 0 {
		(<-s.cmdDone)()
	}
}

// commandEnded logs how a command ended; on Run's goroutine.
func (s *Supervisor) commandEnded(r *cmdRun, st signal.Status, killed string, timeout time.Duration) {
	delete(s.cmdRunning, r.c.Dst)
	defer func() {
		if q := s.cmdQueued[r.c.Dst]; q != nil {
			delete(s.cmdQueued, r.c.Dst)
			s.startCommand(q.c, q.env, func() {
				for _, f := range q.done {
					f()
				}
			})
		}
	}()
	result := "ok"
	switch {
	case st.Err != nil || killed == "scaivault-run exiting":
		result = "error"
	case killed != "":
		result = "timeout"
	case st.Code() != 0:
		result = "failed"
	}
	s.cfg.Observer.CommandEnded(result)
	attrs := []any{"file", r.c.Dst, "command", r.c.Argv[0], "pid", r.proc.pid(),
		"took", time.Since(r.start).Round(time.Millisecond), "output", r.out.String()}
	switch {
	case st.Err != nil:
		s.log.Error("template command: lost its status", append(attrs, "err", st.Err)...)
	case killed != "":
		s.log.Error("template command killed", append(attrs, "reason", killed, "timeout", timeout)...)
	case st.Code() != 0:
		s.log.Error("template command failed; the file stays written", append(attrs, "code", st.Code())...)
	default:
		s.log.Info("template command done", attrs...)
	}
}

func (s *Supervisor) forkCommand(c Command, env []string) (*cmdRun, error) {
	path, err := lookPath(c.Argv[0], env)
	if err != nil {
		return nil, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pw.Close()
	attr := &syscall.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   env,
		Files: []uintptr{null.Fd(), pw.Fd(), pw.Fd()},
		Sys:   signal.ChildAttr(-1),
	}
	if s.fork == nil {
		return nil, errors.New("no spawner")
	}
	proc, err := s.fork(func() (int, error) { return syscall.ForkExec(path, c.Argv, attr) })
	runtime.KeepAlive(null)
	runtime.KeepAlive(pw)
	if err != nil {
		pr.Close()
		return nil, err
	}
	r := &cmdRun{c: c, proc: proc, start: time.Now(), out: &tailBuffer{max: commandTail}, read: make(chan struct{})}
	var w io.Writer = r.out
	var f *mask.Filter
	if s.cfg.CommandMask != nil {
		f = mask.NewFilter(r.out, s.cfg.CommandMask)
		w = f
	}
	go func() {
		defer close(r.read)
		defer pr.Close()
		_, _ = io.Copy(w, pr)
		if f != nil {
			_ = f.Flush()
		}
	}()
	return r, nil
}

// tailBuffer keeps the last max bytes written to it; safe for one writer
// and a concurrent reader.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte
	cut bool // bytes before b were dropped
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b, t.cut = append(t.b[:0], t.b[over:]...), true
	}
	return len(p), nil
}

// String is the tail, trimmed, with "..." in front when bytes were cut.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(strings.ToValidUTF8(string(t.b), "\uFFFD"))
	if t.cut {
		s = "..." + s
	}
	return s
}
