//go:build linux

package run

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// These tests run Supervisor.Run in the test process (no signals are sent
// to it; the context stops it).

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// runSupervisor runs cfg to its end (bounded) with stdio from /dev/null
// unless set.
func runSupervisor(t *testing.T, ctx context.Context, cfg Config) (int, error) {
	t.Helper()
	if cfg.Stdin == nil {
		cfg.Stdin = devNull(t)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = devNull(t)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = devNull(t)
	}
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := New(cfg).Run(ctx)
		res <- result{code, err}
	}()
	select {
	case r := <-res:
		return r.code, r.err
	case <-time.After(deadline):
		t.Fatalf("Run did not return within %v", deadline)
	}
	return 0, nil
}

func TestExitStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want int
	}{
		{"exit 0", childArgv("exit", "0"), 0},
		{"exit 3", childArgv("exit", "3"), 3},
		{"exit 42", childArgv("exit", "42"), 42},
		{"SIGSEGV", []string{"/bin/sh", "-c", "kill -SEGV $$"}, 139},
		{"SIGKILL", []string{"/bin/sh", "-c", "kill -KILL $$"}, 137},
		{"SIGTERM", []string{"/bin/sh", "-c", "kill -TERM $$"}, 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, err := runSupervisor(t, context.Background(), Config{Argv: tt.argv, Env: childEnv()})
			if code != tt.want || err != nil {
				t.Errorf("Run = %d, %v; want %d, nil", code, err, tt.want)
			}
		})
	}
}

func TestExecFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noexec := write("noexec", "#!/bin/sh\nexit 0\n", 0o644)
	garbage := write("garbage", "\x00\x01\x02 not a program", 0o755)
	write("onpath-noexec", "#!/bin/sh\nexit 0\n", 0o644)
	tests := []struct {
		name string
		argv []string
		dir  string
		want int
	}{
		{"missing on PATH", []string{"sv-no-such-command"}, "", 127},
		{"missing path", []string{"/nonexistent/sv-cmd"}, "", 127},
		{"empty name", []string{""}, "", 127},
		{"not executable", []string{noexec}, "", 126},
		{"not executable on PATH", []string{"onpath-noexec"}, "", 126},
		{"no #! and not a binary", []string{garbage}, "", 126},
		{"directory", []string{dir}, "", 126},
		{"missing working directory", childArgv("exit", "0"), filepath.Join(dir, "nodir"), 125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, err := runSupervisor(t, context.Background(), Config{Argv: tt.argv, Dir: tt.dir, Env: []string{"PATH=" + dir}})
			if code != tt.want || err == nil {
				t.Errorf("Run = %d, %v; want %d and an error", code, err, tt.want)
			}
			t.Log(err)
		})
	}
	if code, err := runSupervisor(t, context.Background(), Config{}); code != 125 || err == nil {
		t.Errorf("Run without a command = %d, %v; want 125 and an error", code, err)
	}
}

// outputOf runs cfg with stdout to a file and returns what the child wrote.
func outputOf(t *testing.T, cfg Config) []byte {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cfg.Stdout = out
	if code, err := runSupervisor(t, context.Background(), cfg); code != 0 || err != nil {
		t.Fatalf("Run = %d, %v", code, err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// argv reaches execve unchanged; argv[0] is looked up in the child's PATH.
func TestArgvIntact(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(dir, "sv-helper")); err != nil {
		t.Fatal(err)
	}
	argv := []string{"sv-helper", "argv", "a b", "", "it's \"quoted\"", `back\slash`, "ünïcødé ✓ 日本",
		"$HOME", "*", "; rm -rf /", "--flag=x y", "new\nline", "\ttab"}
	out := outputOf(t, Config{Argv: argv, Env: childEnv("PATH=/nonexistent:" + dir)})
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if !slices.Equal(got, argv) {
		t.Errorf("child argv %q; want %q", got, argv)
	}
}

// The child's environment is exactly Env; nil is empty, never ours.
func TestEnvExact(t *testing.T) {
	t.Parallel()
	env := childEnv("A=1", "EMPTY=", "SPACES=a b  c", "UNICODE=ü")
	out := outputOf(t, Config{Argv: childArgv("env"), Env: env})
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if !slices.Equal(got, env) {
		t.Errorf("child env %q; want %q", got, env)
	}
	if out := outputOf(t, Config{Argv: []string{"/usr/bin/env"}}); len(out) != 0 {
		t.Errorf("child of nil Env has environment %q", out)
	}
}

// The child gets our stdio files: binary data passes byte for byte.
func TestStdioBinary(t *testing.T) {
	t.Parallel()
	data := make([]byte, 1<<20)
	rand.Read(data)
	data = append(data, "\x00\r\n\x03\x04\xff\xfe"...)
	in := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := outputOf(t, Config{Argv: childArgv("cat"), Env: childEnv(), Stdin: f})
	if !bytes.Equal(out, data) {
		t.Errorf("stdout differs from stdin: %d bytes, want %d", len(out), len(data))
	}
}
