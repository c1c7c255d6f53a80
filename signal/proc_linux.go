package signal

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

// SetSubreaper makes this process the child subreaper of its descendants
// (prctl PR_SET_CHILD_SUBREAPER): orphans below it are reparented to it
// instead of to PID 1, so that it can reap them. Call it before starting
// the child, and run a Reaper.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}

// SetNotDumpable makes this process non-dumpable (prctl PR_SET_DUMPABLE
// 0): no core dump, and /proc/<pid>/environ, mem and the rest are owned by
// root, so that a child running as our own uid cannot read our credentials
// through them. execve (--once) resets it for the new program.
func SetNotDumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the process non-dumpable: %w", err)
	}
	return nil
}
