package devserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// caCert is a CA: its certificate and signing key.
type caCert struct {
	id   string
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

// pkiState is the dev server's two-level CA: a root and the intermediate
// that issues every role's certificates ("default").
type pkiState struct {
	root, issuer *caCert
}

func newPKI(now time.Time) (*pkiState, error) {
	root, err := newCA(now, "ScaiVault Dev Root CA", 10*365*24*time.Hour, nil)
	if err != nil {
		return nil, err
	}
	issuer, err := newCA(now, "ScaiVault Dev Intermediate CA", 5*365*24*time.Hour, root)
	if err != nil {
		return nil, err
	}
	return &pkiState{root: root, issuer: issuer}, nil
}

// newCA makes a P-256 CA, self-signed when parent is nil.
func newCA(now time.Time, cn string, life time.Duration, parent *caCert) (*caCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"scaivault-run dev server"}},
		NotBefore:    now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(life).Truncate(time.Second),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	signer, signerCert := crypto.Signer(key), tmpl
	if parent != nil {
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", cn, err)
	}
	return caFromDER(der, key)
}

func caFromDER(der []byte, key crypto.Signer) (*caCert, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return &caCert{id: "ca_" + hex.EncodeToString(sum[:8]), cert: cert, key: key, pem: pemString("CERTIFICATE", der)}, nil
}

func pemString(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x01 // never zero-led: the serial keeps 16 bytes
	return new(big.Int).SetBytes(b)
}

// colonHex formats a serial as lower-case hex bytes joined by colons.
func colonHex(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func (s *Server) handleCAPEM(c *call) *apiError {
	id, aerr := c.name(0, "ca_id")
	if aerr != nil {
		return aerr
	}
	var ca *caCert
	switch id {
	case "default", s.pki.issuer.id:
		ca = s.pki.issuer
	case s.pki.root.id:
		ca = s.pki.root
	case "acme", s.acmeCA.id:
		ca = s.acmeCA
	default:
		return errNotFound("CA %s not found", id)
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write([]byte(ca.pem))
	return nil
}

func (s *Server) handleIssue(c *call) *apiError {
	roleName, aerr := c.name(0, "role")
	if aerr != nil {
		return aerr
	}
	res := "pki/" + roleName
	if !c.who.can(permPKI, res) {
		return errDenied("pki", res)
	}
	role := s.cfg.pkiRoles[roleName]
	if role == nil {
		return errNotFound("pki role %s not found", roleName)
	}
	var req fetch.IssueRequest
	if aerr := c.decode(&req, false); aerr != nil {
		return aerr
	}
	dns, ips, aerr := role.names(req)
	if aerr != nil {
		return aerr
	}
	ttl, aerr := requestDuration("ttl", req.TTL)
	if aerr != nil {
		return aerr
	}
	if ttl == 0 {
		ttl = role.ttl
	}
	cert, err := s.pki.issue(role, req.CommonName, dns, ips, min(ttl, role.maxTTL), s.now())
	if err != nil {
		return errInternal("pki role %s: issue: %v", roleName, err)
	}
	c.json(http.StatusOK, cert)
	return nil
}

// names checks the requested names against the role: the common name
// (repeated as a SAN), alt_names and ip_sans.
func (r *pkiRoleConfig) names(req fetch.IssueRequest) ([]string, []net.IP, *apiError) {
	if req.CommonName == "" {
		return nil, nil, errValidation("common_name: required")
	}
	var dns []string
	var ips []net.IP
	addIP := func(field string, ip net.IP) *apiError {
		if !r.ipSANs {
			return errValidation("%s: role %s does not allow IP SANs", field, r.name)
		}
		for _, have := range ips {
			if have.Equal(ip) {
				return nil
			}
		}
		ips = append(ips, ip)
		return nil
	}
	addName := func(field, name string) *apiError {
		if ip := net.ParseIP(name); ip != nil {
			return addIP(field, ip)
		}
		if err := r.allowName(name); err != nil {
			return errValidation("%s: %v", field, err)
		}
		name = strings.ToLower(name)
		for _, have := range dns {
			if have == name {
				return nil
			}
		}
		dns = append(dns, name)
		return nil
	}
	if aerr := addName("common_name", req.CommonName); aerr != nil {
		return nil, nil, aerr
	}
	for i, n := range req.AltNames {
		if aerr := addName(fmt.Sprintf("alt_names[%d]", i), n); aerr != nil {
			return nil, nil, aerr
		}
	}
	for i, s := range req.IPSANs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, nil, errValidation("ip_sans[%d]: %q is not an IP address", i, s)
		}
		if aerr := addIP(fmt.Sprintf("ip_sans[%d]", i), ip); aerr != nil {
			return nil, nil, aerr
		}
	}
	return dns, ips, nil
}

// allowName: an allowed domain itself, or (allow_subdomains) a name under one.
func (r *pkiRoleConfig) allowName(name string) error {
	if err := checkHostname(name); err != nil {
		return fmt.Errorf("%q is not a valid DNS name: %v", name, err)
	}
	if r.anyName {
		return nil
	}
	n := strings.ToLower(name)
	for _, d := range r.domains {
		if n == d || (r.subdomains && strings.HasSuffix(n, "."+d)) {
			return nil
		}
	}
	return fmt.Errorf("%q is not allowed by role %s", name, r.name)
}

// checkHostname accepts DNS names of letters, digits and inner hyphens.
func checkHostname(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("want 1 to 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or over-long label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label starts or ends with '-'")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed", c)
			}
		}
	}
	return nil
}

func lowerASCII(s string) string { return strings.ToLower(s) }

// issue signs a new certificate from the issuing CA; NotBefore is 30 s back
// (clock skew), NotAfter is capped at the CA's.
func (p *pkiState) issue(r *pkiRoleConfig, cn string, dns []string, ips []net.IP, ttl time.Duration, now time.Time) (*fetch.Cert, error) {
	key, err := generateKey(r.keyType, r.keyBits)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(ttl).Truncate(time.Second)
	if notAfter.After(p.issuer.cert.NotAfter) {
		notAfter = p.issuer.cert.NotAfter
	}
	usage := x509.KeyUsageDigitalSignature
	if r.keyType == "rsa" {
		usage |= x509.KeyUsageKeyEncipherment
	}
	serial := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		DNSNames: dns, IPAddresses: ips,
		NotBefore: now.Add(-30 * time.Second).Truncate(time.Second), NotAfter: notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.issuer.cert, key.Public(), p.issuer.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &fetch.Cert{
		SerialNumber: colonHex(serial), CertificatePEM: pemString("CERTIFICATE", der),
		PrivateKeyPEM: pemString("PRIVATE KEY", keyDER), CAChain: []string{p.issuer.pem, p.root.pem},
		CAID: p.issuer.id, IssuedAt: now, ExpiresAt: notAfter,
	}, nil
}

func generateKey(keyType string, bits int) (crypto.Signer, error) {
	switch keyType {
	case "rsa":
		return rsa.GenerateKey(rand.Reader, bits)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	curve := elliptic.P256()
	switch bits {
	case 384:
		curve = elliptic.P384()
	case 521:
		curve = elliptic.P521()
	}
	return ecdsa.GenerateKey(curve, rand.Reader)
}
