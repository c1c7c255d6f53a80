package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Environment variables of TLSConfig, read by ConfigFromEnv.
const (
	EnvCACert        = "SCAIVAULT_CACERT"
	EnvCAPath        = "SCAIVAULT_CAPATH"
	EnvClientCert    = "SCAIVAULT_CLIENT_CERT"
	EnvClientKey     = "SCAIVAULT_CLIENT_KEY"
	EnvTLSServerName = "SCAIVAULT_TLS_SERVER_NAME"
	EnvTLSSkipVerify = "SCAIVAULT_TLS_SKIP_VERIFY"
)

// maxPEMFile bounds what is read of a CA, certificate or key file: a real
// bundle is a few hundred KiB; a bigger file is a mistake (or a device).
const maxPEMFile = 8 << 20

// pemReadTimeout bounds reading a pipe given as a PEM file.
const pemReadTimeout = 5 * time.Second

// TLSConfig is how the client trusts the server and proves itself to it
// (DESIGN.md "Connecting to a real server"). It applies to every request of
// the client: start-up, watcher, events stream, token endpoint, revocations.
// The zero value trusts the system roots and sends no client certificate.
type TLSConfig struct {
	// CACert is a PEM bundle of CAs trusted in addition to the system roots.
	CACert string
	// CAPath is a directory of PEM files whose CAs are trusted in addition
	// to the system roots. Like OpenSSL's CApath and curl's --capath it is
	// not walked recursively; files holding no PEM certificate (a README,
	// CRLs) are skipped.
	CAPath string
	// ClientCert and ClientKey are a PEM certificate (with its chain) and
	// its private key for mTLS, set together. They are re-read when either
	// file changes; a pair that does not load (one file rewritten, the other
	// not yet) is not used: the previous pair stays until both match.
	ClientCert, ClientKey string
	// ServerName is the name verified in the server's certificate instead
	// of the URL's host (and sent as SNI).
	ServerName string
	// SkipVerify turns verification of the server's certificate off. New
	// logs a warning every time.
	SkipVerify bool
}

func (t TLSConfig) isZero() bool { return t == TLSConfig{} }

// clientTLS is a client's TLS set-up: the base configuration and, with a
// client certificate, the pair that is reloaded when its files change.
type clientTLS struct {
	cfg   TLSConfig
	base  *tls.Config
	certs *certPair // nil: no client certificate
}

// newClientTLS reads every file of t, so that a bad file is an error at
// start naming it, before any request.
func newClientTLS(t TLSConfig, log *slog.Logger) (*clientTLS, error) {
	ct := &clientTLS{cfg: t, base: &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}}
	if t.CACert != "" || t.CAPath != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			// No system roots here (a scratch image): the given CAs only.
			pool = x509.NewCertPool()
		}
		if t.CACert != "" {
			if err := addCAFile(pool, EnvCACert, t.CACert); err != nil {
				return nil, err
			}
		}
		if t.CAPath != "" {
			if err := addCADir(pool, t.CAPath); err != nil {
				return nil, err
			}
		}
		ct.base.RootCAs = pool
	}
	switch {
	case t.ClientCert != "" && t.ClientKey == "":
		return nil, fmt.Errorf("%s is set but %s is not: a client certificate needs its key", EnvClientCert, EnvClientKey)
	case t.ClientKey != "" && t.ClientCert == "":
		return nil, fmt.Errorf("%s is set but %s is not: a client key needs its certificate", EnvClientKey, EnvClientCert)
	case t.ClientCert != "":
		p, err := newCertPair(t.ClientCert, t.ClientKey, log)
		if err != nil {
			return nil, err
		}
		ct.certs = p
		if leaf := p.get().Leaf; leaf != nil && time.Now().After(leaf.NotAfter) {
			log.Warn("the client certificate has expired; the server will refuse it",
				"file", t.ClientCert, "expired_at", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if t.SkipVerify {
		ct.base.InsecureSkipVerify = true
		log.Warn("TLS verification of the ScaiVault server is off (" + EnvTLSSkipVerify + "): anyone on the path can read the token and every secret")
	}
	return ct, nil
}

// withoutServerName is ct for another host than ScaiVault's: the same
// roots and client certificate, the URL's host verified.
func (ct *clientTLS) withoutServerName() *clientTLS {
	d := *ct
	d.cfg.ServerName = ""
	d.base = ct.base.Clone()
	d.base.ServerName = ""
	return &d
}

// tlsConfig is the configuration of one transport: the base with the
// current client certificate. The certificate is sent whatever CAs the
// server says it accepts, so that a refusal is the server's, with its alert.
func (ct *clientTLS) tlsConfig() *tls.Config {
	c := ct.base.Clone()
	if ct.certs != nil {
		cert := ct.certs.get()
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

// readPEMFile reads a file named by a setting, bounded, with errors that
// name the setting and the file.
func readPEMFile(setting, name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, pathErr(err))
	}
	if fi.IsDir() {
		hint := ""
		if setting == EnvCACert {
			hint = " (for a directory of CA files use " + EnvCAPath + ")"
		}
		return nil, fmt.Errorf("%s: %s is a directory, not a PEM file%s", setting, name, hint)
	}
	// O_NONBLOCK: opening a FIFO without a writer does not hang (its read
	// then ends at once); a pipe such as --ca-cert <(cat ca.pem) still
	// works, read through the poller, within pemReadTimeout.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, pathErr(err))
	}
	defer f.Close()
	_ = f.SetReadDeadline(time.Now().Add(pemReadTimeout)) // regular files have none
	data, err := readBounded(f, maxPEMFile)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%s: %s is larger than %d MiB: not a PEM file", setting, name, maxPEMFile>>20)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", setting, name, pathErr(err))
	}
	return data, nil
}

