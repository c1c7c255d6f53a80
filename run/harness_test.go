//go:build linux

package run

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deadline bounds every wait of these tests; generous for -race on 2 cores.
const deadline = 20 * time.Second

// proc is a helper process under test: its merged stdout lines (its own and
// its child's, which it passes on), its stderr in a file.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  <-chan string
	seen   []string
	stderr *os.File
	exited chan struct{}
	state  *os.ProcessState
}

// childArgv is the argv that runs this test binary as a child in mode.
func childArgv(mode string, args ...string) []string {
	return append([]string{os.Args[0], mode}, args...)
}

// childEnv is an environment for a child helper. Race-enabled binaries
// sleep a second at exit unless told not to.
func childEnv(kv ...string) []string {
	return append([]string{"GORACE=atexit_sleep_ms=0", "SVTEST_ROLE=child"}, kv...)
}

// startSupervisor runs the supervisor helper with c; wrap, when set, is the
// command line in front of it (unshare, sh). setup may change the command
// before it starts; when it returns a reader, the lines are read from it
// instead of from the supervisor's stdout.
func startSupervisor(t *testing.T, c svConfig, wrap []string, setup func(*exec.Cmd) io.Reader) *proc {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	argv := append(wrap, os.Args[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"GORACE=atexit_sleep_ms=0", "SVTEST_ROLE=supervisor", "SVTEST_SV=" + string(b), "PATH=/usr/bin:/bin"}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, stderr // files, not writers: no copying goroutine waits for EOF
	var src io.Reader = r
	if setup != nil {
		if other := setup(cmd); other != nil {
			src = other
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &proc{t: t, cmd: cmd, lines: lineReader(src), stderr: stderr, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		r.Close()
		if t.Failed() {
			b, _ := os.ReadFile(stderr.Name())
			t.Logf("lines seen: %q\nsupervisor stderr:\n%s", p.seen, b)
		}
	})
	return p
}

// expect waits for a line matching the regular expression re and returns
// its submatches.
func (p *proc) expect(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(deadline)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("output ended before a line matching %q", re)
			}
			p.seen = append(p.seen, l)
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			p.t.Fatalf("no line matching %q within %v", re, deadline)
		}
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.state.ExitCode()
	case <-time.After(deadline):
		p.t.Fatalf("process did not exit within %v", deadline)
	}
	return -1
}

// count tells how many lines seen so far match re.
func (p *proc) count(re string) int {
	rx, n := regexp.MustCompile(re), 0
	for _, l := range p.seen {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

// pidGone waits until pid has ended (a pidfd becomes readable when the
// process exits, whoever its parent is).
func pidGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(deadline/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("pid %d still runs after %v (%v)", pid, deadline, err)
		}
		return
	}
}
