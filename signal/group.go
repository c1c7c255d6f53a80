package signal

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// KillGroup sends sig to every process in process group pgid. A group that
// no longer exists (ESRCH) is not an error: it is already gone. A child
// started with ChildAttr leads its group (pgid = pid) and, being a group
// leader, cannot leave its session with setsid.
func KillGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("signal process group %d: not a child's group", pgid)
	}
	if err := unix.Kill(-pgid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("send %s to process group %d: %w", Name(sig), pgid, err)
	}
	return nil
}

// WaitPid waits for the child pid to end. It is the one waiter for pid when
// no Reaper runs; with a Reaper running it must not be used.
func WaitPid(pid int) Status {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			err = fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		return Status{Pid: pid, Wait: ws, Err: err}
	}
}

// IsPID1 reports whether this process is PID 1 (of its pid namespace), the
// one that must reap every orphan.
func IsPID1() bool { return os.Getpid() == 1 }
