package devserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// TLSOptions is how the dev server serves HTTPS (dev-server --tls).
type TLSOptions struct {
	// CertFile and KeyFile are a PEM certificate (with its chain) and key to
	// serve; both empty: a certificate from the dev CA (see ServerTLS).
	CertFile, KeyFile string
	// ClientCAFile, when set, is a PEM bundle of CAs: the handshake then
	// requires a client certificate signed by one of them.
	ClientCAFile string
	// Hosts are extra names or addresses the generated certificate is valid
	// for, besides 127.0.0.1, ::1 and localhost.
	Hosts []string
}

// serverCertLife is the life of a generated server certificate: longer than
// any dev session, short enough that an old CA file is not trusted forever.
const serverCertLife = 90 * 24 * time.Hour

// ServerTLS returns the TLS configuration of an HTTPS dev server. Without
// a certificate file it issues one from the dev CA (the intermediate of
// the PKI engine; the root is CAPEM) for 127.0.0.1, ::1, localhost and
// o.Hosts; with --data the CA persists, so a CA file written once stays
// valid across restarts.
func (s *Server) ServerTLS(o TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case (o.CertFile == "") != (o.KeyFile == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case o.CertFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	default:
		cert, err := s.pki.serverCert(o.Hosts, s.now())
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	if o.ClientCAFile != "" {
		data, err := readBoundedFile(o.ClientCAFile, 8<<20)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--tls-client-ca: %s holds no PEM certificate", o.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// CAPEM is the dev CA's root certificate in PEM: what a client trusts for a
// generated server certificate, and for certificates of the PKI engine.
func (s *Server) CAPEM() string { return s.pki.root.pem }

// serverCert issues a P-256 server certificate from the issuing CA.
func (p *pkiState) serverCert(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "scaivault-run dev server"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour).Truncate(time.Second),
		NotAfter:     now.Add(serverCertLife).Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(p.issuer.cert.NotAfter) {
		tmpl.NotAfter = p.issuer.cert.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.issuer.cert, key.Public(), p.issuer.key)
	if err != nil {
		return nil, fmt.Errorf("issue the server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, p.issuer.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// WriteCAFile writes the dev CA's root certificate to name (0644: it is
// public), by a rename, so that a client never reads half of it.
//
// The temporary file has an unpredictable name (another user of a shared
// /tmp cannot plant a link there).
func (s *Server) WriteCAFile(name string) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("--tls-ca-out: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(s.CAPEM())
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--tls-ca-out: %w", err)
	}
	return nil
}

// readBoundedFile reads a file of at most limit bytes.
func readBoundedFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, limit>>20)
	}
	return data, nil
}
