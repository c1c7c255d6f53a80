package fetch_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/internal/tlstest"
)

// tlsHarness is a dev server over HTTPS (HTTP/2 offered, as a real
// ScaiVault behind a load balancer would) with a certificate from the dev
// CA; caFile trusts it. It records the common name of every client
// certificate it was shown and counts handshakes.
type tlsHarness struct {
	*harness
	caFile     string
	handshakes atomic.Int32

	mu  sync.Mutex
	cns []string
}

// tlsOpts adjusts the server's TLS before it starts.
type tlsOpts struct {
	clientCA *tlstest.CA      // require client certificates from it
	cert     *tls.Certificate // serve this instead of a dev CA certificate
}

func newTLSHarness(t *testing.T, o tlsOpts) *tlsHarness {
	t.Helper()
	seed, err := devserver.ParseSeed([]byte(testSeed), "test-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	noteSeedSecrets(seed)
	noteSecret(srv.RootToken())
	th := &tlsHarness{harness: &harness{srv: srv}}
	dir := t.TempDir()
	th.caFile = filepath.Join(dir, "dev-ca.pem")
	if err := srv.WriteCAFile(th.caFile); err != nil {
		t.Fatal(err)
	}
	var to devserver.TLSOptions
	if o.clientCA != nil {
		to.ClientCAFile = filepath.Join(dir, "client-ca.pem")
		tlstest.WriteFile(t, to.ClientCAFile, o.clientCA.PEM)
	}
	cfg, err := srv.ServerTLS(to)
	if err != nil {
		t.Fatal(err)
	}
	if o.cert != nil {
		cfg.Certificates = []tls.Certificate{*o.cert}
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		th.handshakes.Add(1)
		return nil, nil
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			th.mu.Lock()
			th.cns = append(th.cns, r.TLS.PeerCertificates[0].Subject.CommonName)
			th.mu.Unlock()
		}
		th.serve(w, r)
	}))
	hs.TLS, hs.EnableHTTP2 = cfg, true
	hs.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	hs.StartTLS()
	th.hs = hs
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return th
}

// lastCN is the client certificate of the latest request.
func (th *tlsHarness) lastCN() string {
	th.mu.Lock()
	defer th.mu.Unlock()
	if len(th.cns) == 0 {
		return ""
	}
	return th.cns[len(th.cns)-1]
}

