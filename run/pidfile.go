package run

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pidFile is --pid-file (DESIGN.md "Operating it"): scaivault-run's pid,
// written at start by a rename, removed at exit.
//
// Who holds it is told by a lock, not by the pid: the file is flock()ed
// for as long as this scaivault-run lives. A file that another process
// holds locked names a live scaivault-run: start-up fails (125) naming its
// pid. Any other file (a dead pid, our own pid after a container restart,
// an unrelated process that got the pid) is stale and replaced. flock
// works alike on Linux and macOS, and the kernel drops the lock when the
// process dies, however it dies. With --once the descriptor is closed by
// execve (close-on-exec), so the lock goes and the file stays, naming the
// exec'd command (it keeps our pid): the next start finds it stale.
//
// Two scaivault-runs started at the same instant with the same file may
// both find it stale; the second rename wins and the first, at exit, leaves
// the file alone (it is no longer its own).
type pidFile struct {
	path string
	f    *os.File // the locked file in place at path; nil when not ours
}

// createPidFile writes our pid to path, unless a live scaivault-run holds it.
func createPidFile(path string) (*pidFile, error) {
	if path == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	if pid, held := heldBy(abs); held {
		return nil, fmt.Errorf("--pid-file %s: held by a running scaivault-run (pid %s)", path, pid)
	}
	tmp, err := os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	fail := func(err error) (*pidFile, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), abs); err != nil {
		return fail(err)
	}
	return &pidFile{path: abs, f: tmp}, nil
}

// heldBy reports whether another process holds the lock of the file at
// path, and the pid the file names.
func heldBy(path string) (pid string, held bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return "", false
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return "", false
	}
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid = strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		pid = "unknown"
	}
	return pid, true
}

// remove deletes the file if it is still ours (the same file we locked),
// and drops the lock. A nil pidFile does nothing.
func (p *pidFile) remove() {
	if p == nil || p.f == nil {
		return
	}
	mine, err1 := p.f.Stat()
	cur, err2 := os.Stat(p.path)
	if err1 == nil && err2 == nil && os.SameFile(mine, cur) {
		os.Remove(p.path)
	}
	p.f.Close()
	p.f = nil
}
