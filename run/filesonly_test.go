package run

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestReadPidFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]int{"123\n": 123, "  77  ": 77, "": 0, "abc": 0, "-5": 0, "0": 0, strings.Repeat("1", 100): 0} {
		p := filepath.Join(dir, "pid")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readPidFile(p)
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("readPidFile(%q) = %d, %v; want %d", content, got, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "--reload-pid-file") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
	if _, err := readPidFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	// A FIFO would block an open for reading until a writer came: refused
	// at once.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPidFile(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: %v", err)
	}
}

// A pid file naming a process that is gone is an error naming the pid,
// not a signal to someone else's process group.
func TestPidFileTargetGone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(p, []byte("999999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := (&pidFileTarget{path: p}).signal(syscall.SIGHUP)
	if err == nil || !strings.Contains(err.Error(), "pid 999999999") {
		t.Errorf("signal to a gone pid: %v", err)
	}
	if err := (&pidFileTarget{}).signal(syscall.SIGHUP); err == nil {
		t.Errorf("signal with no pid file: no error")
	}
	// init and scaivault-run itself are never signalled.
	for _, pid := range []int{1, os.Getpid()} {
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := (&pidFileTarget{path: p}).signal(syscall.SIGCONT); err == nil || !strings.Contains(err.Error(), "not signalled") {
			t.Errorf("pid %d: %v", pid, err)
		}
	}
}
