package signal

import (
	"os"
	"syscall"
)

// Action is what a supervisor does with a signal it receives.
type Action int

const (
	// NotCaught signals are never caught: SIGKILL and SIGSTOP cannot be;
	// SIGCHLD belongs to the reaper; SIGURG (goroutine preemption) and
	// SIGPROF (profiling) belong to the Go runtime; the synchronous faults
	// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT, and SIGEMT
	// where it exists) are meant for the process that faulted, us.
	NotCaught Action = iota
	// Forward signals are sent on to the child's process group.
	Forward
	// Stop signals (SIGTERM, SIGINT) stop the child: the first sends the
	// kill signal to its group and arms the kill timeout, a second one
	// sends SIGKILL.
	Stop
	// Drop signals are caught and then dropped: SIGPIPE and SIGXFSZ are
	// raised by the kernel on our own write (our log on a closed pipe, a
	// file size limit) and are meant for us; catching them turns them into
	// an error from write instead of death, which would take the child with
	// it through the parent-death signal.
	Drop
	// Ignore signals (SIGTTIN, SIGTTOU) are kept ignored in the supervisor,
	// like tini does, so that it is never stopped for using the terminal
	// from a background process group (restoring the foreground group,
	// writing a log line with tostop set). They are not forwarded: the
	// kernel sends them for the supervisor's own terminal access. GuardTTY
	// implements this.
	Ignore
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case Stop:
		return "stop"
	case Drop:
		return "drop"
	case Ignore:
		return "ignore"
	}
	return "not-caught"
}

// ActionFor tells what a supervisor does with sig. SIGTSTP, SIGCONT and
// SIGWINCH are forwarded like the rest (tini's choice): a ^Z typed on the
// terminal reaches the child's foreground group directly and stops the
// child alone; scaivault-run does not stop itself.
func ActionFor(sig syscall.Signal) Action {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		return Stop
	case syscall.SIGPIPE, syscall.SIGXFSZ:
		return Drop
	case syscall.SIGTTIN, syscall.SIGTTOU:
		return Ignore
	case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF,
		syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP,
		syscall.SIGSYS, syscall.SIGABRT:
		return NotCaught
	}
	if sig < 1 || int(sig) > maxSignal {
		return NotCaught
	}
	return osAction(sig)
}

// Forwarded lists every signal a supervisor catches, for os/signal's Notify:
// those with action Forward, Stop or Drop. SIGTTIN and SIGTTOU are handled
// by GuardTTY instead.
func Forwarded() []os.Signal {
	var sigs []os.Signal
	for n := 1; n <= maxSignal; n++ {
		switch ActionFor(syscall.Signal(n)) {
		case Forward, Stop, Drop:
			sigs = append(sigs, syscall.Signal(n))
		}
	}
	return sigs
}
