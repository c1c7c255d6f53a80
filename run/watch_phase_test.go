//go:build linux

package run

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

// pollOnly makes the dev server answer /v1/events with 404, so that the
// watcher polls; it waits until the watcher says so.
func (p *phase) pollOnly() {
	p.t.Helper()
	p.srv.SetFaults(devserver.Faults{Rate: 1, Status: 404, PathPrefix: "/v1/events"})
}

func (p *phase) awaitPolling() {
	p.t.Helper()
	p.log.await(p.t, `msg="the server offers no change events; polling"`, 1)
}

// TestPhaseRotation: a rotated secret restarts the child with the new
// value; a new version with the same data does nothing.
func TestPhaseRotation(t *testing.T) {
	p := startPhase(t, refDBPassword, nil)
	p.pollOnly()
	pid := p.ready("pw-SECRET-1")
	p.awaitPolling()

	p.write("app/db", map[string]any{"password": "pw-SECRET-2", "username": "app"})
	pid = p.restarted(pid, "pw-SECRET-2")
	p.log.await(t, `msg="restarting child".*reasons="\[secret app/db v1→v2 keys password variable SVTEST_VAL\]"`, 1)

	// Same data, new version: several polls later, nothing happened; the
	// next thing the child sees is the next real change.
	p.write("app/db", map[string]any{"password": "pw-SECRET-2", "username": "app"})
	p.requests("POST /v1/secrets/batch-read", p.srv.Requests("POST /v1/secrets/batch-read")+5)
	p.quiet()
	p.write("app/db", map[string]any{"password": "pw-SECRET-3", "username": "app"})
	p.restarted(pid, "pw-SECRET-3")
	if n := p.log.count(`msg="restarting child"`); n != 2 {
		t.Errorf("%d restarts, want 2", n)
	}
}

// TestPhaseTemplateReload: a change that only a template uses reloads the
// child with the reload signal; same pid, new file.
func TestPhaseTemplateReload(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "app.tmpl"), filepath.Join(dir, "app.conf")
	os.WriteFile(src, []byte(`v={{ with secret "app/tpl" }}{{ .Data.v }}{{ end }}`+"\n"), 0o600)
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
		o.Supervisor.ReloadSignal = syscall.SIGHUP
	})
	pid := p.ready("pw-SECRET-1")
	readFile(t, dst, "v=tpl-SECRET-1\n")
	p.write("app/tpl", map[string]any{"v": "tpl-SECRET-2"})
	p.expect(`^` + pid + ` got SIGHUP$`)
	readFile(t, dst, "v=tpl-SECRET-2\n")
	p.log.await(t, `msg="reloading child".*reasons="\[secret app/tpl v1→v2 keys v template `, 1)
	// Changes the child does not see: nothing. The events come in order,
	// so the read for the second shows that both were handled.
	reads := p.srv.Requests("POST /v1/secrets/batch-read")
	p.write("app/other", map[string]any{"x": "other-SECRET-1"})
	p.write("app/db", map[string]any{"password": "pw-SECRET-1", "username": "app"})
	p.requests("POST /v1/secrets/batch-read", reads+1)
	p.log.await(t, `msg="new version with the same data: no change" secret=app/db version=2`, 1)
	p.quiet()
}

func readFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s holds %d bytes, not the expected %d", filepath.Base(path), len(b), len(want))
	}
}

// TestPhaseEvents: with change events, a rotation reaches the child well
// within a poll interval of an hour.
func TestPhaseEvents(t *testing.T) {
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) { o.PollInterval = time.Hour })
	pid := p.ready("pw-SECRET-1")
	p.log.await(t, `msg="following change events"`, 1)
	start := time.Now()
	p.write("app/db", map[string]any{"password": "pw-SECRET-ev", "username": "app"})
	p.restarted(pid, "pw-SECRET-ev")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rotation reached the child after %v with events", d)
	}
}

// TestPhaseOutage: the server fails for several poll intervals: the child
// keeps running, one warning once it has lasted past the threshold
// (300ms here), one line on recovery; a rotation after it is picked up.
func TestPhaseOutage(t *testing.T) {
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Client.Outage = fetch.OutagePolicy{After: 300 * time.Millisecond}
	})
	p.pollOnly()
	pid := p.ready("pw-SECRET-1")
	p.awaitPolling()
	before := p.srv.Requests("POST /v1/secrets/batch-read")
	p.srv.SetFaults(devserver.Faults{Rate: 1, Status: 503, PathPrefix: "/v1/secrets"})
	p.log.await(t, `level=WARN msg="scaivault answering with errors; the child keeps running on what it has" for=\S+ failures=\d+ failing=secrets status=503`, 1)
	// Eight polls, one request each: the watcher retries, the client not.
	p.requests("POST /v1/secrets/batch-read", before+8)
	p.srv.SetFaults(devserver.Faults{Rate: 1, Status: 404, PathPrefix: "/v1/events"})
	p.log.await(t, `level=INFO msg="scaivault answering normally again" after=\S+ failures=\d+`, 1)
	p.quiet()
	p.write("app/db", map[string]any{"password": "pw-SECRET-after", "username": "app"})
	p.restarted(pid, "pw-SECRET-after")
	if n := p.log.count(`level=WARN`); n != 1 {
		t.Errorf("%d warnings in all, want the one outage warning", n)
	}
	if n := p.log.count(`unreachable`); n != 0 {
		t.Errorf("a server answering 503 logged as unreachable")
	}
}