// pathErr drops the operation from an *os.PathError: "open x: no such
// file" reads better as "x: no such file".
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// parseCerts returns the certificates of a PEM bundle; blocks of other
// types are skipped. A CERTIFICATE block that does not parse is an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
		n++
	}
}

func addCAFile(pool *x509.CertPool, setting, name string) error {
	data, err := readPEMFile(setting, name)
	if err != nil {
		return err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", setting, name, err)
	}
	if len(certs) == 0 {
		return fmt.Errorf("%s: %s holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)", setting, name)
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return nil
}

func addCADir(pool *x509.CertPool, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, syscall.ENOTDIR) {
			return fmt.Errorf("%s: %s is not a directory (for one CA file use %s)", EnvCAPath, dir, EnvCACert)
		}
		return fmt.Errorf("%s: %w", EnvCAPath, pathErr(err))
	}
	found := 0
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		fi, err := os.Stat(name) // follows c_rehash's symlinks
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := readPEMFile(EnvCAPath, name)
		if err != nil {
			return err
		}
		certs, err := parseCerts(data)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", EnvCAPath, name, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
		found += len(certs)
	}
	if found == 0 {
		return fmt.Errorf("%s: %s holds no file with a PEM certificate", EnvCAPath, dir)
	}
	return nil
}

// certPair is a client certificate and key loaded from two files, reloaded
// when either changes. A pair that fails to load is remembered by the
// files' state, so that it is neither retried nor warned about again until
// a file changes once more.
type certPair struct {
	certFile, keyFile string
	log               *slog.Logger

	cur atomic.Pointer[tls.Certificate]
	gen atomic.Uint64 // counts the pairs loaded: a transport built on an older one is stale

	mu                sync.Mutex
	certInfo, keyInfo os.FileInfo // of the pair in use
	badCert, badKey   os.FileInfo // of the last pair that did not load
}

func newCertPair(certFile, keyFile string, log *slog.Logger) (*certPair, error) {
	p := &certPair{certFile: certFile, keyFile: keyFile, log: log}
	ci, ki, err := p.stat()
	if err != nil {
		return nil, err
	}
	cert, err := p.load()
	if err != nil {
		return nil, err
	}
	p.cur.Store(cert)
	p.certInfo, p.keyInfo = ci, ki
	return p, nil
}

func (p *certPair) get() *tls.Certificate { return p.cur.Load() }

func (p *certPair) stat() (ci, ki os.FileInfo, err error) {
	if ci, err = os.Stat(p.certFile); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", EnvClientCert, pathErr(err))
	}
	if ki, err = os.Stat(p.keyFile); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", EnvClientKey, pathErr(err))
	}
	return ci, ki, nil
}

// load reads and checks the pair; errors name the file at fault and never
// quote a key.
func (p *certPair) load() (*tls.Certificate, error) {
	certPEM, err := readPEMFile(EnvClientCert, p.certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEMFile(EnvClientKey, p.keyFile)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(certPEM)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %s: %w", EnvClientCert, p.certFile, err)
	case len(certs) == 0:
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvClientCert, p.certFile)
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", EnvClientKey, p.keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("%s %s and %s %s: the key does not match the certificate", EnvClientKey, p.keyFile, EnvClientCert, p.certFile)
		}
		if strings.Contains(err.Error(), "failed to parse private key") {
			return nil, fmt.Errorf("%s: %s: not a private key of a supported type (RSA, ECDSA P-256/P-384/P-521 or Ed25519, in PKCS #8, PKCS #1 or SEC 1 PEM)", EnvClientKey, p.keyFile)
		}
		// tls's messages name what it looked for, never the contents.
		return nil, fmt.Errorf("%s: %s: %w", EnvClientKey, p.keyFile, err)
	}
	return &cert, nil
}

