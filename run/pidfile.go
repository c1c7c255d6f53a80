package run

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/scailabs/scaivault-run/template"
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
//
// Every operation goes through the pid file's directory, opened once at
// start (os.Root): with --user, a child that renames a directory on the
// path and leaves a symlink in its place cannot have the removal at exit
// (as root) delete what the symlink points to; a path through a symlink
// the user may have made is refused at start, as template destinations'.
type pidFile struct {
	path string   // for messages
	dir  *os.Root // the directory of the pid file
	base string   // its name in dir
	lock *os.File // held; nil when not ours
	pid  os.FileInfo
}

// createPidFile writes our pid to path, unless a live scaivault-run holds
// it. u is the child's user (--user), nil for none or ourselves.
func createPidFile(path string, u *template.FileUser) (*pidFile, error) {
	if path == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	dir, err := template.OpenDir(filepath.Dir(abs), u)
	if err != nil {
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	p := &pidFile{path: abs, dir: dir, base: filepath.Base(abs)}
	if fi, err := dir.Stat(p.base); err == nil && fi.IsDir() {
		dir.Close()
		return nil, fmt.Errorf("--pid-file %s: is a directory", path)
	}
	lock, err := takeLock(dir, p.base+".lock")
	if errors.Is(err, unix.EWOULDBLOCK) {
		pid := readPid(dir, p.base)
		dir.Close()
		return nil, fmt.Errorf("--pid-file %s: held by a running scaivault-run (pid %s)", path, pid)
	}
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	p.lock = lock
	tmpName := "." + p.base + ".tmp-" + strconv.Itoa(os.Getpid())
	tmp, err := dir.OpenFile(tmpName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = dir.Rename(tmpName, p.base)
		}
		if err != nil {
			dir.Remove(tmpName)
		}
	}
	if err == nil {
		p.pid, err = dir.Stat(p.base)
	}
	if err != nil {
		p.release()
		return nil, fmt.Errorf("--pid-file %s: %w", path, err)
	}
	return p, nil
}

// takeLock locks the file name of dir, made if missing, without waiting.
func takeLock(dir *os.Root, name string) (*os.File, error) {
	for range 10 {
		f, err := dir.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			return nil, err
		}
		mine, err1 := f.Stat()
		cur, err2 := dir.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(mine, cur) {
			return f, nil
		}
		f.Close() // removed or replaced since we opened it: again
	}
	return nil, errors.New("lock file keeps being replaced")
}

// readPid is the pid the pid file name of dir names, "unknown" when it
// names none.
func readPid(dir *os.Root, name string) string {
	f, err := dir.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 32))
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
	if cur, err := p.dir.Lstat(p.base); err == nil && p.pid != nil && os.SameFile(p.pid, cur) {
		p.dir.Remove(p.base)
	}
	p.release()
}

func (p *pidFile) release() {
	p.dir.Remove(p.base + ".lock") // while held: a starter that opened it sees it replaced
	p.lock.Close()
	p.lock = nil
	p.dir.Close()
}
