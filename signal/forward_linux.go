package signal

import "syscall"

// maxSignal is the highest signal number (_NSIG - 1).
const maxSignal = 64

// osAction covers the signals ActionFor's common table leaves open.
// Signals 32 and 33 are reserved by the C library and the Go runtime
// (per-thread syscalls); the real-time signals from 34 up are forwarded.
func osAction(sig syscall.Signal) Action {
	if sig == 32 || sig == 33 {
		return NotCaught
	}
	return Forward // SIGHUP, SIGQUIT, SIGUSR1/2, SIGALRM, SIGSTKFLT, SIGCONT, SIGTSTP, SIGXCPU, SIGVTALRM, SIGWINCH, SIGIO, SIGPWR, real-time
}
