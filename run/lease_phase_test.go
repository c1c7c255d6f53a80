//go:build linux

package run

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

const renewRoute = "POST /v1/dynamic/leases/{lease_id}/renew"

// TestPhaseLeaseRenewal: a renewable lease of 3s is renewed at about two
// thirds of its remaining life, again and again, without a restart; it is
// revoked on exit.
func TestPhaseLeaseRenewal(t *testing.T) {
	p := startPhase(t, refRenew, func(_ *phase, o *Options) { o.PollInterval = time.Hour })
	p.expect(`^\d+ ready .* val=v-renew-`)
	p.requests(renewRoute, 3)
	// Three renewals span about 6s, twice the lease's 3s: the lease is alive
	// only because they extended it. (When they come is tested exactly, on
	// fake time, by fetch's watcher tests.)
	if n := p.srv.ActiveLeases(); n != 1 {
		t.Errorf("%d active leases after three renewals, want the one", n)
	}
	p.quiet()
	if n := p.srv.Requests("POST /v1/dynamic/{engine}/creds/{role}"); n != 1 {
		t.Errorf("%d credentials generated, want 1", n)
	}
	p.cancel()
	p.wait()
	if n := p.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases left after exit", n)
	}
}

// TestPhaseLeaseReplacement: a lease that cannot be renewed (6s) is
// replaced at about two thirds of its life: the child restarts with the
// new credential before the old one ends, and the old lease is revoked
// once the new child runs.
func TestPhaseLeaseReplacement(t *testing.T) {
	p := startPhase(t, refFixed, func(_ *phase, o *Options) { o.PollInterval = time.Hour })
	m := p.expect(`^(\d+) ready .* val=(\S+)$`)
	pid, pw := m[1], m[2]
	ids := p.log.await(t, `msg="lease replaced" lease=(\S+) new_lease=(\S+)`, 1)
	old, nl := ids[1], ids[2]
	oldLease, err := p.root.LookupLease(context.Background(), old)
	if err != nil {
		t.Fatalf("old lease when replaced: %v", err)
	}
	p.expect(`^` + pid + ` got SIGTERM$`)
	m = p.expect(`^(\d+) ready .* val=(\S+)$`)
	if m[1] == pid || m[2] == pw {
		t.Fatalf("restarted child has pid %s (was %s), the same credential: %v", m[1], pid, m[2] == pw)
	}
	// The new child started before the old lease ended (by the server's
	// expires_at and the log's time, one clock).
	if at := p.log.timeOf(t, `msg="child started" pid=`+m[1]); !at.Before(oldLease.ExpiresAt) {
		t.Errorf("new child started at %v; the old lease ended at %v", at, oldLease.ExpiresAt)
	}
	p.log.await(t, `msg="superseded lease revoked" lease=`+old, 1)
	log := p.log.String()
	if started, revoked := strings.Index(log, `msg="child started" pid=`+m[1]), strings.Index(log, `msg="superseded lease revoked"`); started < 0 || revoked < started {
		t.Error("the old lease was revoked before the new child ran")
	}
	// Revoked by us, not just expired: the server saw the revocation.
	if n := p.srv.Requests("DELETE /v1/dynamic/leases/{lease_id}"); n < 1 {
		t.Errorf("the old lease was never revoked (%d revoke requests)", n)
	}
	if _, err := p.root.LookupLease(context.Background(), old); !isNotFound(err) {
		t.Errorf("old lease after revocation: %v", err)
	}
	if _, err := p.root.LookupLease(context.Background(), nl); err != nil {
		t.Errorf("new lease: %v", err)
	}
	p.quiet()
}

// TestPhaseCertificate: a certificate of 4s is re-issued at about two
// thirds of its life; the templates and the as=file value change, the
// child gets the reload signal.
func TestPhaseCertificate(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "cert.tmpl"), filepath.Join(dir, "serial")
	os.WriteFile(src, []byte(`{{ with pkiCert "svc" "common_name=a.svc.local" }}{{ .Serial }} {{ .ExpiresAt.Format "2006-01-02T15:04:05.000000000Z07:00" }}{{ end }}`), 0o600)
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.PollInterval = time.Hour
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
		o.Env.Env = append(o.Env.Env, "KEY_FILE=scaivault+pki://svc?common_name=a.svc.local&as=file#private_key_pem")
		o.Supervisor.ReloadSignal = syscall.SIGHUP
	})
	pid := p.ready("pw-SECRET-1")
	serial1, notAfter1 := certOf(t, dst)
	p.expect(`^` + pid + ` got SIGHUP$`)
	serial2, _ := certOf(t, dst)
	if serial1 == serial2 || !strings.Contains(serial2, ":") {
		t.Errorf("serial %q after %q", serial2, serial1)
	}
	p.log.await(t, `msg="reloading child".*certificate svc serial `+serial1+`→`+serial2+` file of KEY_FILE template `, 1)
	// Re-issued and signalled before the first certificate ended.
	if at := p.log.timeOf(t, `msg="reloading child"`); !at.Before(notAfter1) {
		t.Errorf("reloaded at %v; the first certificate ended at %v", at, notAfter1)
	}
}