// checkKeyPEM gives the common mistakes with a key file their own message.
func checkKeyPEM(data []byte) error {
	var types []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			if x509.IsEncryptedPEMBlock(b) || b.Type == "ENCRYPTED PRIVATE KEY" { //nolint:staticcheck // detection only
				return errors.New("the private key is encrypted: give an unencrypted key (PKCS #8, PKCS #1 or SEC 1 PEM)")
			}
			return nil
		}
		types = append(types, b.Type)
	}
	if len(types) == 0 {
		return errors.New("holds no PEM private key (want a -----BEGIN PRIVATE KEY----- block)")
	}
	return fmt.Errorf("holds no PEM private key, only %s", strings.Join(slices.Compact(types), ", "))
}

// refresh reloads the pair when a file changed since it was loaded; it
// reports whether a new pair is in use (gen tells each transport).
func (p *certPair) refresh() bool {
	ci, ki, err := p.stat()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// A file mid-replacement (removed, not yet renamed in): keep the
		// pair in use; the next request looks again.
		return false
	}
	if !fileChanged(p.certInfo, ci) && !fileChanged(p.keyInfo, ki) {
		return false
	}
	if p.badCert != nil && !fileChanged(p.badCert, ci) && !fileChanged(p.badKey, ki) {
		return false
	}
	cert, err := p.load()
	if err != nil {
		p.badCert, p.badKey = ci, ki
		p.log.Warn("client certificate files changed but do not load as a pair; keeping the previous certificate until they do", "error", err)
		return false
	}
	p.cur.Store(cert)
	p.gen.Add(1)
	p.certInfo, p.keyInfo, p.badCert, p.badKey = ci, ki, nil, nil
	attrs := []any{"file", p.certFile}
	if cert.Leaf != nil {
		attrs = append(attrs, "expires_at", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	p.log.Info("client certificate reloaded", attrs...)
	return true
}

// certTransport is the transport of a client with a client certificate:
// each request first looks whether the certificate files changed, and when
// a new pair loads, later requests go through a new transport that
// presents it. Pooled connections (HTTP/2 multiplexes many requests over
// one) would otherwise keep presenting the old certificate for as long as
// they live. Streams already open on the old transport run on; its idle
// connections are closed.
//
// Two transports may share one pair (the token endpoint's on another host):
// each compares the pair's generation with the one it was built on, so
// that a reload seen by one request reaches both.
type certTransport struct {
	tls  *clientTLS
	make func(*tls.Config) *http.Transport
	mu   sync.Mutex
	cur  atomic.Pointer[http.Transport]
	gen  atomic.Uint64 // of the pair cur presents
}

// newCertTransport builds the first transport on the pair in use.
func newCertTransport(ct *clientTLS, mk func(*tls.Config) *http.Transport) *certTransport {
	t := &certTransport{tls: ct, make: mk}
	t.gen.Store(ct.certs.gen.Load())
	t.cur.Store(mk(ct.tlsConfig()))
	return t
}

func (t *certTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.tls.certs
	p.refresh()
	if p.gen.Load() != t.gen.Load() {
		t.mu.Lock()
		var old *http.Transport
		if g := p.gen.Load(); g != t.gen.Load() {
			old = t.cur.Swap(t.make(t.tls.tlsConfig()))
			t.gen.Store(g)
		}
		t.mu.Unlock()
		if old != nil {
			old.CloseIdleConnections()
		}
	}
	return t.cur.Load().RoundTrip(req)
}

func (t *certTransport) CloseIdleConnections() { t.cur.Load().CloseIdleConnections() }

// certSummary describes a certificate for an error: its subject, issuer
// and validity, never its key.
func certSummary(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q, issued by %q, valid %s to %s", c.Subject.String(), c.Issuer.String(),
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName+" (common name only, which is not checked)")
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}

// TLSError is a failed TLS handshake with the server, told as what failed
// and which setting fixes it. One request does not retry it (the same
// handshake gives the same answer) and the start-up gate fails on it at
// once (exit 125, see IsTLS) instead of waiting out --startup-timeout;
// while running it is an outage like any other (IsTemporary), retried at
// the watcher's pace until a renewed or rotated certificate mends it.
type TLSError struct {
	msg string
	err error
}

func (e *TLSError) Error() string   { return e.msg }
func (e *TLSError) Unwrap() error   { return e.err }
func (e *TLSError) Temporary() bool { return true }

