package run

import (
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
)

// onChange merges a change, and every change queued behind it, into the
// pending batch and (re)arms the debounce.
func (s *Supervisor) onChange(c Change, ok bool) {
	for ok {
		s.merge(c)
		select {
		case c, ok = <-s.changes:
		default:
			s.debounce()
			return
		}
	}
	s.changes = nil // closed: no more watching
	s.debounce()
}

func (s *Supervisor) merge(c Change) {
	if s.st == stateStopping {
		s.log.Debug("change dropped: stopping", "reasons", c.Reasons)
		return
	}
	w := template.Wait{Min: s.cfg.WaitMin, Max: s.cfg.WaitMax}
	switch {
	case c.Wait != nil && c.WaitAlso:
		w = combineWait(w, *c.Wait)
	case c.Wait != nil:
		w = *c.Wait
	}
	if s.pending == nil {
		s.pending = &batch{wait: w}
	} else {
		s.pending.wait = combineWait(s.pending.wait, w)
	}
	// Each change's limit counts from its arrival; the batch acts by the
	// earliest of them.
	if w.Max > 0 {
		if by := time.Now().Add(w.Max); s.pending.latestBy.IsZero() || by.Before(s.pending.latestBy) {
			s.pending.latestBy = by
		}
	}
	before := s.pending.actBy
	s.pending.add(c)
	if b := s.pending.actBy; !b.IsZero() && !b.Equal(before) {
		// The act must start in time for the new child (or the reload) to
		// be on the new credential before the old one ends.
		s.deadline.arm(max(time.Until(b)-s.cfg.KillTimeout-actMargin, 0))
	}
}

// combineWait is the debounce of changes acted on together: the longest
// quiet period and the shortest limit (0: none) of a and b.
func combineWait(a, b template.Wait) template.Wait {
	w := template.Wait{Min: max(a.Min, b.Min), Max: a.Max}
	if b.Max > 0 && (w.Max == 0 || b.Max < w.Max) {
		w.Max = b.Max
	}
	return w
}

// actMargin is the time a restart or reload is given, beyond the kill
// timeout, to have the child on the new credential before the old one ends.
const actMargin = time.Second

// onDeadline acts on the pending batch now, whatever the debounce or the
// splay: its ActBy leaves no more time.
func (s *Supervisor) onDeadline() {
	s.deadline.stop()
	if s.pending == nil {
		return
	}
	if s.quiet.armed() || s.latest.armed() || s.splay.armed() {
		s.log.Info("acting before --wait/--restart-splay end: a credential the child runs on ends soon", "reasons", s.pending.reasons)
	}
	s.quiet.stop()
	s.latest.stop()
	s.splay.stop()
	if s.st == stateRestarting && s.inflight != nil {
		// The new child has not started yet: it starts on these changes
		// too, rather than being restarted once more after its start.
		b := s.pending
		s.pending, s.due = nil, false
		if b.envSet {
			s.nextEnv = b.env
		}
		s.startCommands(b, s.nextEnv)
		s.inflight.merge(b)
		return
	}
	s.act()
}

// debounce arms the quiet timer anew on every change, and the latest timer
// for the batch's earliest limit (re-armed when a change brings an earlier
// one); with no WaitMin it settles at once.
func (s *Supervisor) debounce() {
	if s.pending == nil {
		return
	}
	w := s.pending.wait
	if w.Min <= 0 {
		s.onSettled()
		return
	}
	s.quiet.arm(w.Min)
	if by := s.pending.latestBy; !by.IsZero() && (!s.latest.armed() || !by.Equal(s.latestBy)) {
		s.latest.arm(max(time.Until(by), 0))
		s.latestBy = by
	}
}

// onSettled ends the debounce: act now, or after the splay.
func (s *Supervisor) onSettled() {
	s.quiet.stop()
	s.latest.stop()
	if s.splay.armed() {
		return // the splay in progress acts on everything pending
	}
	if s.cfg.RestartSplay > 0 {
		s.splay.arm(time.Duration(s.randN(int64(s.cfg.RestartSplay) + 1)))
		return
	}
	s.act()
}