// certOf reads the serial and the expiry the certificate template wrote.
func certOf(t *testing.T, path string) (string, time.Time) {
	t.Helper()
	serial, exp, _ := strings.Cut(mustRead(t, path), " ")
	at, err := time.Parse("2006-01-02T15:04:05.000000000Z07:00", exp)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return serial, at
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPhaseShortTokens: client credentials whose tokens last 2s, across
// several refreshes: no error, no restart, and a rotation still arrives.
func TestPhaseShortTokens(t *testing.T) {
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.Client.Token, o.Client.ClientID, o.Client.ClientSecret = "", "short", "short-SECRET-phase"
	})
	pid := p.ready("pw-SECRET-1")
	p.requests("POST /v1/auth/token", 4)
	p.quiet()
	p.write("app/db", map[string]any{"password": "pw-SECRET-tok", "username": "app"})
	p.restarted(pid, "pw-SECRET-tok")
	if n := p.log.count(`level=(ERROR|WARN) msg="(lost|scaivault (still )?(unreachable|answering with errors)|cannot apply)`); n != 0 {
		t.Errorf("%d errors or outage warnings with refreshing tokens", n)
	}
}

// TestPhaseTokenFile: the token file is rewritten with another client's
// token and the first one expires: the new token is used, without a
// restart, and a rotation still arrives.
func TestPhaseTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	p := startPhase(t, refDBPassword, func(p *phase, o *Options) {
		o.Client.Token, o.Client.TokenFile = "", file
		writeToken(t, file, p.token("one", "one-SECRET-phase"))
	})
	pid := p.ready("pw-SECRET-1")
	writeToken(t, file, p.token("two", "two-SECRET-phase"))
	p.dev("/v1/dev/tokens/expire", map[string]string{"client_id": "one"})
	p.log.await(t, `msg="scaivault token file re-read"`, 1)
	p.write("app/db", map[string]any{"password": "pw-SECRET-file", "username": "app"})
	p.restarted(pid, "pw-SECRET-file")
	if n := p.log.count(`level=(ERROR|WARN)`); n != 0 {
		t.Errorf("%d warnings or errors", n)
	}
}

// token gets a client's token from the token endpoint.
func (p *phase) token(id, secret string) string {
	p.t.Helper()
	resp, err := http.PostForm(p.url+"/v1/auth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr fetch.TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		p.t.Fatalf("token for %s: %v %s", id, err, resp.Status)
	}
	p.note(tr.AccessToken)
	return tr.AccessToken
}

// writeToken replaces the token file atomically, as a secret mount would.
func writeToken(t *testing.T, file, tok string) {
	t.Helper()
	tmp := file + ".new"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// TestPhaseRenewalIsNoChange: a template that prints the lease's expiry
// (the value at issue) is not re-rendered by renewals, and the child gets
// neither a reload signal nor a restart: only a new credential is a change.
func TestPhaseRenewalIsNoChange(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "lease.tmpl"), filepath.Join(dir, "lease")
	os.WriteFile(src, []byte(`{{ with dynamic "db" "renew" }}{{ .LeaseID }} {{ .ExpiresAt }}{{ end }}`), 0o600)
	p := startPhase(t, refRenew, func(_ *phase, o *Options) {
		o.PollInterval = time.Hour
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
		o.Supervisor.ReloadSignal = syscall.SIGHUP
	})
	p.expect(`^\d+ ready .* val=v-renew-`)
	first := mustRead(t, dst)
	st1, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	p.requests(renewRoute, 3)
	p.quiet() // no "got SIGHUP", no "got SIGTERM", no second "ready"
	if got := mustRead(t, dst); got != first {
		t.Errorf("the template was rewritten by a renewal")
	}
	if st2, err := os.Stat(dst); err != nil || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the rendered file was touched by a renewal (%v)", err)
	}
	if strings.Contains(p.log.String(), `msg="reloading child"`) || strings.Contains(p.log.String(), `msg="restarting child"`) {
		t.Error("a renewal reloaded or restarted the child")
	}
	p.cancel()
	p.wait()
}

// startTemplateDirGone starts a child on a 6s lease whose id a template
// writes into dir/out/db, then removes dir/out. It returns the child's pid
// and the lease id in the file.
func startTemplateDirGone(t *testing.T) (p *phase, out, dst, pid, old string) {
	t.Helper()
	dir := t.TempDir()
	out = filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	src := filepath.Join(dir, "db.tmpl")
	dst = filepath.Join(out, "db")
	os.WriteFile(src, []byte(`{{ with dynamic "db" "fixed" }}{{ .LeaseID }}{{ end }}`), 0o600)
	p = startPhase(t, refFixed, func(_ *phase, o *Options) {
		o.PollInterval = time.Hour
		o.Templates = []template.Spec{{Src: src, Dst: dst}}
	})
	pid = p.expect(`^(\d+) ready .* val=(\S+)$`)[1]
	old = mustRead(t, dst)
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	return p, out, dst, pid, old
}

