package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
)

// nginxBinary finds nginx; without it the test is skipped, except in CI,
// where it fails.
func nginxBinary(t *testing.T) string {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx not found; .ci/run installs the Debian package nginx")
	}
	t.Skip("nginx not found; install the Debian package nginx to run this test")
	return ""
}

const nginxConf = `{{/* rendered by scaivault-run */}}
{{ if eq (env "USER_IS_ROOT") "1" }}user root root;{{ end }}
worker_processes 1;
pid {{ env "NGINX_DIR" }}/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path {{ env "NGINX_DIR" }}/body;
	proxy_temp_path {{ env "NGINX_DIR" }}/proxy;
	fastcgi_temp_path {{ env "NGINX_DIR" }}/fastcgi;
	uwsgi_temp_path {{ env "NGINX_DIR" }}/uwsgi;
	scgi_temp_path {{ env "NGINX_DIR" }}/scgi;
	server {
		listen 127.0.0.1:{{ env "NGINX_PORT" }} ssl;
		server_name localhost;
		ssl_certificate {{ env "NGINX_DIR" }}/tls.crt;
		ssl_certificate_key {{ env "NGINX_DIR" }}/tls.key;
		location / { return 200 "ok\n"; }
	}
}
`

// The certificate file holds the leaf and then the chain, as nginx wants.
const certTmpl = `{{ with pkiCert "svc" "common_name=localhost" "ip_sans=127.0.0.1" "ttl=%s" }}{{ .Cert }}{{ .CA }}{{ end }}`
const keyTmpl = `{{ with pkiCert "svc" "common_name=localhost" "ip_sans=127.0.0.1" "ttl=%s" }}{{ .Key }}{{ end }}`

type nginxRun struct {
	dir, port string
	cmd       *exec.Cmd
	stderr    *lineLog
}

// startNginx runs the real binary with nginx as its child; the certificate
// and key are rendered from pkiCert with the given ttl.
func startNginx(t *testing.T, ttl string, extra ...string) *nginxRun {
	return startNginxWith(t, ttl, false, extra...)
}

// startNginxWith is startNginx; withConfig gives the templates in a
// --config file, as examples/nginx.yaml does, the certificate and key
// with `nginx -s reload` as their command.
func startNginxWith(t *testing.T, ttl string, withConfig bool, extra ...string) *nginxRun {
	seed, err := devserver.ParseSeed([]byte(`{"root_token": "root-t", "pki": {"roles": {"svc": {
		"allowed_domains": ["localhost"], "allow_ip_sans": true, "max_ttl": "72h", "key_type": "ec", "key_bits": 256}}}}`), "nginx.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return startNginxOn(t, srv, fmt.Sprintf(certTmpl, ttl), fmt.Sprintf(keyTmpl, ttl), withConfig, extra...)
}

// startNginxOn is startNginxWith against srv (whose root token is
// "root-t"), the certificate and key rendered from the given templates.
func startNginxOn(t *testing.T, srv *devserver.Server, certText, keyText string, withConfig bool, extra ...string) *nginxRun {
	nginx := nginxBinary(t)
	bin := buildBinaryT(t)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close() })

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	port := freePort(t)
	args := []string{
		"--template", write("nginx.conf.tmpl", nginxConf) + ":" + dir + "/nginx.conf:0644",
		"--template", write("crt.tmpl", certText) + ":" + dir + "/tls.crt:0644",
		"--template", write("key.tmpl", keyText) + ":" + dir + "/tls.key",
	}
	if withConfig {
		reload := fmt.Sprintf(`[%q, "-p", %q, "-c", %q, "-s", "reload"]`, nginx, dir, dir+"/nginx.conf")
		args = []string{"--config", write("scaivault-run.yaml", fmt.Sprintf(`template:
  - source: %[1]s/nginx.conf.tmpl
    destination: %[1]s/nginx.conf
    mode: "0644"
  - source: %[1]s/crt.tmpl
    destination: %[1]s/tls.crt
    mode: "0644"
    command: %[2]s
    command_timeout: 10s
    wait: 100ms:1s
  - source: %[1]s/key.tmpl
    destination: %[1]s/tls.key
    command: %[2]s
    command_timeout: 10s
    wait: 100ms:1s
`, dir, reload))}
	}
	args = append(args, extra...)
	args = append(args, "--", nginx, "-e", "stderr", "-p", dir, "-c", dir+"/nginx.conf", "-g", "daemon off;")
	cmd := exec.Command(bin, args...)
	root := "0"
	if os.Geteuid() == 0 {
		root = "1"
	}
	cmd.Env = append(os.Environ(), "SCAIVAULT_BASE_URL="+hs.URL, "SCAIVAULT_TOKEN=root-t",
		"NGINX_DIR="+dir, "NGINX_PORT="+port, "USER_IS_ROOT="+root)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nginxRun{dir: dir, port: port, cmd: cmd, stderr: newLineLog(stderr)}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	return n
}

// serving dials nginx until it answers TLS (bounded) and returns the
// certificate it serves, verified against the CA chain the server issued.
func (n *nginxRun) serving(t *testing.T) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		roots, err := n.rootPool()
		if err == nil {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", "127.0.0.1:"+n.port,
				&tls.Config{RootCAs: roots, ServerName: "localhost"})
			if err == nil {
				defer conn.Close()
				return conn.ConnectionState().PeerCertificates[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx never served verified TLS: %v\nscaivault-run stderr:\n%s", err, n.stderr)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("no certificate rendered: %v\n%s", err, n.stderr)
		}
		n.stderr.waitChange(100 * time.Millisecond)
	}
}

