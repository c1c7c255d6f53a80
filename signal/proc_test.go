package signal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests start real children and change process-wide signal state;
// none of them runs in parallel. The Reaper test would steal statuses.

// forkSh starts /bin/sh -c script in its own process group with stdout
// going to out (or /dev/null).
func forkSh(t *testing.T, script string, out *os.File) int {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if out == nil {
		out = null
	}
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", script}, &syscall.ProcAttr{
		Env:   []string{"PATH=/usr/bin:/bin"},
		Files: []uintptr{null.Fd(), out.Fd(), os.Stderr.Fd()},
		Sys:   ChildAttr(-1),
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestWaitPidStatuses(t *testing.T) {
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 42", 42},
		{"kill -SEGV $$", 139},
		{"kill -KILL $$", 137},
		{"kill -TERM $$", 143},
	}
	for _, tt := range tests {
		st := WaitPid(forkSh(t, tt.script, nil))
		if st.Err != nil || st.Code() != tt.want {
			t.Errorf("%q: status %d, err %v; want %d", tt.script, st.Code(), st.Err, tt.want)
		}
	}
	if st := WaitPid(1 << 22); st.Err == nil {
		t.Errorf("WaitPid of a non-child: no error")
	}
}

func TestKillGroup(t *testing.T) {
	pid := forkSh(t, "sleep 1000 & sleep 1000 & wait", nil)
	if err := KillGroup(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := WaitPid(pid); st.Code() != 143 {
		t.Errorf("sh status %d, err %v; want 143", st.Code(), st.Err)
	}
	if err := KillGroup(pid, syscall.SIGTERM); err != nil {
		t.Errorf("KillGroup of a gone group: %v", err)
	}
	if err := KillGroup(1, syscall.SIGTERM); err == nil {
		t.Errorf("KillGroup(1): no error")
	}
}

func TestChildAttr(t *testing.T) {
	a := ChildAttr(-1)
	if !a.Setpgid || a.Foreground || a.Pgid != 0 {
		t.Errorf("ChildAttr(-1) = %+v", a)
	}
	a = ChildAttr(5)
	if !a.Setpgid || !a.Foreground || a.Ctty != 5 {
		t.Errorf("ChildAttr(5) = %+v", a)
	}
}

func TestForegroundTTYNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if fd := ForegroundTTY(r); fd != -1 {
		t.Errorf("ForegroundTTY(pipe) = %d", fd)
	}
	if fd := ForegroundTTY(nil); fd != -1 {
		t.Errorf("ForegroundTTY(nil) = %d", fd)
	}
}

// sigMask reads a signal mask line (SigIgn, SigBlk) of /proc/<pid>/status
// as printed into file.
func sigMask(t *testing.T, status, field string) uint64 {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", field, status)
	return 0
}

func bit(sig syscall.Signal) uint64 { return 1 << (uint(sig) - 1) }

func TestGuardTTY(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	g := GuardTTY()
	defer g.Release()
	self, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if ign := sigMask(t, string(self), "SigIgn"); ign&bit(syscall.SIGTTOU) == 0 || ign&bit(syscall.SIGTTIN) == 0 {
		t.Errorf("guarded process does not ignore SIGTTIN/SIGTTOU: SigIgn %x", ign)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "status"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var pid int
	err = g.Fork(func() error {
		pid = forkSh(t, "exec cat /proc/self/status", out)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := WaitPid(pid); st.Code() != 0 {
		t.Fatalf("cat: status %d", st.Code())
	}
	child, _ := os.ReadFile(out.Name())
	if ign := sigMask(t, string(child), "SigIgn"); ign&(bit(syscall.SIGTTOU)|bit(syscall.SIGTTIN)) != 0 {
		t.Errorf("child ignores SIGTTIN/SIGTTOU: SigIgn %x", ign)
	}
	self, _ = os.ReadFile("/proc/self/status")
	if ign := sigMask(t, string(self), "SigIgn"); ign&bit(syscall.SIGTTOU) == 0 {
		t.Errorf("SIGTTOU not ignored again after Fork: SigIgn %x", ign)
	}
}

// chanHandler sends every log record's message and attributes to a channel.
type chanHandler struct{ ch chan string }

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h chanHandler) WithGroup(string) slog.Handler            { return h }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
	h.ch <- s
	return nil
}

func TestReaper(t *testing.T) {
	logs := make(chan string, 100)
	r := StartReaper(context.Background(), slog.New(chanHandler{logs}))
	defer r.Stop()
	// Children that exit at once are handed over, not lost.
	for i := range 20 {
		pid, done, err := r.Start(func() (int, error) {
			return forkSh(t, fmt.Sprintf("exit %d", i), nil), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case st := <-done:
			if st.Pid != pid || st.Code() != i {
				t.Errorf("child %d: status %+v code %d", i, st, st.Code())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d: no status", i)
		}
	}
	// A child nobody registered is reaped silently.
	orphan := forkSh(t, "exit 5", nil)
	want := fmt.Sprintf("reaped orphan pid=%d code=5", orphan)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l := <-logs:
			if l == want {
				return
			}
		case <-deadline:
			t.Fatalf("no log %q", want)
		}
	}
}