func (s *Supervisor) onSplayed() {
	s.splay.stop()
	s.act()
}

// act applies the pending batch once: env changed → restart; only files
// changed → reload signal when set, else restart; only files with a
// reload signal of their own changed → those signals. The commands of the
// templates that changed run in every case. A batch that settles while a
// restart is in progress waits for the new child.
func (s *Supervisor) act() {
	if s.pending == nil {
		return
	}
	if s.st != stateRunning {
		s.due = true
		return
	}
	b := s.pending
	s.pending, s.due = nil, false
	s.deadline.stop()
	env := s.env
	if b.envSet {
		env = b.env
	}
	if s.cfg.FilesOnly {
		s.log.Info("files changed", "reasons", b.reasons)
	}
	s.startCommands(b, env)
	// The files' own reload signals, --reload-signal first for the others.
	sigs := b.signals
	if r := s.cfg.ReloadSignal; b.files && r != 0 {
		sigs = []syscall.Signal{r}
		for _, sig := range b.signals {
			if sig != r {
				sigs = append(sigs, sig)
			}
		}
	}
	switch {
	case b.envSet && !s.cfg.FilesOnly:
		s.restart(b)
	case b.files && s.cfg.ReloadSignal == 0 && !s.cfg.FilesOnly:
		s.restart(b)
	case len(sigs) > 0:
		s.reload(b, sigs)
	default:
		s.applied(b) // nothing the child sees changed, or only what the commands act on
	}
}

// startCommands runs the commands of b, each with env; b's Applied
// callbacks then wait for them to end as well as for the child.
func (s *Supervisor) startCommands(b *batch, env []string) {
	if len(b.commands) == 0 {
		return
	}
	fns, left := b.applied, len(b.commands)+1
	done := func() {
		if left--; left == 0 {
			for _, f := range fns {
				f()
			}
		}
	}
	b.applied = []func(){done}
	cmds := b.commands
	b.commands = nil
	for _, c := range cmds {
		s.runCommand(c, env, done)
	}
}

func (s *Supervisor) reload(b *batch, sigs []syscall.Signal) {
	sent := !s.cfg.FilesOnly
	for _, sig := range sigs {
		if s.cfg.FilesOnly {
			// The pid is read at the signal: log after it.
			if err := s.cur.signal(sig); err != nil {
				s.log.Warn("reload signal not delivered", "signal", signal.Name(sig), "reasons", b.reasons, "err", err)
				continue
			}
			s.log.Info("reload signal sent", "pid", s.cur.pid(), "signal", signal.Name(sig), "reasons", b.reasons)
			sent = true
			continue
		}
		s.log.Info("reloading child", "pid", s.cur.pid(), "signal", signal.Name(sig), "reasons", b.reasons)
		s.signalChild(sig)
	}
	if sent { // files only: counted when one reached the process
		s.cfg.Observer.Reloaded()
	}
	s.applied(b)
}

func (s *Supervisor) restart(b *batch) {
	s.log.Info("restarting child", "pid", s.cur.pid(), "signal", signal.Name(s.cfg.KillSignal), "reasons", b.reasons)
	s.nextEnv = s.env
	if b.envSet {
		s.nextEnv = b.env
	}
	s.inflight = b
	s.st = stateRestarting
	s.cfg.Observer.Restarting(restartReason(b.causes))
	s.signalChild(s.cfg.KillSignal)
	s.kill.arm(s.cfg.KillTimeout)
}

// applied calls the Applied callbacks of a batch the child now runs on.
func (s *Supervisor) applied(b *batch) {
	if b == nil {
		return
	}
	for _, f := range b.applied {
		f()
	}
}

// restartReason is the restart counter's label for a batch's causes.
func restartReason(causes []string) string {
	switch len(causes) {
	case 0:
		return "other"
	case 1:
		return causes[0]
	}
	return "multiple"
}
