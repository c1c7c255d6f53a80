package main

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
)

// TestChildCannotReadOurEnviron runs the real binary as an unprivileged
// user (root reads every /proc entry, so the check needs another uid) with
// a child of the same user that reads scaivault-run's environment through
// /proc/$PPID/environ, as an attacker in the child would: scaivault-run is
// non-dumpable before the child starts, so the read is refused and the
// token never reaches the child.
func TestChildCannotReadOurEnviron(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run scaivault-run as another user")
	}
	setpriv := setprivT(t)
	bin := buildBinaryT(t)
	// The binary must be reachable by that user.
	os.Chmod(filepath.Dir(bin), 0o755)
	srv, err := devserver.New(devserver.Options{Seed: devserver.DefaultSeed()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close() })

	const token = "dev-root"
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", bin,
		"--env", "A=scaivault://app/db#password", "--",
		"sh", "-c", `tr "\0" "\n" </proc/$PPID/environ; echo "A has ${#A} bytes"`)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", "SCAIVAULT_BASE_URL=" + hs.URL, "SCAIVAULT_TOKEN=" + token}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scaivault-run failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "A has 15 bytes") {
		t.Fatalf("the child did not run with its secret:\n%s", out)
	}
	if strings.Contains(string(out), "SCAIVAULT_TOKEN="+token) {
		t.Fatalf("the child read scaivault-run's token through /proc/$PPID/environ:\n%s", out)
	}
	if !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("reading /proc/$PPID/environ was not refused:\n%s", out)
	}
}

// setprivT is the path of util-linux's setpriv; without it the test
// skips, except in CI (where .ci/run installs it), where it fails.
func setprivT(t *testing.T) string {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("setpriv not found; .ci/run installs the Debian package util-linux")
		}
		t.Skip("setpriv not found (util-linux)")
	}
	return setpriv
}
