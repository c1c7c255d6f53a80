package devserver

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/internal/tlstest"
)

// TestServerTLSGenerated: the generated certificate verifies against the
// dev CA for 127.0.0.1, ::1, localhost and an extra host, and not beyond.
func TestServerTLSGenerated(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, err := s.ServerTLS(TLSOptions{Hosts: []string{"127.0.0.2", "dev.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("ClientAuth = %v without a client CA", cfg.ClientAuth)
	}
	leaf := cfg.Certificates[0].Leaf
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(s.CAPEM())) {
		t.Fatal("CAPEM holds no certificate")
	}
	inter := x509.NewCertPool()
	inter.AddCert(mustParse(t, cfg.Certificates[0].Certificate[1]))
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "127.0.0.2", "dev.localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "vault.example", Roots: roots, Intermediates: inter}); err == nil {
		t.Error("valid for vault.example")
	}
	if life := time.Until(leaf.NotAfter); life > serverCertLife || life < serverCertLife-2*time.Hour {
		t.Errorf("life %v, want about %v", life, serverCertLife)
	}

	// WriteCAFile writes exactly CAPEM, readable by anyone (it is public).
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.WriteCAFile(ca); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(ca)
	fi, _ := os.Stat(ca)
	if string(data) != s.CAPEM() || fi.Mode().Perm() != 0o644 {
		t.Errorf("CA file: mode %v, content equal %v", fi.Mode().Perm(), string(data) == s.CAPEM())
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServerTLSFilesAndClientCA(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "Given CA")
	leaf := ca.Issue(t, "vault", tlstest.Options{Server: true, Hosts: []string{"127.0.0.1"}})
	certFile, keyFile, caFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.pem")
	tlstest.WriteFile(t, certFile, leaf.CertPEM)
	tlstest.WriteFile(t, keyFile, leaf.KeyPEM)
	tlstest.WriteFile(t, caFile, ca.PEM)

	cfg, err := s.ServerTLS(TLSOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("client CA given, ClientAuth = %v", cfg.ClientAuth)
	}
	if got := mustParse(t, cfg.Certificates[0].Certificate[0]).Subject.CommonName; got != "vault" {
		t.Errorf("serves %q, want the given certificate", got)
	}

	for _, tt := range []struct {
		o    TLSOptions
		want string
	}{
		{TLSOptions{CertFile: certFile}, "--tls-cert and --tls-key go together"},
		{TLSOptions{KeyFile: keyFile}, "--tls-cert and --tls-key go together"},
		{TLSOptions{CertFile: certFile, KeyFile: certFile}, "--tls-key " + certFile},
		{TLSOptions{ClientCAFile: keyFile}, "--tls-client-ca: " + keyFile + " holds no PEM certificate"},
		{TLSOptions{ClientCAFile: filepath.Join(dir, "nope")}, "--tls-client-ca"},
	} {
		if _, err := s.ServerTLS(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ServerTLS(%+v): err = %v, want %q", tt.o, err, tt.want)
		}
	}
}
