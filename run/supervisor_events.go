package run

import (
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
)

// state is where the supervisor is in a child's life.
type state int

const (
	stateStarting   state = iota // forking the child
	stateRunning                 // the child runs
	stateRestarting              // the kill signal was sent; a new child starts when it exits
	stateStopping                // the kill signal was sent; Run returns when it exits
	stateExited                  // Run returns
)

var stateNames = [...]string{"starting", "running", "restarting", "stopping", "exited"}

func (st state) String() string { return stateNames[st] }

// timer is a select arm: C is nil while it is disarmed.
type timer struct {
	t *time.Timer
	C <-chan time.Time
}

func (t *timer) arm(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(d)
	t.C = t.t.C
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
	t.t, t.C = nil, nil
}

func (t *timer) armed() bool { return t.t != nil }

func (s *Supervisor) stopTimers() {
	s.quiet.stop()
	s.latest.stop()
	s.splay.stop()
	s.deadline.stop()
	s.kill.stop()
}

// batch is several changes merged into one action.
type batch struct {
	env      []string
	envSet   bool
	files    bool
	commands []Command        // by Dst, the latest of each
	signals  []syscall.Signal // the templates' own reload signals, unique
	// wait is the debounce of the changes merged (Supervisor.merge): the
	// longest quiet period of theirs; latestBy the earliest of their
	// limits, each counted from its change's arrival (zero: none).
	wait     template.Wait
	latestBy time.Time
	reasons  []string
	causes   []string // kinds of what changed, sorted, unique
	applied  []func()
	actBy    time.Time // the earliest ActBy of its changes; zero: none
}

func (b *batch) add(c Change) {
	o := &batch{files: c.FilesChanged, commands: c.Commands, signals: c.Signals,
		reasons: c.Reasons, causes: c.Causes, actBy: c.ActBy}
	if c.EnvChanged {
		o.env, o.envSet = c.Env, true
		if o.env == nil {
			o.env = []string{}
		}
	}
	if c.Applied != nil {
		o.applied = []func(){c.Applied}
	}
	b.merge(o)
}

// merge adds everything of o to b.
func (b *batch) merge(o *batch) {
	if o.envSet {
		b.env, b.envSet = o.env, true
	}
	b.files = b.files || o.files
	for _, c := range o.commands {
		b.commands = slices.DeleteFunc(b.commands, func(x Command) bool { return x.Dst == c.Dst })
		b.commands = append(b.commands, c)
	}
	for _, sig := range o.signals {
		if !slices.Contains(b.signals, sig) {
			b.signals = append(b.signals, sig)
		}
	}
	b.reasons = append(b.reasons, o.reasons...)
	for _, c := range o.causes {
		if !slices.Contains(b.causes, c) {
			b.causes = append(b.causes, c)
		}
	}
	b.applied = append(b.applied, o.applied...)
	if !o.actBy.IsZero() && (b.actBy.IsZero() || o.actBy.Before(b.actBy)) {
		b.actBy = o.actBy
	}
}

// startChild starts a child on env; on failure Run ends with its status.
func (s *Supervisor) startChild(env []string) {
	s.st = stateStarting
	c, err := s.spawn(env)
	if err != nil {
		s.st, s.code, s.err = stateExited, exitCodeFor(err), err // Run returns err: not logged
		return
	}
	s.cur, s.env, s.st = c, env, stateRunning
	s.cfg.Observer.ChildStarted(c.pid(), time.Now())
	s.log.Info("child started", "pid", c.pid(), "command", s.cfg.Argv[0])
}

// signalChild sends sig to the current child's process group.
func (s *Supervisor) signalChild(sig syscall.Signal) {
	if err := s.cur.signal(sig); err != nil {
		s.log.Warn("signal child", "pid", s.cur.pid(), "signal", signal.Name(sig), "err", err)
	}
}

// onSignal acts on a signal scaivault-run received. Only signals count
// towards the second stop signal: a cancellation that came from the same
// SIGTERM does not turn it into a SIGKILL.
func (s *Supervisor) onSignal(received os.Signal) {
	sig, _ := received.(syscall.Signal)
	if s.cfg.FilesOnly {
		s.filesOnlySignal(sig)
		return
	}
	switch signal.ActionFor(sig) {
	case signal.Stop:
		// Forwarded as received (a SIGINT stays a SIGINT), every time;
		// the first also arms the kill timeout, the only escalation.
		s.log.Info("stop signal received; forwarding it", "signal", signal.Name(sig), "state", s.st)
		s.beginStop(sig)
	case signal.Forward:
		s.log.Debug("forwarding signal", "signal", signal.Name(sig), "pid", s.cur.pid())
		s.signalChild(sig)
	default:
		s.log.Debug("signal dropped", "signal", signal.Name(sig))
	}
}

// onCancel stops the child with the kill signal, unless it is stopping
// already (a restart's kill signal went out: the kill timer runs).
func (s *Supervisor) onCancel() {
	if s.cfg.FilesOnly {
		s.log.Info("exiting: context done; the files stay")
		s.filesOnlyStop()
		return
	}
	s.log.Info("stopping child: context done", "state", s.st)
	switch s.st {
	case stateStopping:
	case stateRestarting:
		s.beginStop(0)
	default:
		s.beginStop(s.cfg.KillSignal)
	}
}

// beginStop sends sig (0: none) to the child's group and, unless a stop or
// a restart armed it already, the kill timeout; pending changes are
// dropped, and no child starts again.
func (s *Supervisor) beginStop(sig syscall.Signal) {
	prev := s.st
	s.st = stateStopping
	s.pending, s.inflight, s.due = nil, nil, false
	s.quiet.stop()
	s.latest.stop()
	s.splay.stop()
	if prev != stateStopping && prev != stateRestarting {
		s.kill.arm(s.cfg.KillTimeout)
	}
	if sig != 0 {
		s.signalChild(sig)
	}
}

func (s *Supervisor) onKillTimeout() {
	s.escalate("kill timeout")
}

// escalate kills the child's group with SIGKILL.
func (s *Supervisor) escalate(why string) {
	s.kill.stop()
	s.log.Warn("killing child", "pid", s.cur.pid(), "signal", "SIGKILL", "reason", why)
	s.signalChild(syscall.SIGKILL)
}

// onExit acts on the child's end: a restart starts the next child, any
// other exit ends Run with the child's status.
func (s *Supervisor) onExit(st signal.Status) {
	s.kill.stop()
	s.cfg.Observer.ChildExited(st.Pid)
	if st.Err != nil {
		s.st, s.code, s.err = stateExited, ExitFailure, st.Err // Run returns err: not logged
		return
	}
	if s.st != stateRestarting {
		s.st, s.code = stateExited, st.Code()
		s.log.Info("child exited", "pid", st.Pid, "code", s.code)
		return
	}
	s.log.Info("child stopped for restart", "pid", st.Pid, "code", st.Code())
	s.startChild(s.nextEnv)
	if s.st != stateRunning {
		return
	}
	s.applied(s.inflight)
	s.inflight = nil
	if s.due {
		s.act()
	}
}
