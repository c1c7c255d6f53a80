package devserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a certificate PEM: %q", p)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verify checks the certificate against its chain: roots = last of the
// chain, intermediates = the rest.
func verify(t *testing.T, c *fetch.Cert, at time.Time, name string) *x509.Certificate {
	t.Helper()
	leaf := parseCert(t, c.CertificatePEM)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for i, p := range c.CAChain {
		if i == len(c.CAChain)-1 {
			roots.AddCert(parseCert(t, p))
		} else {
			inter.AddCert(parseCert(t, p))
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, DNSName: name,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return leaf
}

func TestIssueVerifies(t *testing.T) {
	h := newHarness(t, testSeed())
	now := h.clock.Now()
	var c fetch.Cert
	h.do("POST", "/v1/pki/issue/svc-mtls", rootTok, map[string]any{
		"common_name": "billing.svc.cluster.local", "alt_names": []string{"billing-api.svc.cluster.local", "localhost"},
		"ip_sans": []string{"127.0.0.1", "::1"}, "ttl": "72h",
	}).want(t, 200).decode(t, &c)
	if len(c.CAChain) != 2 {
		t.Fatalf("chain of %d", len(c.CAChain))
	}
	leaf := verify(t, &c, now, "billing-api.svc.cluster.local")
	if leaf.Subject.CommonName != "billing.svc.cluster.local" ||
		strings.Join(leaf.DNSNames, ",") != "billing.svc.cluster.local,billing-api.svc.cluster.local,localhost" ||
		len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("names: cn %q dns %v ip %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(now.Add(72*time.Hour)) || !c.ExpiresAt.Equal(leaf.NotAfter) ||
		!leaf.NotBefore.Equal(now.Add(-30*time.Second)) || !c.IssuedAt.Equal(now) {
		t.Fatalf("validity %v..%v expires_at %v", leaf.NotBefore, leaf.NotAfter, c.ExpiresAt)
	}
	if !regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2})+$`).MatchString(c.SerialNumber) {
		t.Fatalf("serial %q", c.SerialNumber)
	}
	kb, _ := pem.Decode([]byte(c.PrivateKeyPEM))
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM type")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() || !ek.PublicKey.Equal(leaf.PublicKey) {
		t.Fatalf("key %T does not match", key)
	}
	// The issuing CA is the one served under its id and as "default".
	for _, id := range []string{c.CAID, "default"} {
		r := h.do("GET", "/v1/pki/cas/"+id+"/pem", rootTok, nil).want(t, 200)
		if string(r.body) != c.CAChain[0] || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("CA %s: %q %q", id, r.header.Get("Content-Type"), r.body)
		}
	}
	h.do("GET", "/v1/pki/cas/nope/pem", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	// A bare allowed domain, and a ttl above the role's max is capped.
	h.do("POST", "/v1/pki/issue/svc-mtls", rootTok, map[string]any{"common_name": "localhost", "ttl": "10000h"}).
		want(t, 200).decode(t, &c)
	if leaf := verify(t, &c, now, "localhost"); !leaf.NotAfter.Equal(now.Add(720 * time.Hour)) {
		t.Fatalf("not capped: %v", leaf.NotAfter)
	}
}

func TestIssueRefusals(t *testing.T) {
	h := newHarness(t, testSeed())
	cases := []struct {
		role string
		body map[string]any
		msg  string
	}{
		{"svc-mtls", map[string]any{"common_name": "evil.example.com"}, `"evil.example.com" is not allowed`},
		{"svc-mtls", map[string]any{"common_name": "a.svc.cluster.local", "alt_names": []string{"x.localdomain"}}, `alt_names[0]: "x.localdomain"`},
		{"svc-mtls", map[string]any{"common_name": "a.svc.cluster.local", "ip_sans": []string{"1.2.3.999"}}, `ip_sans[0]: "1.2.3.999"`},
		{"svc-mtls", map[string]any{"common_name": "bad_name.svc.cluster.local"}, "not a valid DNS name"},
		{"svc-mtls", map[string]any{"alt_names": []string{"a.localhost"}}, "common_name: required"},
		{"no-ip-san", map[string]any{"common_name": "example.test", "ip_sans": []string{"10.0.0.1"}}, "does not allow IP SANs"},
		{"no-ip-san", map[string]any{"common_name": "a.example.test"}, "not allowed"},
		{"svc-mtls", map[string]any{"common_name": "a.svc.cluster.local", "ttl": "soon"}, "ttl"},
	}
	for _, tc := range cases {
		e := h.do("POST", "/v1/pki/issue/"+tc.role, rootTok, tc.body).wantErr(t, 400, fetch.CodeValidation)
		if !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%v: message %q, want %q", tc.body, e.Message, tc.msg)
		}
	}
	h.do("POST", "/v1/pki/issue/nope", rootTok, map[string]any{"common_name": "x"}).wantErr(t, 404, fetch.CodeNotFound)
}

func TestIssueRSA(t *testing.T) {
	h := newHarness(t, testSeed())
	var c fetch.Cert
	h.do("POST", "/v1/pki/issue/rsa-role", rootTok, map[string]any{"common_name": "example.test"}).
		want(t, 200).decode(t, &c)
	leaf := verify(t, &c, h.clock.Now(), "example.test")
	if pk, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || pk.N.BitLen() != 2048 {
		t.Fatalf("public key %T", leaf.PublicKey)
	}
	// ttl defaults to min(72h, max_ttl 1h).
	if !leaf.NotAfter.Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("NotAfter %v", leaf.NotAfter)
	}
}
