package signal

import (
	"fmt"
	"os"
	ossignal "os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// ChildAttr returns the attributes a supervised child starts with: its own
// process group (so that the whole group can be signalled and the terminal
// can be handed to it) and, on Linux, the parent-death signal SIGKILL.
//
// ctty is the descriptor of the controlling terminal that ForegroundTTY
// found, or -1. With a terminal, the child's group is made the terminal's
// foreground group in the forked child before execve (SysProcAttr
// Foreground: the Go runtime does this with all signals blocked, so no
// SIGTTOU stops it), so that ^C and ^Z reach the child's group once and
// scaivault-run not at all. RestoreForeground hands the terminal back.
//
// The parent-death signal is SIGKILL, not SIGTERM: it fires only when the
// supervisor died without stopping the child (kill -9, out of memory, a
// crash), and then the child must not outlive it on stale secrets, which a
// child that ignores SIGTERM would. The kernel sends it when the thread
// that forked exits, so children must be started from a goroutine locked
// to its OS thread (runtime.LockOSThread) that stays locked while they run.
// On other systems there is no parent-death signal: a child of a
// supervisor killed with SIGKILL keeps running until it exits on its own.
func ChildAttr(ctty int) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if ctty >= 0 {
		attr.Foreground = true
		attr.Ctty = ctty
	}
	setParentDeathSignal(attr)
	return attr
}

// ForegroundTTY returns f's descriptor when f is a terminal, it is this
// process's controlling terminal, and this process's group is its
// foreground group: only then may the child be given the terminal.
// Otherwise it returns -1.
func ForegroundTTY(f *os.File) int {
	if f == nil {
		return -1
	}
	fd := int(f.Fd())
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		return -1
	}
	return fd
}

// RestoreForeground makes this process's group the foreground group of the
// terminal ctty again, after the child that had it ended. SIGTTOU must be
// ignored (GuardTTY), since this process is in the background at that time.
func RestoreForeground(ctty int) error {
	if err := unix.IoctlSetPointerInt(ctty, unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
		return fmt.Errorf("restore terminal foreground group: %w", err)
	}
	return nil
}

// TTYGuard keeps SIGTTIN and SIGTTOU ignored in this process while letting
// the children it starts begin with the default disposition (an ignored
// disposition would survive execve).
type TTYGuard struct {
	catch chan os.Signal
}

var ttySignals = []os.Signal{syscall.SIGTTIN, syscall.SIGTTOU}

// GuardTTY ignores SIGTTIN and SIGTTOU until Release. It changes
// process-wide state: one guard at a time.
func GuardTTY() *TTYGuard {
	ossignal.Ignore(ttySignals...)
	return &TTYGuard{catch: make(chan os.Signal, 1)}
}

// Fork runs fork, which starts a child, with SIGTTIN and SIGTTOU caught
// instead of ignored, so that the Go runtime resets them to the default in
// the forked child; they are ignored again afterwards. Call it from the
// only goroutine that starts children.
func (g *TTYGuard) Fork(fork func() error) error {
	ossignal.Notify(g.catch, ttySignals...) // delivered signals are dropped: the channel is never read
	defer ossignal.Ignore(ttySignals...)
	return fork()
}

// Release stops catching. SIGTTIN and SIGTTOU stay ignored for the rest of
// the process's life, as in tini: the supervisor is about to exit, and a
// disposition restored to "stop" could stop it while it cleans up.
func (g *TTYGuard) Release() {
	ossignal.Stop(g.catch)
}
