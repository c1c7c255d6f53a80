package run

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/scailabs/scaivault-run/signal"
)

// Exec replaces this process with the command (--once): argv goes to
// execve unchanged, argv[0] is looked up like Config.Argv[0] is, env is the
// complete environment (nil: empty). It returns only on failure, with an
// error for which ExitCodeForExecError gives 127 (not found) or 126.
//
// The new program keeps this process's pid, process group, terminal,
// signal mask and ignored signals (caught ones are reset by execve): do not
// ignore signals before calling it.
func Exec(argv []string, env []string) error {
	return ExecAs(argv, env, nil)
}

// ExecAs is Exec as another user (--once --user): once the command is
// found, this process becomes non-dumpable (the kernel's own reset on a
// change of ids follows a sysctl) and takes cred's groups, then its gid,
// then its uid, real, effective and saved, in every thread, and checks
// that it holds them before execve; a failure there is a *setupError (exit
// status 125), and nothing is exec'd. nil cred changes nothing.
func ExecAs(argv []string, env []string, cred *syscall.Credential) error {
	if len(argv) == 0 {
		return errors.New("exec: no command")
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return fmt.Errorf("exec %q: %w", argv[0], err)
	}
	if env == nil {
		env = []string{}
	}
	if cred != nil {
		if err := becomeUser(cred); err != nil {
			return &setupError{fmt.Errorf("exec %q: %w", path, err)}
		}
	}
	if err := syscall.Exec(path, argv, env); err != nil {
		return fmt.Errorf("exec %q: %w", path, err)
	}
	return nil // not reached
}

// becomeUser gives this process cred's ids, in the order that keeps the
// privilege to set the next: groups, gid, uid. Go's syscall.Setgroups,
// Setgid and Setuid apply to every thread of the process (since Go 1.16),
// so the thread that calls execve has them whichever it is; as root,
// Setuid and Setgid set the real, effective and saved ids at once.
func becomeUser(cred *syscall.Credential) error {
	if err := signal.SetNotDumpable(); err != nil {
		return err
	}
	groups := make([]int, len(cred.Groups))
	for i, g := range cred.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("set groups %v: %w", cred.Groups, err)
	}
	if err := syscall.Setgid(int(cred.Gid)); err != nil {
		return fmt.Errorf("set gid %d: %w", cred.Gid, err)
	}
	if err := syscall.Setuid(int(cred.Uid)); err != nil {
		return fmt.Errorf("set uid %d: %w", cred.Uid, err)
	}
	uid, euid, gid, egid := syscall.Getuid(), syscall.Geteuid(), syscall.Getgid(), syscall.Getegid()
	if uid != int(cred.Uid) || euid != int(cred.Uid) || gid != int(cred.Gid) || egid != int(cred.Gid) {
		return fmt.Errorf("ids not changed: uid %d euid %d gid %d egid %d, want uid %d gid %d", uid, euid, gid, egid, cred.Uid, cred.Gid)
	}
	return nil
}

// Exit statuses of scaivault-run's own failures; 126 and 127 as POSIX
// shells use them.
const (
	ExitFailure       = 125 // scaivault-run failed before or while starting the child
	ExitNotExecutable = 126 // found but not executable: EACCES, ENOEXEC, a directory
	ExitNotFound      = 127 // not found: exec.ErrNotFound, ENOENT
)

// ExitCodeForExecError maps an error from starting a command (Exec, or a
// Run that could not start its child) to an exit status: 0 for nil; 127
// when it was not found (exec.ErrNotFound, ENOENT, fs.ErrNotExist); 126 for every other
// failure to execute it (EACCES, ENOEXEC — no shell is ever tried for a
// file without #! —, EISDIR, ETXTBSY, E2BIG, ...).
func ExitCodeForExecError(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, syscall.ENOENT), errors.Is(err, fs.ErrNotExist):
		return ExitNotFound
	}
	return ExitNotExecutable
}

// lookPath finds the program file for argv[0]. A name with a slash is used
// as is (relative to the child's working directory); execve reports its
// errors. Otherwise it searches the PATH of env, the environment the
// command runs in, or this process's PATH when env has none. Entries that
// are not absolute (".", "") are skipped, as Go's exec.LookPath refuses
// them. A file found but not executable is reported as fs.ErrPermission
// (126) when nothing executable follows it, as execvp does.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path, ok := envValue(env, "PATH")
	if !ok {
		path = os.Getenv("PATH")
	}
	var denied error
	if file != "" {
		for _, dir := range filepath.SplitList(path) {
			if !filepath.IsAbs(dir) {
				continue
			}
			p := filepath.Join(dir, file)
			fi, err := os.Stat(p)
			if err != nil || fi.IsDir() {
				continue
			}
			if fi.Mode()&0o111 != 0 {
				return p, nil
			}
			if denied == nil {
				denied = fmt.Errorf("%s: %w", p, fs.ErrPermission)
			}
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", fmt.Errorf("%w (PATH %q)", exec.ErrNotFound, path)
}

// envValue returns the value of the last name=value entry for name.
func envValue(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v, true
		}
	}
	return "", false
}
