package run

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"syscall"
	"testing"
)

func TestExitCodeForExecError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"not found", exec.ErrNotFound, 127},
		{"not found wrapped", fmt.Errorf("look up %q: %w", "x", exec.ErrNotFound), 127},
		{"exec.Error", &exec.Error{Name: "x", Err: exec.ErrNotFound}, 127},
		{"ENOENT", syscall.ENOENT, 127},
		{"ENOENT in PathError", &fs.PathError{Op: "exec", Path: "/x", Err: syscall.ENOENT}, 127},
		{"EACCES", syscall.EACCES, 126},
		{"permission wrapped", fmt.Errorf("start: %w", fs.ErrPermission), 126},
		{"ENOEXEC", syscall.ENOEXEC, 126},
		{"EISDIR", syscall.EISDIR, 126},
		{"ETXTBSY", syscall.ETXTBSY, 126},
		{"E2BIG", syscall.E2BIG, 126},
		{"other", errors.New("something"), 126},
	}
	for _, tt := range tests {
		if got := ExitCodeForExecError(tt.err); got != tt.want {
			t.Errorf("%s: ExitCodeForExecError(%v) = %d; want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestExitCodeForSetupError(t *testing.T) {
	err := &setupError{fmt.Errorf("working directory: %w", fs.ErrNotExist)}
	if got := exitCodeFor(fmt.Errorf("start: %w", err)); got != 125 {
		t.Errorf("exitCodeFor(setup error) = %d; want 125", got)
	}
	if got := exitCodeFor(exec.ErrNotFound); got != 127 {
		t.Errorf("exitCodeFor(not found) = %d; want 127", got)
	}
}
