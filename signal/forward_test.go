package signal

import (
	"os"
	"syscall"
	"testing"
)

func TestActionFor(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		want Action
	}{
		{syscall.SIGTERM, Stop},
		{syscall.SIGINT, Stop},
		{syscall.SIGHUP, Forward},
		{syscall.SIGQUIT, Forward},
		{syscall.SIGUSR1, Forward},
		{syscall.SIGUSR2, Forward},
		{syscall.SIGWINCH, Forward},
		{syscall.SIGALRM, Forward},
		{syscall.SIGCONT, Forward},
		{syscall.SIGTSTP, Forward},
		{syscall.SIGVTALRM, Forward},
		{syscall.SIGXCPU, Forward},
		{syscall.SIGIO, Forward},
		{syscall.SIGPIPE, Drop},
		{syscall.SIGXFSZ, Drop},
		{syscall.SIGTTIN, Ignore},
		{syscall.SIGTTOU, Ignore},
		{syscall.SIGKILL, NotCaught},
		{syscall.SIGSTOP, NotCaught},
		{syscall.SIGCHLD, NotCaught},
		{syscall.SIGURG, NotCaught},
		{syscall.SIGPROF, NotCaught},
		{syscall.SIGSEGV, NotCaught},
		{syscall.SIGBUS, NotCaught},
		{syscall.SIGFPE, NotCaught},
		{syscall.SIGILL, NotCaught},
		{syscall.SIGTRAP, NotCaught},
		{syscall.SIGSYS, NotCaught},
		{syscall.SIGABRT, NotCaught},
		{0, NotCaught},
		{-1, NotCaught},
		{syscall.Signal(maxSignal + 1), NotCaught},
	}
	for _, tt := range tests {
		if got := ActionFor(tt.sig); got != tt.want {
			t.Errorf("ActionFor(%s) = %v; want %v", Name(tt.sig), got, tt.want)
		}
	}
}

func TestForwarded(t *testing.T) {
	list := Forwarded()
	for _, must := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGCONT} {
		if !containsSig(list, must) {
			t.Errorf("Forwarded() lacks %s", Name(must))
		}
	}
	for _, s := range list {
		sig := s.(syscall.Signal)
		switch ActionFor(sig) {
		case Forward, Stop, Drop:
		default:
			t.Errorf("Forwarded() holds %s with action %v", Name(sig), ActionFor(sig))
		}
	}
	for n := 1; n <= maxSignal; n++ {
		sig := syscall.Signal(n)
		a := ActionFor(sig)
		if (a == Forward || a == Stop || a == Drop) != containsSig(list, sig) {
			t.Errorf("Forwarded() and ActionFor disagree on %s", Name(sig))
		}
	}
}

func containsSig(list []os.Signal, sig syscall.Signal) bool {
	for _, s := range list {
		if s == os.Signal(sig) {
			return true
		}
	}
	return false
}