// TestPhaseFailedWriteKeepsLease: the template's directory disappears
// while a lease is replaced. The write fails: the old lease, which the
// child and the file on disk still use, is not revoked, and the child is
// not restarted; the write is retried with backoff, and once the
// directory is back the file is written, the child restarts on the new
// credential and only then is the old lease revoked.
func TestPhaseFailedWriteKeepsLease(t *testing.T) {
	p, out, dst, pid, old := startTemplateDirGone(t)
	p.log.await(t, `msg="writing files after a change failed`, 2) // retried
	p.quiet()
	// Not revoked (it may run out on its own: the role's leases last 6s).
	if n := p.srv.Requests("DELETE /v1/dynamic/leases/{lease_id}"); n != 0 {
		t.Fatalf("%d revocations after a failed write; the lease the child runs on must stay", n)
	}
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	p.expect(`^` + pid + ` got SIGTERM$`)
	p.expect(`^\d+ ready `)
	if got := mustRead(t, dst); got == old {
		t.Error("the file still names the old lease")
	}
	p.log.await(t, `msg="superseded lease revoked" lease=`+old, 1)
	p.cancel()
	p.wait()
	if n := p.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases left after exit", n)
	}
}

// TestPhaseFailedAsFileWriteKeepsLease: two as=file values of one lease,
// and one of the files cannot be replaced (a directory took its place)
// when the lease is replaced. Files are one all-or-nothing step: the
// other file keeps the old credential (no new one beside an old one),
// nothing is revoked, the child is not restarted; once the path is free
// again both files are written, the child restarts, and only then is the
// old lease revoked.
func TestPhaseFailedAsFileWriteKeepsLease(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	p := startPhase(t, refDBPassword, func(_ *phase, o *Options) {
		o.PollInterval = time.Hour
		o.Env.Env = append(o.Env.Env,
			"P=scaivault+dynamic://db/fixed?as=file#password",
			"U=scaivault+dynamic://db/fixed?as=file#username")
	})
	pid := p.ready("pw-SECRET-1")
	dirs, _ := filepath.Glob(filepath.Join(xdg, "*"))
	if len(dirs) != 1 {
		t.Fatalf("as=file directories: %v", dirs)
	}
	pPath, uPath := filepath.Join(dirs[0], "P"), filepath.Join(dirs[0], "U")
	oldP := mustRead(t, pPath)
	if err := os.Remove(uPath); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(uPath, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	m := p.log.await(t, `msg="lease replaced" lease=(\S+) new_lease=`, 1)
	old := m[1]
	p.log.await(t, `msg="writing files after a change failed`, 2) // retried
	p.quiet()
	if got := mustRead(t, pPath); got != oldP {
		t.Error("P holds the new credential while U could not be written")
	}
	if n := p.srv.Requests("DELETE /v1/dynamic/leases/{lease_id}"); n != 0 {
		t.Fatalf("%d revocations after a failed write", n)
	}
	if err := os.RemoveAll(uPath); err != nil {
		t.Fatal(err)
	}
	p.expect(`^` + pid + ` got SIGTERM$`)
	p.ready("pw-SECRET-1")
	if got := mustRead(t, pPath); got == oldP {
		t.Error("P still holds the old credential")
	}
	if _, err := os.Stat(uPath); err != nil {
		t.Errorf("U not written: %v", err)
	}
	p.log.await(t, `msg="superseded lease revoked" lease=`+old, 1)
	p.cancel()
	p.wait()
}

// TestPhaseFailedWriteReleasesSkippedLease: the template's directory stays
// gone across two replacements of a 6s lease. The lease of the first
// replacement never reached a file or the child: once the second replaces
// it, it is revoked at once, while the child's lease stays until the file
// is written.
func TestPhaseFailedWriteReleasesSkippedLease(t *testing.T) {
	p, out, _, pid, old := startTemplateDirGone(t)
	first := p.log.await(t, `msg="lease replaced" lease=`+old+` new_lease=(\S+)`, 1)[1]
	p.log.await(t, `msg="lease replaced" lease=`+first+` new_lease=`, 1)
	p.log.await(t, `msg="unused lease revoked" lease=`+first, 1)
	if strings.Contains(p.log.String(), `lease revoked" lease=`+old) {
		t.Fatal("the child's lease was revoked while its file could not be replaced")
	}
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	p.expect(`^` + pid + ` got SIGTERM$`)
	p.expect(`^\d+ ready `)
	p.cancel()
	p.wait()
	if n := p.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases left after exit", n)
	}
}
