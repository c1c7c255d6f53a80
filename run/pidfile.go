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
// Who holds it is told by a lock, not by the pid: FILE.lock, beside it, is
// flock()ed for as long as this scaivault-run lives (a stable inode: the
// pid file itself is replaced by each rename). A lock another process holds
// means a live scaivault-run: start-up fails (125) naming the pid the file
// gives. Any other pid file (a dead pid, our own pid after a container
// restart, an unrelated process that got the pid) is stale and replaced.
// flock works alike on Linux and macOS, and the kernel drops the lock when
// the process dies, however it dies. After taking the lock we check that
// the lock file is still the one at its path (a holder removes it at exit),
// so that two starters never hold two different files. With --once the
// descriptor is closed by execve (close-on-exec): the lock goes, the pid
// file stays naming the exec'd command (it keeps our pid), and the next
// start finds it stale.
type pidFile struct {
	path string
	lock *os.File // held; nil when not ours
	pid  os.FileInfo
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
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("--pid-file %s: is a directory", path)
	}
	lock, err := takeLock(abs + ".lock")
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("--pid-file %s: held by a running scaivault-run (pid %s)", path, readPid(abs))
	}
	if err != nil {
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	p := &pidFile{path: abs, lock: lock}
	tmp, err := os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-*")
	if err == nil {
		_, err = tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), abs)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err == nil {
		p.pid, err = os.Stat(abs)
	}
	if err != nil {
		p.release()
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	return p, nil
}

// takeLock locks the file at name, made if missing, without waiting.
func takeLock(name string) (*os.File, error) {
	for range 10 {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			return nil, err
		}
		mine, err1 := f.Stat()
		cur, err2 := os.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(mine, cur) {
			return f, nil
		}
		f.Close() // removed or replaced since we opened it: again
	}
	return nil, errors.New("lock file keeps being replaced")
}

// readPid is the pid a pid file names, "unknown" when it names none.
func readPid(path string) string {
	b, err := os.ReadFile(path)
	pid := strings.TrimSpace(string(b))
	if _, cerr := strconv.Atoi(pid); err != nil || cerr != nil {
		return "unknown"
	}
	return pid
}

// remove deletes the pid file if it is still ours, then the lock file,
// and drops the lock. A nil pidFile does nothing.
func (p *pidFile) remove() {
	if p == nil || p.lock == nil {
		return
	}
	if cur, err := os.Stat(p.path); err == nil && p.pid != nil && os.SameFile(p.pid, cur) {
		os.Remove(p.path)
	}
	p.release()
}

func (p *pidFile) release() {
	os.Remove(p.lock.Name()) // while held: a starter that opened it sees it replaced
	p.lock.Close()
	p.lock = nil
}
