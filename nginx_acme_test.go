package main

import (
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
)

// The certificate file holds the leaf and then the dev ACME CA, the key
// file the key, from one ACME order.
const (
	acmeCertTmpl = `{{ with acmeCert "le" "domains=localhost" }}{{ .Cert }}{{ .CA }}{{ end }}`
	acmeKeyTmpl  = `{{ with acmeCert "le" "domains=localhost" }}{{ .Key }}{{ end }}`
)

// TestNginxReloadsRenewedACMECertificate: nginx serves the certificate of
// an ACME order; ScaiVault renews it (far from its end: the server
// decided); the acme.renewed event brings the new one, the files are
// rewritten, nginx gets SIGHUP and serves the new serial from the same
// master process.
func TestNginxReloadsRenewedACMECertificate(t *testing.T) {
	seed, err := devserver.ParseSeed([]byte(`{"root_token": "root-t",
		"acme": {"accounts": {"le": {"cert_ttl": "2160h"}}}}`), "nginx-acme.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed, ACMEDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := startNginxOn(t, srv, acmeCertTmpl, acmeKeyTmpl, false, "--reload-signal", "SIGHUP")
	first := n.serving(t)
	if first.Subject.CommonName != "localhost" || first.Issuer.CommonName != "ScaiVault Dev ACME CA" {
		t.Fatalf("served %q issued by %q", first.Subject.CommonName, first.Issuer.CommonName)
	}
	master := n.masterPID(t)
	if got := srv.RenewACMEOrders("le"); got != 1 {
		t.Fatalf("renewed %d orders", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cert := n.serving(t)
		if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx still serves serial %x 30s after the renewal\n%s", first.SerialNumber, n.stderr)
		}
		n.stderr.waitChange(200 * time.Millisecond)
	}
	if got := n.masterPID(t); got != master {
		t.Errorf("nginx master pid %s, was %s: restarted instead of reloaded", got, master)
	}
	if n.stderr.count(`msg="reloading child"`) != 1 || n.stderr.count(`msg="ACME certificate renewed"`) != 1 {
		t.Errorf("want one renewal and one reload logged:\n%s", n.stderr)
	}
	if n.stderr.count("restarting child") != 0 {
		t.Errorf("a restart was logged:\n%s", n.stderr)
	}
	if got := srv.ACMEOrders("le"); got != 1 {
		t.Errorf("%d orders placed, want 1", got)
	}
}
