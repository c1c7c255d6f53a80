//go:build linux

package run

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/template"
)

// TestPhaseTemplateActions: templates with actions of their own (config
// blocks). On the first render nothing runs; after a rotation the
// template with a command runs it, its output logged with the values
// concealed, and the one with a reload signal sends it; the child is not
// restarted. A failing command and one past its timeout are logged and
// change nothing else.
func TestPhaseTemplateActions(t *testing.T) {
	dir := t.TempDir()
	body := []byte(`v={{ with secret "app/tpl" }}{{ .Data.v }}{{ end }}` + "\n")
	spec := func(name string) template.Spec {
		src := filepath.Join(dir, name+".tmpl")
		if err := os.WriteFile(src, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return template.Spec{Src: src, Dst: filepath.Join(dir, name+".conf")}
	}
	cmd, sig, fail, slow := spec("cmd"), spec("sig"), spec("fail"), spec("slow")
	ran := filepath.Join(dir, "ran")
	cmd.Command = []string{"sh", "-c", `cat "$1"; echo >"$2"`, "sh", cmd.Dst, ran}
	sig.ReloadSignal = syscall.SIGUSR1
	fail.Command = []string{"sh", "-c", "echo cannot reload >&2; exit 3"}
	slow.Command = []string{"sleep", "60"}
	slow.CommandTimeout = 100 * time.Millisecond
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Templates = []template.Spec{cmd, sig, fail, slow}
	})
	pid := p.ready("pw-SECRET-1")
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("the command ran on the first render")
	}
	p.write("app/tpl", map[string]any{"v": "tpl-SECRET-2"})
	p.expect(`^` + pid + ` got SIGUSR1$`)
	readFile(t, sig.Dst, "v=tpl-SECRET-2\n")
	p.log.await(t, `level=INFO msg="template command done" file=`+cmd.Dst+` command=sh pid=\d+ took=\S+ output="v=<concealed:scaivault://app/tpl#v>"`, 1)
	if _, err := os.Stat(ran); err != nil {
		t.Errorf("the command did not run: %v", err)
	}
	p.log.await(t, `level=ERROR msg="template command failed; the file stays written" file=`+fail.Dst+` command=sh .* output="cannot reload" code=3`, 1)
	p.log.await(t, `level=ERROR msg="template command killed" file=`+slow.Dst+` command=sleep .* reason=timeout timeout=100ms`, 1)
	p.quiet()
	if n := p.log.count(`msg="restarting child"`); n != 0 {
		t.Errorf("%d restarts, want none", n)
	}
	p.cancel()
	if code, err := p.wait(); code != 0 || err != nil {
		t.Errorf("exit %d, %v; want 0 (the child exits 0 on SIGTERM)", code, err)
	}
}

// TestPhaseMaskBeforeFiles: with --mask, a rotated value is concealed
// before any file holding it is written, so a child that reads its files
// on its own (a certificate watcher) never prints it: here the child
// prints the new file the moment it is on disk, before anything else.
func TestPhaseMaskBeforeFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.tmpl")
	if err := os.WriteFile(src, []byte(`v={{ with secret "app/tpl" }}{{ .Data.v }}{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "a.conf")
	var p atomic.Pointer[phase]
	var pid atomic.Value // string
	writeStep = func(files []template.FileWrite, out []template.Rendered, opt template.Options, stdout io.Writer) ([]string, []string, error) {
		vars, changed, err := template.WriteStep(files, out, opt, stdout)
		if len(changed) > 0 {
			pid := pid.Load().(string)
			n, _ := strconv.Atoi(pid)
			if err := syscall.Kill(n, syscall.SIGUSR1); err != nil {
				t.Error(err)
			}
			p.Load().expect(`^` + pid + ` file v=<concealed:scaivault://app/tpl#v>$`)
		}
		return vars, changed, err
	}
	t.Cleanup(func() { writeStep = template.WriteStep })
	ph := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
		o.Argv = childArgv("printfile", dst)
		o.Mask = true
	})
	p.Store(ph)
	pid.Store(ph.ready("<concealed:SVTEST_VAL>"))
	ph.write("app/tpl", map[string]any{"v": "tpl-SECRET-2"})
	ph.log.await(t, `msg="restarting child"`, 1)
	readFile(t, dst, "v=tpl-SECRET-2")
}

// TestPhaseFilesOnly: no command. The files are rendered and kept fresh
// through a lease replacement; the file's command runs each time it
// changed (the first render included: the file was new), and the lease
// the file held before is revoked after the command has ended (that the
// release waits for the command is pinned by TestLoopTemplateCommand);
// /readyz is 200 once the files are rendered, /status shows no child,
// the commands are counted; cancellation (SIGTERM) exits 0, files stay.
func TestPhaseFilesOnly(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.tmpl"), filepath.Join(dir, "a.conf")
	gate := filepath.Join(dir, "gate")
	if err := os.WriteFile(src, []byte(`{{ with dynamic "db" "fixed" }}{{ .LeaseID }} {{ .Data.username }}{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The command of a change (not the first) waits for the gate.
	script := `if [ -e "$2" ]; then while [ ! -e "$1" ]; do sleep 0.01; done; fi; touch "$2"`
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Argv, o.Env = nil, template.EnvSpec{}
		o.StatusAddr = "127.0.0.1:0"
		o.Templates = []template.Spec{{Src: src, Dst: dst, Command: []string{"sh", "-c", script, "sh", gate, filepath.Join(dir, "first")}}}
	})
	addr := p.log.await(t, `status endpoint listening" addr=(\S+)`, 1)[1]
	sc := &scraper{t: t, base: "http://" + addr}
	p.log.await(t, `msg="files rendered; keeping them fresh \(no command\)" templates=1 changed=1`, 1)
	p.log.await(t, `msg="template command done" file=`+regexp.QuoteMeta(dst), 1)
	sc.until("/readyz", func(code int, _ string) bool { return code == 200 })
	var doc statusDoc
	if _, raw := sc.get("/status"); json.Unmarshal([]byte(raw), &doc) != nil || doc.Child != nil || !doc.Ready {
		t.Errorf("/status: %s", raw)
	}
	first := strings.Fields(readAll(t, dst))[0]

	// The 6s lease is replaced before its end: the file changes, the
	// command runs and waits; the old lease stays valid meanwhile.
	p.log.await(t, `msg="template command started"`, 2)
	now := strings.Fields(readAll(t, dst))[0]
	if now == first {
		t.Fatalf("the file still holds lease %s", first)
	}
	if p.log.count(`msg="superseded lease revoked"`) != 0 {
		t.Errorf("the old lease was revoked while the command ran")
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.log.await(t, `msg="template command done"`, 2)
	p.log.await(t, `msg="superseded lease revoked" lease=`+first, 1)
	if log := p.log.String(); strings.Index(log, `msg="superseded lease revoked"`) < strings.LastIndex(log, `msg="template command done"`) {
		t.Errorf("the old lease was revoked before the command ended")
	}
	if m := sc.metrics(); m[`scaivault_run_template_commands_total{result="ok"}`] != 2 {
		t.Errorf("commands counted: %v", m)
	}
	p.cancel()
	if code, err := p.wait(); code != 0 || err != nil {
		t.Errorf("exit %d, %v; want 0", code, err)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Errorf("the rendered file is gone: %v", err)
	}
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
