package signal

import "syscall"

// maxSignal is the highest signal number (_NSIG - 1).
const maxSignal = 64

// osAction covers the signals ActionFor's common table leaves open.
// Signals 32 to 34 are reserved by the C libraries and the Go runtime
// (glibc's thread cancellation and per-thread syscalls, musl's
// SIGSYNCCALL): os/signal cannot catch them, so they keep the disposition
// scaivault-run was started with, in the child too. The real-time signals
// from 35 up are forwarded.
func osAction(sig syscall.Signal) Action {
	if sig >= 32 && sig <= 34 {
		return NotCaught
	}
	return Forward // SIGHUP, SIGQUIT, SIGUSR1/2, SIGALRM, SIGSTKFLT, SIGCONT, SIGTSTP, SIGXCPU, SIGVTALRM, SIGWINCH, SIGIO, SIGPWR, real-time
}