// TestPhaseLost: a deleted secret keeps the child running on what it has,
// with an error logged on every poll.
func TestPhaseLost(t *testing.T) {
	p := startPhase(t, refDBPassword, nil)
	p.pollOnly()
	p.ready("pw-SECRET-1")
	p.awaitPolling()
	if err := p.admin().Delete(context.Background(), "app/db", false); err != nil {
		t.Fatal(err)
	}
	p.log.await(t, `level=ERROR msg="lost for good; the child keeps running on what it has".*secret=app/db`, 3)
	p.quiet()
	p.cancel()
	if code, err := p.wait(); code != 0 || err != nil {
		t.Errorf("exit %d, %v; want the child's 0", code, err)
	}
}

// TestPhaseExitOnLost: with ExitOnLost, a deleted secret stops the child
// and Launch returns 125 naming the secret.
func TestPhaseExitOnLost(t *testing.T) {
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) { o.ExitOnLost = true })
	pid := p.ready("pw-SECRET-1")
	if err := p.admin().Delete(context.Background(), "app/db", false); err != nil {
		t.Fatal(err)
	}
	p.expect(`^` + pid + ` got SIGTERM$`)
	code, err := p.wait()
	if code != ExitFailure || err == nil || !strings.Contains(err.Error(), `secret "app/db" lost`) {
		t.Errorf("exit %d, %v; want 125 naming the secret", code, err)
	}
}

// TestPhaseDebounce: two rotations in quick succession restart the child
// once, with the second value.
func TestPhaseDebounce(t *testing.T) {
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.PollInterval = time.Hour
		o.Supervisor.WaitMin, o.Supervisor.WaitMax = time.Second, 4*time.Second
	})
	pid := p.ready("pw-SECRET-1")
	p.log.await(t, `msg="following change events"`, 1)
	p.write("app/db", map[string]any{"password": "pw-SECRET-d1", "username": "app"})
	p.write("app/db", map[string]any{"password": "pw-SECRET-d2", "username": "app"})
	p.restarted(pid, "pw-SECRET-d2")
	if n := p.log.count(`msg="restarting child"`); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
}

// TestPhaseChildExits: a child that exits on its own ends the run with its
// status, and its leases are revoked.
func TestPhaseChildExits(t *testing.T) {
	p := startPhase(t, refRenew, func(_ *phase, o *Options) { o.Argv = childArgv("exit", "3") })
	p.expect(`^\d+ ready$`)
	if code, err := p.wait(); code != 3 || err != nil {
		t.Errorf("exit %d, %v; want 3", code, err)
	}
	if n := p.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases left", n)
	}
}

// TestPhaseTemplateList: a template ranges over a list; a new path under
// the prefix is read (resolved anew), written, and watched from then on.
func TestPhaseTemplateList(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "all.tmpl"), filepath.Join(dir, "all")
	os.WriteFile(src, []byte(`{{ range secrets "app/conf/" }}app/conf/{{ . }}={{ (secret (print "app/conf/" .)).Data.v }};{{ end }}`), 0o600)
	p := startPhase(t, refDBPassword, func(p *phase, o *Options) {
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
		o.Supervisor.ReloadSignal = syscall.SIGHUP
		p.write("app/conf/a", map[string]any{"v": "conf-SECRET-a1"})
	})
	pid := p.ready("pw-SECRET-1")
	readFile(t, dst, "app/conf/a=conf-SECRET-a1;")
	p.log.await(t, `msg="following change events"`, 1)
	p.write("app/conf/b", map[string]any{"v": "conf-SECRET-b1"})
	p.expect(`^` + pid + ` got SIGHUP$`)
	p.log.await(t, `msg="reloading child".*list app/conf/: added app/conf/b`, 1)
	readFile(t, dst, "app/conf/a=conf-SECRET-a1;app/conf/b=conf-SECRET-b1;")
	// app/conf/b is watched now.
	p.write("app/conf/b", map[string]any{"v": "conf-SECRET-b2"})
	p.expect(`^` + pid + ` got SIGHUP$`)
	readFile(t, dst, "app/conf/a=conf-SECRET-a1;app/conf/b=conf-SECRET-b2;")
	p.log.await(t, `msg="reloading child".*secret app/conf/b v1→v2 keys v`, 1)
}

// TestPhaseBadRotation: a rotation that the templates cannot use (a key
// gone) is not applied: the child keeps running on what it has, an error
// is logged on every attempt; once fixed, it is applied.
func TestPhaseBadRotation(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "t.tmpl"), filepath.Join(dir, "t")
	os.WriteFile(src, []byte(`{{ (secret "app/tpl").Data.v }}`), 0o600)
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
	})
	p.pollOnly()
	pid := p.ready("pw-SECRET-1")
	p.awaitPolling()
	p.write("app/tpl", map[string]any{"w": "tpl-SECRET-wrong"})
	p.log.await(t, `level=ERROR msg="cannot apply a change; the child keeps running on what it has".*secret app/tpl v1→v2 keys v,w`, 3)
	p.quiet()
	readFile(t, dst, "tpl-SECRET-1")
	p.write("app/tpl", map[string]any{"v": "tpl-SECRET-fixed"})
	p.restarted(pid, "pw-SECRET-1") // no reload signal: a restart
	readFile(t, dst, "tpl-SECRET-fixed")
}
