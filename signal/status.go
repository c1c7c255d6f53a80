package signal

import "syscall"

// Status is how a child process ended, as wait4 reported it. Err is set when
// wait4 itself failed (ECHILD: someone else reaped the child); Wait is
// meaningless then.
type Status struct {
	Pid  int
	Wait syscall.WaitStatus
	Err  error
}

// Code is the exit status that stands for s: see ExitCode.
func (s Status) Code() int { return ExitCode(s.Wait) }

// ExitCode maps a wait status to an exit status the way shells do: the exit
// code of a process that exited, 128+N for one killed by signal N (where
// WaitStatus.ExitStatus gives -1). A stopped or continued status, which is
// never reported without WUNTRACED or WCONTINUED, maps to 1.
func ExitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}
