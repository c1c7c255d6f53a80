package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
)

// TestNoSecretInLogs runs the real main at debug level through every kind
// of reference, the failures included, and scans everything it wrote to
// stderr for every secret value the server holds or handed out.
func TestNoSecretInLogs(t *testing.T) {
	seed, err := devserver.ParseSeed([]byte(leakSeed), "leak.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed, ACMEDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	t.Setenv("SCAIVAULT_BASE_URL", hs.URL)
	t.Setenv("SCAIVAULT_TOKEN", "")
	t.Setenv("SCAIKEY_CLIENT_ID", "app")
	t.Setenv("SCAIKEY_CLIENT_SECRET", "client-secret-value")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	tmpl := t.TempDir() + "/app.tmpl"
	if err := os.WriteFile(tmpl, []byte(`{{ with secret "app/db" }}{{ .Data.password }}{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The private key the server issues is not kept by the server: a
	// template writes it to a file, read back below for the scan.
	keyTmpl, keyOut := t.TempDir()+"/key.tmpl", t.TempDir()+"/key.pem"
	if err := os.WriteFile(keyTmpl, []byte(`{{ (pkiCert "svc" "common_name=localhost").Key }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := [][]string{
		{"--env", "A=scaivault://app/db#password", "--env", "B=scaivault://app/db",
			"--env", "U=scaivault+dynamic://db/ro#username", "--env", "P=scaivault+dynamic://db/ro#password",
			"--env", "K=scaivault+pki://svc?common_name=localhost&as=file#private_key_pem",
			"--env", "C=scaivault+acme://le?domains=leak.example.com&as=file#private_key_pem",
			"--secret", "app/cfg", "--template", tmpl + ":" + t.TempDir() + "/out",
			"--template", keyTmpl + ":" + keyOut, "--", "true"},
		{"--env", "A=scaivault://app/db#nokey", "--", "true"},
		{"--env", "A=scaivault://other/x", "--", "true"},
		{"--env", "C=scaivault+acme://le?domains=broken.example.com#private_key_pem", "--", "true"},
		{"--env", "A=scaivault://app/db#password", "--", "no-such-command-xyz"},
	}
	var stderr bytes.Buffer
	for i, r := range runs {
		args := append([]string{"scaivault-run", "--log-level", "debug"}, r...)
		code := runMain(args, &bytes.Buffer{}, &stderr)
		rcode := runMain(append([]string{"scaivault-run", "render", "--log-level", "debug"}, r[:len(r)-2]...), &bytes.Buffer{}, &stderr)
		if i == 0 && (code != 0 || rcode != 0) {
			t.Fatalf("the good run failed: status %d, render %d:\n%s", code, rcode, stderr.String())
		}
		if i > 0 && code == 0 {
			t.Errorf("run %d should have failed", i)
		}
	}
	logs := stderr.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("no debug logs captured:\n%s", logs)
	}
	values := srv.SecretValues()
	for _, v := range values {
		if strings.HasPrefix(v, "-----BEGIN") { // an ACME key the server issued
			for _, line := range strings.Split(v, "\n") {
				if len(line) > 20 && !strings.HasPrefix(line, "-----") {
					values = append(values, line)
				}
			}
		}
	}
	key, err := os.ReadFile(keyOut)
	if err != nil || !strings.Contains(string(key), "PRIVATE KEY") {
		t.Fatalf("no private key rendered: %v", err)
	}
	for _, line := range strings.Split(string(key), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			values = append(values, line) // each base64 line of the key
		}
	}
	if len(values) < 5 {
		t.Fatalf("only %d secret values known to the server", len(values))
	}
	for _, v := range values {
		if strings.Contains(logs, v) {
			t.Errorf("a secret value (%d bytes) appears in stderr", len(v))
		}
	}
}

const leakSeed = `{
  "root_token": "root-token-value",
  "clients": [{"client_id": "app", "client_secret": "client-secret-value", "token_ttl": "1h", "policies": ["app"]}],
  "policies": {"app": [{"path_pattern": "app/**", "permissions": ["read", "list"]},
                       {"path_pattern": "dynamic/**", "permissions": ["dynamic"]},
                       {"path_pattern": "pki/*", "permissions": ["pki"]},
                       {"path_pattern": "acme/le", "permissions": ["acme"]}]},
  "secrets": {
    "app/db": {"data": {"password": "pw-leak-check-1", "username": "leak-user"}},
    "app/cfg": {"data": {"api_key": "key-leak-check-2", "port": "8080"}},
    "other/x": {"data": {"v": "other-leak-check-3"}}
  },
  "dynamic": {"db": {"kind": "random", "roles": {"ro": {"ttl": "1h", "max_ttl": "2h", "renewable": true}}}},
  "pki": {"roles": {"svc": {"allowed_domains": ["localhost"], "max_ttl": "72h", "key_type": "ec", "key_bits": 256}}},
  "acme": {"accounts": {"le": {"fail_domains": ["broken.example.com"]}}}
}`
