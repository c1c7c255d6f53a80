//go:build !linux

package signal

import (
	"fmt"
	"runtime"
	"syscall"
)

// setParentDeathSignal does nothing: there is no parent-death signal here.
// A child whose supervisor is killed with SIGKILL keeps running until it
// exits on its own; every orderly exit of the supervisor stops it first.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// SetSubreaper fails: only Linux has child subreapers. The caller logs the
// error as a warning and goes on; orphans are then reaped by PID 1.
func SetSubreaper() error {
	return fmt.Errorf("become child subreaper: not supported on %s", runtime.GOOS)
}

// SetNotDumpable does nothing here: macOS has no PR_SET_DUMPABLE, and a
// process's environment is not readable by others through a /proc there.
// Core dumps are off unless the user enabled them.
func SetNotDumpable() error { return nil }
