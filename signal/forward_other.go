//go:build !linux

package signal

import "syscall"

// maxSignal is the highest signal number (NSIG - 1 on darwin and the BSDs).
const maxSignal = 31

// osAction covers the signals ActionFor's common table leaves open.
// SIGEMT is a hardware trap, a synchronous fault meant for us.
func osAction(sig syscall.Signal) Action {
	if sig == syscall.SIGEMT {
		return NotCaught
	}
	return Forward // SIGHUP, SIGQUIT, SIGUSR1/2, SIGALRM, SIGCONT, SIGTSTP, SIGXCPU, SIGVTALRM, SIGWINCH, SIGIO, SIGINFO
}
