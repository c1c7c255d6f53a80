package fetch_test

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func parsePEMCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a certificate PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssueAndCAPEM(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	cert, err := c.Issue(ctx, "svc-mtls", fetch.IssueRequest{CommonName: "billing.svc.cluster.local",
		AltNames: []string{"billing-api.svc.cluster.local"}, IPSANs: []string{"127.0.0.1"}, TTL: "72h"})
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(cert.PrivateKeyPEM)
	leaf := parsePEMCert(t, cert.CertificatePEM)
	if len(cert.CAChain) < 2 || cert.SerialNumber == "" || cert.CAID == "" {
		t.Fatalf("cert %+v", cert)
	}
	if !slices.Contains(leaf.DNSNames, "billing.svc.cluster.local") || !slices.Contains(leaf.DNSNames, "billing-api.svc.cluster.local") ||
		len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if d := cert.ExpiresAt.Sub(cert.IssuedAt); d < 71*time.Hour || d > 73*time.Hour {
		t.Errorf("lifetime %v", d)
	}
	if b, _ := pem.Decode([]byte(cert.PrivateKeyPEM)); b == nil || b.Type != "PRIVATE KEY" {
		t.Error("key is not PKCS#8 PEM")
	}

	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	last := len(cert.CAChain) - 1
	roots.AddCert(parsePEMCert(t, cert.CAChain[last]))
	for _, p := range cert.CAChain[:last] {
		inter.AddCert(parsePEMCert(t, p))
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		DNSName: "billing.svc.cluster.local", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("certificate does not verify against its chain: %v", err)
	}

	def, err := c.CAPEM(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if !parsePEMCert(t, def).Equal(parsePEMCert(t, cert.CAChain[0])) {
		t.Error("the default CA is not the issuing CA")
	}
	byID, err := c.CAPEM(ctx, cert.CAID)
	if err != nil || !parsePEMCert(t, byID).Equal(parsePEMCert(t, def)) {
		t.Errorf("CA by id: %v", err)
	}
	_, err = c.CAPEM(ctx, "no-such-ca")
	mustFail(t, err, fetch.ErrNotFound)
}

func TestIssueRefusesNames(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	_, err := c.Issue(ctx, "svc-mtls", fetch.IssueRequest{CommonName: "evil.example.com"})
	mustFail(t, err, fetch.ErrValidation)
	if got := err.Error(); got[:len(`issue certificate "evil.example.com" from role "svc-mtls": `)] !=
		`issue certificate "evil.example.com" from role "svc-mtls": ` {
		t.Errorf("error %q", got)
	}
	if cert, err := c.Issue(ctx, "svc-mtls", fetch.IssueRequest{CommonName: "localhost"}); err != nil {
		t.Errorf("bare allowed domain: %v", err)
	} else {
		noteSecret(cert.PrivateKeyPEM)
	}
	_, err = c.Issue(ctx, "svc-mtls", fetch.IssueRequest{CommonName: "a.svc.cluster.local", IPSANs: []string{"not-an-ip"}})
	mustFail(t, err, fetch.ErrValidation)
	_, err = h.client(t, asClient("app", "app-SECRET-0002")).Issue(ctx, "svc-mtls", fetch.IssueRequest{CommonName: "localhost"})
	mustFail(t, err, fetch.ErrAccessDenied)
}
