//go:build linux

package run

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("a/prog", 0o644) // not executable
	mk("b/prog", 0o755)
	mk("b/only-noexec", 0o600)
	os.MkdirAll(filepath.Join(dir, "c/prog"), 0o755) // a directory
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	t.Setenv("PATH", b) // ours, used when the env has none
	tests := []struct {
		name, file string
		env        []string
		want       string
		wantErr    error
	}{
		{"skips non-executable and directories", "prog", []string{"PATH=" + c + ":" + a + ":" + b}, filepath.Join(b, "prog"), nil},
		{"with a slash as is", "./x/prog", []string{"PATH=" + b}, "./x/prog", nil},
		{"absolute as is", "/no/such", nil, "/no/such", nil},
		{"relative entries skipped", "prog", []string{"PATH=.:b:" + a}, "", fs.ErrPermission},
		{"not found", "nosuch", []string{"PATH=" + b}, "", exec.ErrNotFound},
		{"empty PATH", "prog", []string{"PATH="}, "", exec.ErrNotFound},
		{"empty name", "", []string{"PATH=" + b}, "", exec.ErrNotFound},
		{"only non-executable", "only-noexec", []string{"PATH=" + b}, "", fs.ErrPermission},
		{"no PATH in env: ours", "prog", []string{"HOME=/"}, filepath.Join(b, "prog"), nil},
		{"last PATH wins", "prog", []string{"PATH=" + a, "PATH=" + b}, filepath.Join(b, "prog"), nil},
	}
	for _, tt := range tests {
		got, err := lookPath(tt.file, tt.env)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: lookPath(%q) = %q, %v; want %q, %v", tt.name, tt.file, got, err, tt.want, tt.wantErr)
		}
	}
}

// Exec replaces the process: argv unchanged, env exact, argv[0] found in
// the env's PATH; failures give 127 and 126.
func TestExec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(dir, "sv-helper")); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	run := func(argv []string, env []string) ([]byte, int) {
		b, _ := json.Marshal(env)
		cmd := exec.Command(os.Args[0], argv...)
		cmd.Env = []string{"SVTEST_ROLE=exec", "SVTEST_EXEC_ENV=" + string(b), "GORACE=atexit_sleep_ms=0"}
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out, cmd.ProcessState.ExitCode()
	}
	argv := []string{"sv-helper", "argv", "a b", "", "ü"}
	out, code := run(argv, childEnv("PATH="+dir))
	var got []string
	if err := json.Unmarshal(out, &got); err != nil || code != 0 || !slices.Equal(got, argv) {
		t.Errorf("exec'd argv %q (exit %d, %v); want %q", out, code, err, argv)
	}
	out, code = run([]string{"sv-helper", "env"}, childEnv("PATH="+dir))
	var env []string
	if err := json.Unmarshal(out, &env); err != nil || !slices.Equal(env, childEnv("PATH="+dir)) {
		t.Errorf("exec'd env %q (exit %d)", out, code)
	}
	if out, code := run([]string{"sv-no-such"}, []string{"PATH=" + dir}); code != 127 {
		t.Errorf("missing command: exit %d (%s); want 127", code, out)
	}
	if out, code := run([]string{noexec}, nil); code != 126 {
		t.Errorf("non-executable: exit %d (%s); want 126", code, out)
	}
}
