package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// refreshFraction is the share of a token's lifetime after which a client
// credentials token is exchanged anew (scaivault-api.md: about 80%).
const refreshFraction = 0.8

// authSource gives the bearer token of each attempt.
type authSource interface {
	token(ctx context.Context) (string, error)
	// renew is called after the server answered 401 with code to a request
	// that carried sent. It reports whether a different credential is now at
	// hand, so that the request is worth repeating once.
	renew(ctx context.Context, code, sent string) (bool, error)
	describe() string
}

// checkToken rejects a token that cannot travel in a header. The error never
// holds the token.
func checkToken(tok string) error {
	if tok == "" {
		return errors.New("empty token")
	}
	for _, c := range tok {
		if c < 0x21 || c == 0x7f {
			return errors.New("token contains a space or control character")
		}
	}
	return nil
}

// staticToken is SCAIVAULT_TOKEN: it cannot be refreshed, so a 401 is final.
type staticToken string

func (t staticToken) token(context.Context) (string, error)             { return string(t), nil }
func (staticToken) renew(context.Context, string, string) (bool, error) { return false, nil }
func (staticToken) describe() string                                    { return "token" }

// tokenFile reads the token from a file at start, again whenever a stat shows
// the file changed (mtime, size or inode: Kubernetes swaps a symlink), when
// ReloadToken is called, and once after a 401.
type tokenFile struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	tok  string
	info os.FileInfo
}

func newTokenFile(path string, log *slog.Logger) (*tokenFile, error) {
	f := &tokenFile{path: path, log: log}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// load reads the file; on failure the previous token stays. Callers hold mu
// (or own f exclusively).
func (f *tokenFile) load() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	data, err := readTokenFile(f.path)
	if err != nil {
		return err
	}
	tok := strings.TrimSpace(string(data))
	if err := checkToken(tok); err != nil {
		return fmt.Errorf("token file %q: %w", f.path, err)
	}
	f.tok, f.info = tok, fi
	return nil
}

// readTokenFile reads the file at path, at most maxTokenFile bytes: a
// token file that is really a device or a pipe that never ends fails
// instead of growing memory.
func readTokenFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer fh.Close()
	data, err := readBounded(fh, maxTokenFile)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, &tooLargeError{what: fmt.Sprintf("token file %q", path), limit: maxTokenFile}
	case err != nil:
		return nil, fmt.Errorf("token file: %w", err)
	}
	return data, nil
}

func (f *tokenFile) token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err == nil && fileChanged(f.info, fi) {
		if err := f.load(); err != nil {
			f.log.Warn("scaivault token file unreadable; keeping the previous token", "file", f.path, "error", err)
		} else {
			f.log.Debug("scaivault token file re-read", "file", f.path)
		}
	}
	return f.tok, nil
}

func (f *tokenFile) renew(_ context.Context, _, sent string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.load(); err != nil {
		return false, err
	}
	return f.tok != sent, nil
}

func (f *tokenFile) reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load()
}

func (f *tokenFile) describe() string { return "token file" }

func fileChanged(old, cur os.FileInfo) bool {
	return old == nil || !os.SameFile(old, cur) || !old.ModTime().Equal(cur.ModTime()) || old.Size() != cur.Size()
}

// clientCreds exchanges a client id and secret for a token at the token
// endpoint (RFC 6749 4.4), again at refreshFraction of its lifetime, and
// again when the server answers 401 invalid_token or token_expired. sem
// lets one exchange run at a time while waiters still honour their context.
type clientCreds struct {
	conf    *clientcredentials.Config
	hc      *http.Client
	tls     *clientTLS // classifies handshake failures; nil: no TLS settings
	timeout time.Duration
	log     *slog.Logger
	sem     chan struct{}
	health  *health // told of each exchange; nil: nobody

	mu        sync.Mutex
	tok       string
	refreshAt time.Time // zero: keep until the server rejects it
	expiresAt time.Time // zero: unknown
}

func newClientCreds(id, secret, tokenURL string, hc *http.Client, ct *clientTLS, timeout time.Duration, log *slog.Logger) *clientCreds {
	return &clientCreds{
		conf: &clientcredentials.Config{
			ClientID:     id,
			ClientSecret: secret,
			TokenURL:     tokenURL,
			AuthStyle:    oauth2.AuthStyleAutoDetect,
		},
		hc: hc, tls: ct, timeout: timeout, log: log,
		sem: make(chan struct{}, 1),
	}
}

func (a *clientCreds) describe() string { return "client credentials" }

// current returns the cached token, whether it is fresh (before its refresh
// time) and whether it is still usable (before its expiry).
func (a *clientCreds) current() (tok string, fresh, usable bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok == "" {
		return "", false, false
	}
	now := time.Now()
	fresh = a.refreshAt.IsZero() || now.Before(a.refreshAt)
	usable = a.expiresAt.IsZero() || now.Before(a.expiresAt)
	return a.tok, fresh, usable
}

func (a *clientCreds) acquire(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *clientCreds) release() { <-a.sem }

