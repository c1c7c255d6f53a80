//go:build linux

package run

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
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