// rootPool holds the last certificate of the rendered chain: the root.
func (n *nginxRun) rootPool() (*x509.CertPool, error) {
	raw, err := os.ReadFile(filepath.Join(n.dir, "tls.crt"))
	if err != nil {
		return nil, err
	}
	var last *x509.Certificate
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		if last, err = x509.ParseCertificate(block.Bytes); err != nil {
			return nil, err
		}
	}
	if last == nil || !last.IsCA {
		return nil, fmt.Errorf("no CA at the end of tls.crt")
	}
	pool := x509.NewCertPool()
	pool.AddCert(last)
	return pool, nil
}

// TestNginxServesRenderedTLS: nginx, started by scaivault-run as its child,
// serves TLS with the certificate and key rendered from pkiCert, and a TLS
// client verifies it against the CA chain.
func TestNginxServesRenderedTLS(t *testing.T) {
	n := startNginx(t, "72h")
	cert := n.serving(t)
	if cert.Subject.CommonName != "localhost" || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("served certificate: CN %q, IPs %v", cert.Subject.CommonName, cert.IPAddresses)
	}
	if fi, err := os.Stat(filepath.Join(n.dir, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	// SIGTERM stops nginx and scaivault-run exits with nginx's status.
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		t.Errorf("scaivault-run after SIGTERM: %v\n%s", err, n.stderr)
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

var builtBinary struct {
	path string
	err  error
}

// buildBinaryT builds scaivault-run once per test binary.
func buildBinaryT(t *testing.T) string {
	t.Helper()
	if builtBinary.path == "" && builtBinary.err == nil {
		dir, err := os.MkdirTemp("", "scaivault-run-bin")
		if err != nil {
			t.Fatal(err)
		}
		builtBinary.path = filepath.Join(dir, "scaivault-run")
		cmd := exec.Command("go", "build", "-o", builtBinary.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			builtBinary.err = fmt.Errorf("%v\n%s", err, out)
		}
	}
	if builtBinary.err != nil {
		t.Fatal(builtBinary.err)
	}
	return builtBinary.path
}

// lineLog collects a stream's lines and lets a test wait for new ones; it
// never blocks the writer.
type lineLog struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newLineLog(r io.Reader) *lineLog {
	l := &lineLog{notify: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
			select {
			case l.notify <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// waitChange waits up to d for a new line.
func (l *lineLog) waitChange(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.notify:
	case <-t.C:
	}
}

// count is the number of lines containing s so far.
func (l *lineLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// waitCount waits until at least n lines contain s, bounded by d.
func (l *lineLog) waitCount(s string, n int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for l.count(s) < n {
		if time.Now().After(deadline) {
			return false
		}
		l.waitChange(100 * time.Millisecond)
	}
	return true
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestNginxReloadsRenewedCertificate: a certificate with a short ttl is
// re-issued before it ends, the rendered files change, nginx gets SIGHUP
// (not a restart: the same master keeps running) and serves the new
// certificate, as a TLS client sees by its serial.
func TestNginxReloadsRenewedCertificate(t *testing.T) {
	n := startNginx(t, "6s", "--reload-signal", "SIGHUP")
	first := n.serving(t)
	master := n.masterPID(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cert := n.serving(t)
		if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !cert.NotAfter.After(first.NotAfter) {
				t.Errorf("renewed certificate ends %v, not after %v", cert.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx still serves serial %x after 30s\n%s", first.SerialNumber, n.stderr)
		}
		n.stderr.waitChange(200 * time.Millisecond)
	}
	if got := n.masterPID(t); got != master {
		t.Errorf("nginx master pid %s, was %s: restarted instead of reloaded", got, master)
	}
	if n.stderr.count("reload") == 0 {
		t.Errorf("no reload logged:\n%s", n.stderr)
	}
	if n.stderr.count("restart") != 0 {
		t.Errorf("a restart was logged:\n%s", n.stderr)
	}
}

// TestNginxReloadsByCommand: the certificate and key template blocks of a
// --config file run `nginx -s reload` when they change (once: the two
// change together); nginx serves the new certificate from the same master
// process, and scaivault-run neither restarts nor signals it.
func TestNginxReloadsByCommand(t *testing.T) {
	n := startNginxWith(t, "6s", true)
	first := n.serving(t)
	master := n.masterPID(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cert := n.serving(t)
		if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx still serves serial %x after 30s\n%s", first.SerialNumber, n.stderr)
		}
		n.stderr.waitChange(200 * time.Millisecond)
	}
	if got := n.masterPID(t); got != master {
		t.Errorf("nginx master pid %s, was %s: restarted instead of reloaded", got, master)
	}
	if n.stderr.count(`msg="template command done"`) == 0 {
		t.Errorf("no template command logged:\n%s", n.stderr)
	}
	if n.stderr.count("restarting child") != 0 || n.stderr.count("reloading child") != 0 {
		t.Errorf("the child was restarted or signalled:\n%s", n.stderr)
	}
}

func (n *nginxRun) masterPID(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(n.dir, "nginx.pid"))
	if err != nil {
		t.Fatalf("nginx pid file: %v", err)
	}
	return strings.TrimSpace(string(raw))
}