func (a *clientCreds) token(ctx context.Context) (string, error) {
	if tok, fresh, _ := a.current(); fresh {
		return tok, nil
	}
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer a.release()
	tok, fresh, usable := a.current()
	if fresh {
		return tok, nil // another request refreshed it meanwhile
	}
	newTok, err := a.exchange(ctx)
	if err != nil && usable {
		// Debug: the health view (health.go) warns when this lasts.
		a.log.Debug("scaivault token refresh failed; using the current token until it expires", "error", err)
		return tok, nil
	}
	return newTok, err
}

func (a *clientCreds) renew(ctx context.Context, code, sent string) (bool, error) {
	if code != CodeInvalidToken && code != CodeTokenExpired {
		return false, nil
	}
	if err := a.acquire(ctx); err != nil {
		return false, err
	}
	defer a.release()
	if tok, fresh, _ := a.current(); fresh && tok != sent {
		return true, nil // another request refreshed it meanwhile
	}
	_, err := a.exchange(ctx)
	return err == nil, err
}

// exchange gets a new token. Callers hold sem.
func (a *clientCreds) exchange(ctx context.Context) (string, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, a.hc), a.timeout)
	defer cancel()
	var handshook atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) { handshook.Store(err == nil) },
	})
	obtained := time.Now()
	t, err := a.conf.Token(tctx)
	if err != nil {
		te := a.tls.classify(err)
		if te == nil && handshook.Load() {
			if req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, a.conf.TokenURL, nil); rerr == nil {
				te = a.tls.probe(ctx, req)
			}
		}
		if te != nil {
			err = te
		}
		// The health view gets the redacted error: oauth2's quotes the
		// answer's body.
		terr := &tokenFetchError{url: a.conf.TokenURL, err: err}
		a.health.exchange(parent, terr)
		return "", terr
	}
	a.health.exchange(parent, nil)
	if err := checkToken(t.AccessToken); err != nil {
		return "", &tokenFetchError{url: a.conf.TokenURL, err: err}
	}
	life := time.Duration(t.ExpiresIn) * time.Second
	if life <= 0 && !t.Expiry.IsZero() {
		life = t.Expiry.Sub(obtained)
	}
	a.mu.Lock()
	a.tok = t.AccessToken
	a.refreshAt, a.expiresAt = refreshTimes(obtained, life)
	a.mu.Unlock()
	a.log.Debug("scaivault token obtained", "token_url", a.conf.TokenURL, "expires_in", life)
	return t.AccessToken, nil
}

// refreshTimes is when a token obtained at obtained with lifetime life is
// refreshed and when it expires; both zero when the lifetime is unknown.
func refreshTimes(obtained time.Time, life time.Duration) (refreshAt, expiresAt time.Time) {
	if life <= 0 {
		return time.Time{}, time.Time{}
	}
	return obtained.Add(time.Duration(float64(life) * refreshFraction)), obtained.Add(life)
}

// tokenFetchError is a failed exchange at the token endpoint. Its message is
// built from the structured parts of the answer (status, RFC 6749 error
// code and description), never from the body, which could hold a token;
// the cause stays reachable through Unwrap.
type tokenFetchError struct {
	url string
	err error
}

func (e *tokenFetchError) Unwrap() error { return e.err }

func (e *tokenFetchError) Error() string {
	prefix := "get token from " + e.url
	var re *oauth2.RetrieveError
	var ue *url.Error
	var te *TLSError
	switch {
	case errors.As(e.err, &te):
		return prefix + ": " + te.Error()
	case errors.As(e.err, &re):
		msg := fmt.Sprintf("%s: status %d", prefix, retrieveStatus(re))
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		return msg
	case errors.As(e.err, &ue):
		return prefix + ": " + ue.Err.Error()
	case errors.Is(e.err, context.Canceled), errors.Is(e.err, context.DeadlineExceeded):
		return prefix + ": " + e.err.Error()
	}
	return prefix + ": invalid answer from the token endpoint"
}

// Is makes a rejected credential match ErrAuthentication.
func (e *tokenFetchError) Is(target error) bool {
	var re *oauth2.RetrieveError
	if target != ErrAuthentication || !errors.As(e.err, &re) {
		return false
	}
	s := retrieveStatus(re)
	return s < 500 && s != http.StatusTooManyRequests
}

// Temporary reports whether another exchange may succeed: a connection
// error, a timeout, a 429 or a 5xx.
func (e *tokenFetchError) Temporary() bool {
	var re *oauth2.RetrieveError
	if errors.As(e.err, &re) {
		s := retrieveStatus(re)
		return s == http.StatusTooManyRequests || s >= 500
	}
	var te *TLSError
	if errors.As(e.err, &te) {
		return true // see TLSError
	}
	var ue *url.Error
	return errors.As(e.err, &ue) && !errors.Is(e.err, context.Canceled)
}

func retrieveStatus(re *oauth2.RetrieveError) int {
	if re.Response == nil {
		return 0
	}
	return re.Response.StatusCode
}
