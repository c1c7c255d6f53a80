//go:build linux

package run

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// reapSetups are the two ways Run reaps: as a subreaper, and as PID 1 of a
// pid namespace (unshare, root only).
func reapSetups(t *testing.T) map[string]func(svConfig) (svConfig, []string) {
	t.Helper()
	setups := map[string]func(svConfig) (svConfig, []string){
		"subreaper": func(c svConfig) (svConfig, []string) {
			c.Subreaper, c.Reap = true, true
			return c, nil
		},
	}
	if os.Geteuid() != 0 {
		t.Log("PID 1 case skipped: unshare --pid needs root")
		return setups
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Logf("PID 1 case skipped: unshare --pid --fork --mount-proc: %v", err)
		return setups
	}
	setups["pid1"] = func(c svConfig) (svConfig, []string) {
		return c, []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}
	}
	return setups
}

// An orphan that exits is reaped by the supervisor; the main child's status
// still comes through.
func TestReapOrphans(t *testing.T) {
	t.Parallel()
	for name, setup := range reapSetups(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, wrap := setup(svConfig{Argv: childArgv("orphan"), Env: childEnv()})
			p := startSupervisor(t, c, wrap, nil)
			p.expect(`^\d+ reaped \d+$`)
			p.expect(`^\d+ sv exit 5 `)
			if code := p.wait(); code != 5 {
				t.Errorf("exit %d; want 5", code)
			}
		})
	}
}

// The supervisor returns as soon as the main child exits, though an orphan
// lingers holding its stdout open.
func TestPromptExitWithLingeringOrphan(t *testing.T) {
	t.Parallel()
	for name, setup := range reapSetups(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, wrap := setup(svConfig{Argv: childArgv("linger"), Env: childEnv()})
			p := startSupervisor(t, c, wrap, nil)
			m := p.expect(`^\d+ linger (\d+)$`)
			if name == "subreaper" { // a pid of our namespace: ours to clean up
				g, _ := strconv.Atoi(m[1])
				t.Cleanup(func() { syscall.Kill(g, syscall.SIGKILL) })
			}
			p.expect(`^\d+ sv exit 7 `)
			if code := p.wait(); code != 7 {
				t.Errorf("exit %d; want 7", code)
			}
		})
	}
}

// Cancelling Run's context stops the child, and its status still comes
// through the reaper.
func TestCancelWhileReaping(t *testing.T) {
	t.Parallel()
	for name, setup := range reapSetups(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			c, wrap := setup(svConfig{Argv: childArgv("signals"), Env: childEnv(), CancelFD: true})
			p := startSupervisor(t, c, wrap, func(cmd *exec.Cmd) io.Reader {
				cmd.ExtraFiles = []*os.File{r}
				return nil
			})
			r.Close()
			p.expect(`^\d+ ready `)
			w.Close()
			p.expect(`^\d+ got SIGTERM$`)
			p.expect(`^\d+ sv exit 0 `)
			if code := p.wait(); code != 0 {
				t.Errorf("exit %d; want 0", code)
			}
		})
	}
}