// Alerts that a server sends about the client's certificate, as crypto/tls
// words them (its alert type is not exported).
var clientCertAlerts = []string{
	"bad certificate", "unsupported certificate", "revoked certificate", "expired certificate",
	"unknown certificate", "unknown certificate authority", "access denied", "certificate required",
}

// classifyTLS turns a handshake failure into a *TLSError; other errors
// give nil. ct is nil for a client without TLS settings.
func (ct *clientTLS) classify(err error) *TLSError {
	var (
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ie  x509.CertificateInvalidError
		rh  tls.RecordHeaderError
		op  *net.OpError
		cve *tls.CertificateVerificationError
	)
	fix := func(format string, args ...any) *TLSError {
		return &TLSError{msg: "TLS: " + fmt.Sprintf(format, args...), err: err}
	}
	switch {
	case errors.As(err, &ua):
		issuer := ""
		if ua.Cert != nil {
			issuer = fmt.Sprintf(" (%q)", ua.Cert.Issuer.String())
		}
		return fix("the server's certificate is signed by an unknown authority%s: set %s (--ca-cert) to the CA that signed it, or %s (--ca-path) to a directory of CAs",
			issuer, EnvCACert, EnvCAPath)
	case errors.As(err, &he):
		via := "the URL's host"
		if ct != nil && ct.cfg.ServerName != "" {
			via = EnvTLSServerName
		}
		names := "no name"
		if he.Certificate != nil {
			names = certNames(he.Certificate)
		}
		return fix("the server's certificate is for %s, not %q (%s): set %s (--tls-server-name) to one of its names, or use one in the server's URL",
			names, he.Host, via, EnvTLSServerName)
	case errors.As(err, &ie) && ie.Reason == x509.Expired:
		return fix("the server's certificate has expired or is not valid yet (%s): the server must renew it; if it is fresh, check this machine's clock (now %s)",
			certSummary(ie.Cert), time.Now().UTC().Format(time.RFC3339))
	case errors.As(err, &ie):
		return fix("the server's certificate is not valid: %v", ie)
	case errors.As(err, &cve):
		return fix("the server's certificate did not verify: %v", cve.Err)
	case errors.As(err, &rh), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http replaces the RecordHeaderError of an HTTP answer by its own.
		return fix("the server did not answer in TLS (a plain HTTP server? use http:// only for a loopback address)")
	case errors.As(err, &op) && op.Op == "remote error":
		said := strings.TrimPrefix(op.Err.Error(), "tls: ")
		if !slices.Contains(clientCertAlerts, said) {
			if said == "handshake failure" && (ct == nil || ct.certs == nil) {
				// OpenSSL over TLS 1.2 says this for a missing client certificate.
				return fix("the server ended the handshake: %q (it may require a client certificate: set %s and %s; or no TLS version or cipher suite in common)",
					said, EnvClientCert, EnvClientKey)
			}
			return fix("the server ended the handshake: %q (no TLS version or cipher suite in common?)", said)
		}
		if ct == nil || ct.certs == nil {
			return fix("the server requires a client certificate (it said %q): set %s and %s (--client-cert, --client-key)",
				said, EnvClientCert, EnvClientKey)
		}
		what := ct.cfg.ClientCert
		if leaf := ct.certs.get().Leaf; leaf != nil {
			what += ", " + certSummary(leaf)
		}
		return fix("the server refused the client certificate (%s; it said %q): give one it trusts in %s and %s",
			what, said, EnvClientCert, EnvClientKey)
	}
	return nil
}

// probeTimeout bounds the diagnostic handshake of probe.
const probeTimeout = 5 * time.Second

// probe finds out why an HTTP/2 connection died before its first answer.
// Over TLS 1.3 the server checks the client's certificate after the client
// has finished its handshake, so a refusal arrives as an alert on the first
// read, and Go's HTTP/2 transport reports only "client conn could not be
// established". probe makes one more handshake over HTTP/1.1 with the same
// settings, sends a HEAD request and classifies what the read gets. It
// returns nil when it learns nothing (or a proxy is in the way).
func (ct *clientTLS) probe(ctx context.Context, req *http.Request) *TLSError {
	if req.URL.Scheme != "https" {
		return nil
	}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ct != nil {
		cfg = ct.tlsConfig()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = req.URL.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "443")
	}
	d := &tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return ct.classify(err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "HEAD /v1/ HTTP/1.1\r\nHost: "+req.URL.Host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return ct.classify(err)
	}
	_, err = conn.Read(make([]byte, 1))
	if err == nil {
		return nil
	}
	return ct.classify(err)
}