// tlsClient is the harness's client with TLS settings; New's error is
// returned, not fatal. log, when non-nil, also gets the log lines.
func (th *tlsHarness) tlsClient(t *testing.T, tc fetch.TLSConfig, log io.Writer) (*fetch.Client, error) {
	t.Helper()
	var w io.Writer = scanWriter{}
	if log != nil {
		w = io.MultiWriter(scanWriter{}, log)
	}
	c, err := fetch.New(fetch.Config{
		BaseURL: th.hs.URL, Token: th.srv.RootToken(), TLS: tc, Retry: fastRetry,
		Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

func readDB(c *fetch.Client) error {
	_, err := c.Read(context.Background(), "app/db", fetch.ReadOptions{})
	return err
}

// wantTLSError checks that err is a permanent *fetch.TLSError whose
// message holds every part.
func wantTLSError(t *testing.T, err error, parts ...string) {
	t.Helper()
	var te *fetch.TLSError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want a *fetch.TLSError", err, err)
	}
	if !fetch.IsTLS(err) {
		t.Errorf("IsTLS(%v) = false: the start-up gate would retry it until the start-up timeout", err)
	}
	if !fetch.IsTemporary(err) {
		t.Errorf("IsTemporary(%v) = false: a watcher would take it for a secret lost for good", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestTLSPrivateCA(t *testing.T) {
	th := newTLSHarness(t, tlsOpts{})
	c, err := th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := readDB(c); err != nil {
		t.Fatalf("read with the dev CA trusted: %v", err)
	}

	// A directory of CA files, with files that are not certificates in it.
	dir := t.TempDir()
	ca, _ := os.ReadFile(th.caFile)
	tlstest.WriteFile(t, filepath.Join(dir, "dev.pem"), ca)
	tlstest.WriteFile(t, filepath.Join(dir, "README"), []byte("CAs of the company\n"))
	if err := os.Symlink("dev.pem", filepath.Join(dir, "abcd1234.0")); err != nil {
		t.Fatal(err)
	}
	c, err = th.tlsClient(t, fetch.TLSConfig{CAPath: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := readDB(c); err != nil {
		t.Fatalf("read with SCAIVAULT_CAPATH: %v", err)
	}
}

func TestTLSUnknownAuthorityIsNotRetried(t *testing.T) {
	th := newTLSHarness(t, tlsOpts{})
	c, err := th.tlsClient(t, fetch.TLSConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = readDB(c)
	wantTLSError(t, err, "unknown authority", "ScaiVault Dev", "set SCAIVAULT_CACERT")
	if n := th.handshakes.Load(); n != 1 {
		t.Errorf("%d handshakes, want 1: the same handshake fails the same way every time", n)
	}
}

func TestTLSServerName(t *testing.T) {
	th := newTLSHarness(t, tlsOpts{})
	c, err := th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile, ServerName: "vault.internal"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantTLSError(t, readDB(c), `not "vault.internal"`, "localhost", "127.0.0.1", "SCAIVAULT_TLS_SERVER_NAME")

	// The URL's host is 127.0.0.1; a name the certificate holds verifies.
	c, err = th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile, ServerName: "localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := readDB(c); err != nil {
		t.Fatalf("with SCAIVAULT_TLS_SERVER_NAME=localhost: %v", err)
	}
}

func TestTLSExpiredServerCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "Company CA")
	leaf := ca.Issue(t, "vault", tlstest.Options{Server: true, Hosts: []string{"127.0.0.1"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	cert := leaf.TLSCertificate(t)
	th := newTLSHarness(t, tlsOpts{cert: &cert})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	c, err := th.tlsClient(t, fetch.TLSConfig{CACert: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantTLSError(t, readDB(c), "expired", `subject "CN=vault"`, "clock")
}

func TestTLSSkipVerifyWarns(t *testing.T) {
	th := newTLSHarness(t, tlsOpts{})
	var log bytes.Buffer
	c, err := th.tlsClient(t, fetch.TLSConfig{SkipVerify: true}, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "SCAIVAULT_TLS_SKIP_VERIFY") {
		t.Errorf("no warning naming SCAIVAULT_TLS_SKIP_VERIFY at start; log:\n%s", log.String())
	}
	if err := readDB(c); err != nil {
		t.Fatalf("read without verification: %v", err)
	}
}

// writePair writes a client certificate and key for cn.
func writePair(t *testing.T, ca *tlstest.CA, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	l := ca.Issue(t, cn, tlstest.Options{})
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	tlstest.WriteFile(t, certFile, l.CertPEM)
	tlstest.WriteFile(t, keyFile, l.KeyPEM)
	return certFile, keyFile
}

func TestMTLS(t *testing.T) {
	clientCA := tlstest.NewCA(t, "Client CA")
	th := newTLSHarness(t, tlsOpts{clientCA: clientCA})
	dir := t.TempDir()

	c, err := th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantTLSError(t, readDB(c), "requires a client certificate", "SCAIVAULT_CLIENT_CERT", "SCAIVAULT_CLIENT_KEY")

	stranger := tlstest.NewCA(t, "Stranger CA")
	sc, sk := writePair(t, stranger, dir, "intruder")
	c, err = th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile, ClientCert: sc, ClientKey: sk}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantTLSError(t, readDB(c), "refused the client certificate", sc, `"CN=intruder"`, `issued by "CN=Stranger CA"`)

	cc, ck := writePair(t, clientCA, dir, "app-1")
	c, err = th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile, ClientCert: cc, ClientKey: ck}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := readDB(c); err != nil {
		t.Fatalf("read with a trusted client certificate: %v", err)
	}
	if got := th.lastCN(); got != "app-1" {
		t.Errorf("the server saw client certificate %q, want app-1", got)
	}
}

// TestMTLSClientCertificateRotation replaces the client certificate files
// under a client that has pooled HTTP/2 connections and an open events
// stream: the next request presents the new certificate; a pair that is
// half replaced (new certificate, old key) is not used.
func TestMTLSClientCertificateRotation(t *testing.T) {
	clientCA := tlstest.NewCA(t, "Client CA")
	th := newTLSHarness(t, tlsOpts{clientCA: clientCA})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := clientCA.Issue(t, "app-1", tlstest.Options{})
	tlstest.WriteFile(t, certFile, first.CertPEM)
	tlstest.WriteFile(t, keyFile, first.KeyPEM)
	var log bytes.Buffer
	var logMu sync.Mutex
	c, err := th.tlsClient(t, fetch.TLSConfig{CACert: th.caFile, ClientCert: certFile, ClientKey: keyFile}, lockedWriter{&logMu, &log})
	if err != nil {
		t.Fatal(err)
	}
	if err := readDB(c); err != nil || th.lastCN() != "app-1" {
		t.Fatalf("first read: err %v, client certificate %q", err, th.lastCN())
	}

	// An events stream stays open over the rotation.
	ctx, cancel := context.WithCancel(context.Background())
	streamDone := make(chan error, 1)
	opened := make(chan struct{})
	var once sync.Once
	go func() {
		streamDone <- c.Events(ctx, fetch.EventsOptions{OnConnect: func() { once.Do(func() { close(opened) }) }}, func(fetch.Event) {})
	}()
	select {
	case <-opened:
	case err := <-streamDone:
		t.Fatalf("events stream: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("events stream did not open")
	}

	second := clientCA.Issue(t, "app-2", tlstest.Options{})
	tlstest.WriteFile(t, certFile, second.CertPEM) // the key is still app-1's
	if err := readDB(c); err != nil {
		t.Fatalf("read with a half-replaced pair: %v", err)
	}
	if got := th.lastCN(); got != "app-1" {
		t.Errorf("with a half-replaced pair the server saw %q, want app-1 (the pair in use)", got)
	}
	logMu.Lock()
	warned := strings.Contains(log.String(), "do not load as a pair")
	logMu.Unlock()
	if !warned {
		t.Errorf("no warning about the half-replaced pair")
	}

	tlstest.WriteFile(t, keyFile, second.KeyPEM)
	if err := readDB(c); err != nil {
		t.Fatalf("read after the rotation: %v", err)
	}
	if got := th.lastCN(); got != "app-2" {
		t.Errorf("after the rotation the server saw %q, want app-2", got)
	}
	select {
	case err := <-streamDone:
		t.Fatalf("the events stream ended at the rotation: %v", err)
	default:
	}
	cancel()
	<-streamDone
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestTLSTokenEndpoint: the client-credentials exchange goes through the
// same TLS settings, and its handshake failure says the same.
func TestTLSTokenEndpoint(t *testing.T) {
	th := newTLSHarness(t, tlsOpts{})
	newCreds := func(tc fetch.TLSConfig) *fetch.Client {
		c, err := fetch.New(fetch.Config{BaseURL: th.hs.URL, ClientID: "app", ClientSecret: "app-SECRET-0002",
			TLS: tc, Retry: fastRetry, Logger: slog.New(slog.NewTextHandler(scanWriter{}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	if err := readDB(newCreds(fetch.TLSConfig{CACert: th.caFile})); err != nil {
		t.Fatalf("client credentials over TLS: %v", err)
	}
	err := readDB(newCreds(fetch.TLSConfig{}))
	wantTLSError(t, err, "get token from", "unknown authority", "set SCAIVAULT_CACERT")
}

func TestMTLSTokenEndpoint(t *testing.T) {
	clientCA := tlstest.NewCA(t, "Client CA")
	th := newTLSHarness(t, tlsOpts{clientCA: clientCA})
	certFile, keyFile := writePair(t, clientCA, t.TempDir(), "app-1")
	for _, tt := range []struct {
		name string
		tc   fetch.TLSConfig
		want string // "" for success
	}{
		{"no client certificate", fetch.TLSConfig{CACert: th.caFile}, "requires a client certificate"},
		{"client certificate", fetch.TLSConfig{CACert: th.caFile, ClientCert: certFile, ClientKey: keyFile}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := fetch.New(fetch.Config{BaseURL: th.hs.URL, ClientID: "app", ClientSecret: "app-SECRET-0002",
				TLS: tt.tc, Retry: fastRetry, Logger: slog.New(slog.NewTextHandler(scanWriter{}, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = readDB(c)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantTLSError(t, err, "get token from", tt.want)
		})
	}
}

// TestTLSBadFiles: every bad file is an error at New naming the file and
// the problem, before any request.
func TestTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "CA")
	leaf := ca.Issue(t, "app", tlstest.Options{})
	other := ca.Issue(t, "other", tlstest.Options{})
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		tlstest.WriteFile(t, p, data)
		return p
	}
	caPEM := file("ca.pem", ca.PEM)
	certPEM, keyPEM := file("app.crt", leaf.CertPEM), file("app.key", leaf.KeyPEM)
	otherKey := file("other.key", other.KeyPEM)
	empty := file("empty.pem", nil)
	garbage := file("garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
	badKey := file("bad.key", []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"))
	encKey := file("enc.key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nbm90IGEga2V5\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	emptyDir := filepath.Join(dir, "nocerts")
	if err := os.Mkdir(emptyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file("nocerts/README", []byte("nothing here"))
	missing := filepath.Join(dir, "missing.pem")
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		tc    fetch.TLSConfig
		parts []string
	}{
		{"missing CA file", fetch.TLSConfig{CACert: missing}, []string{"SCAIVAULT_CACERT", missing, "no such file"}},
		{"CA file is a directory", fetch.TLSConfig{CACert: dir}, []string{"SCAIVAULT_CACERT", dir, "is a directory", "SCAIVAULT_CAPATH"}},
		{"CA file holds no certificate", fetch.TLSConfig{CACert: empty}, []string{"SCAIVAULT_CACERT", empty, "no PEM certificate"}},
		{"CA file holds a key only", fetch.TLSConfig{CACert: keyPEM}, []string{"SCAIVAULT_CACERT", keyPEM, "no PEM certificate"}},
		{"CA file with a broken certificate", fetch.TLSConfig{CACert: garbage}, []string{"SCAIVAULT_CACERT", garbage, "certificate 1"}},
		{"CA path is a file", fetch.TLSConfig{CAPath: caPEM}, []string{"SCAIVAULT_CAPATH", caPEM, "not a directory", "SCAIVAULT_CACERT"}},
		{"CA path without certificates", fetch.TLSConfig{CAPath: emptyDir}, []string{"SCAIVAULT_CAPATH", emptyDir, "no file with a PEM certificate"}},
		{"CA path missing", fetch.TLSConfig{CAPath: missing}, []string{"SCAIVAULT_CAPATH", missing, "no such file"}},
		{"certificate without key", fetch.TLSConfig{ClientCert: certPEM}, []string{"SCAIVAULT_CLIENT_CERT is set but SCAIVAULT_CLIENT_KEY is not"}},
		{"key without certificate", fetch.TLSConfig{ClientKey: keyPEM}, []string{"SCAIVAULT_CLIENT_KEY is set but SCAIVAULT_CLIENT_CERT is not"}},
		{"missing client certificate", fetch.TLSConfig{ClientCert: missing, ClientKey: keyPEM}, []string{"SCAIVAULT_CLIENT_CERT", missing}},
		{"missing client key", fetch.TLSConfig{ClientCert: certPEM, ClientKey: missing}, []string{"SCAIVAULT_CLIENT_KEY", missing}},
		{"client certificate is a directory", fetch.TLSConfig{ClientCert: dir, ClientKey: keyPEM}, []string{"SCAIVAULT_CLIENT_CERT", dir, "is a directory"}},
		{"key does not match", fetch.TLSConfig{ClientCert: certPEM, ClientKey: otherKey}, []string{otherKey, certPEM, "does not match"}},
		{"certificate given as key", fetch.TLSConfig{ClientCert: certPEM, ClientKey: certPEM}, []string{"SCAIVAULT_CLIENT_KEY", certPEM, "no PEM private key, only CERTIFICATE"}},
		{"key given as certificate", fetch.TLSConfig{ClientCert: keyPEM, ClientKey: keyPEM}, []string{"SCAIVAULT_CLIENT_CERT", keyPEM, "no PEM certificate"}},
		{"key that does not parse", fetch.TLSConfig{ClientCert: certPEM, ClientKey: badKey}, []string{"SCAIVAULT_CLIENT_KEY", badKey, "not a private key of a supported type"}},
		{"CA file is a FIFO without a writer", fetch.TLSConfig{CACert: fifo}, []string{"SCAIVAULT_CACERT", fifo, "no PEM certificate"}},
		{"client key is a FIFO without a writer", fetch.TLSConfig{ClientCert: certPEM, ClientKey: fifo}, []string{"SCAIVAULT_CLIENT_KEY", fifo, "no PEM private key"}},
		{"encrypted key", fetch.TLSConfig{ClientCert: certPEM, ClientKey: encKey}, []string{"SCAIVAULT_CLIENT_KEY", encKey, "encrypted"}},
	}
	var requests atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer hs.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := fetch.New(fetch.Config{BaseURL: hs.URL, Token: "t", TLS: tt.tc})
			if err == nil {
				c.Close()
				t.Fatal("New accepted it")
			}
			for _, p := range tt.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not mention %q", err, p)
				}
			}
			if strings.Contains(err.Error(), "bm90") {
				t.Errorf("error %q quotes the file", err)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests made: bad files must fail before any request", n)
	}
}

func TestTLSSettingsWithOwnHTTPClient(t *testing.T) {
	_, err := fetch.New(fetch.Config{BaseURL: "https://vault.example", Token: "t",
		HTTPClient: &http.Client{}, TLS: fetch.TLSConfig{ServerName: "x"}})
	if err == nil || !strings.Contains(err.Error(), "TLS settings") {
		t.Fatalf("New with both: err = %v, want one saying the settings cannot apply", err)
	}
}

// TestTLSPlainHTTPServer: an https URL pointing at a plain HTTP server.
func TestTLSPlainHTTPServer(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, func(cfg *fetch.Config) { cfg.BaseURL = strings.Replace(h.hs.URL, "http://", "https://", 1) })
	wantTLSError(t, readDB(c), "did not answer in TLS")
}

// TestTLSHTTPToHTTPSServer: an http URL (loopback) pointing at a TLS port.
func TestTLSHTTPToHTTPSServer(t *testing.T) {
	th := newTLSHarness(t, tlsOpts{})
	c, err := fetch.New(fetch.Config{BaseURL: strings.Replace(th.hs.URL, "https://", "http://", 1), Token: "t", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := readDB(c); err == nil || !strings.Contains(err.Error(), "use https://") {
		t.Fatalf("err = %v, want a hint to use https://", err)
	}
}

// TestTLSServerNameNotForTokenEndpoint: SCAIVAULT_TLS_SERVER_NAME names
// ScaiVault's certificate; a token endpoint on another host is verified
// for its own name, with the same CAs.
func TestTLSServerNameNotForTokenEndpoint(t *testing.T) {
	ca := tlstest.NewCA(t, "Corp CA")
	vaultCert := ca.Issue(t, "vault", tlstest.Options{Server: true, Hosts: []string{"vault.internal"}}).TLSCertificate(t)
	th := newTLSHarness(t, tlsOpts{cert: &vaultCert})
	authCert := ca.Issue(t, "auth", tlstest.Options{Server: true, Hosts: []string{"127.0.0.1"}}).TLSCertificate(t)
	auth := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token": "`+th.srv.RootToken()+`", "token_type": "bearer", "expires_in": 3600}`)
	}))
	auth.TLS = &tls.Config{Certificates: []tls.Certificate{authCert}}
	auth.StartTLS()
	defer auth.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	c, err := fetch.New(fetch.Config{BaseURL: th.hs.URL, ClientID: "app", ClientSecret: "app-SECRET-0002",
		TokenURL: auth.URL + "/oauth/token", TLS: fetch.TLSConfig{CACert: caFile, ServerName: "vault.internal"},
		Retry: fastRetry, Logger: slog.New(slog.NewTextHandler(scanWriter{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := readDB(c); err != nil {
		t.Fatalf("token from another host, ScaiVault by SCAIVAULT_TLS_SERVER_NAME: %v", err)
	}
}

// TestMTLSRotationReachesTokenEndpoint: with the token endpoint on another
// host (its own transport), a rotated client certificate is presented there
// too, not only to ScaiVault.
func TestMTLSRotationReachesTokenEndpoint(t *testing.T) {
	clientCA := tlstest.NewCA(t, "Client CA")
	ca := tlstest.NewCA(t, "Corp CA")
	vaultCert := ca.Issue(t, "vault", tlstest.Options{Server: true, Hosts: []string{"vault.internal"}}).TLSCertificate(t)
	th := newTLSHarness(t, tlsOpts{clientCA: clientCA, cert: &vaultCert})
	var authMu sync.Mutex
	var authCN string
	auth := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authMu.Lock()
		authCN = r.TLS.PeerCertificates[0].Subject.CommonName
		authMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token": "`+th.srv.RootToken()+`", "token_type": "bearer", "expires_in": 3600}`)
	}))
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.Cert)
	auth.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, "auth", tlstest.Options{Server: true, Hosts: []string{"127.0.0.1"}}).TLSCertificate(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: clientPool,
	}
	auth.EnableHTTP2 = true
	auth.StartTLS()
	defer auth.Close()
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	tlstest.WriteFile(t, caFile, ca.PEM)
	first := clientCA.Issue(t, "app-1", tlstest.Options{})
	tlstest.WriteFile(t, certFile, first.CertPEM)
	tlstest.WriteFile(t, keyFile, first.KeyPEM)
	c, err := fetch.New(fetch.Config{BaseURL: th.hs.URL, ClientID: "app", ClientSecret: "app-SECRET-0002",
		TokenURL: auth.URL + "/oauth/token", Retry: fastRetry, Logger: slog.New(slog.NewTextHandler(scanWriter{}, nil)),
		TLS: fetch.TLSConfig{CACert: caFile, ServerName: "vault.internal", ClientCert: certFile, ClientKey: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := readDB(c); err != nil {
		t.Fatal(err)
	}

	second := clientCA.Issue(t, "app-2", tlstest.Options{})
	tlstest.WriteFile(t, certFile, second.CertPEM)
	tlstest.WriteFile(t, keyFile, second.KeyPEM)
	// ScaiVault rejects the token once: the client gets a new one.
	var once atomic.Bool
	th.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if once.Swap(true) {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error": {"code": "invalid_token", "message": "expired"}}`)
		return true
	})
	if err := readDB(c); err != nil {
		t.Fatal(err)
	}
	authMu.Lock()
	defer authMu.Unlock()
	if authCN != "app-2" || th.lastCN() != "app-2" {
		t.Errorf("after the rotation the token endpoint saw %q and ScaiVault %q, want app-2 at both", authCN, th.lastCN())
	}
}
