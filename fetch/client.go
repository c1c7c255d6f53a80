package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotModified is returned by Read when ReadOptions.IfNoneMatch equals the
// version the server would return (HTTP 304).
var ErrNotModified = errors.New("not modified")

// ErrClientClosed is returned by calls made after Close, and by an events
// stream that Close ended.
var ErrClientClosed = errors.New("scaivault client closed")

// DefaultRequestTimeout bounds each attempt of a request (not the events
// stream) when Config.RequestTimeout is zero.
const DefaultRequestTimeout = 30 * time.Second

// Config configures a Client. The zero value of each field is its documented
// default.
type Config struct {
	BaseURL      string // SCAIVAULT_BASE_URL
	Token        string // SCAIVAULT_TOKEN; wins over client credentials
	TokenFile    string // read the token from this file; re-read when it changes
	ClientID     string // SCAIKEY_CLIENT_ID
	ClientSecret string // SCAIKEY_CLIENT_SECRET
	TokenURL     string // SCAIKEY_TOKEN_URL; default {BaseURL}/v1/auth/token

	TLS TLSConfig // SCAIVAULT_CACERT, SCAIVAULT_CLIENT_CERT, ...; not with HTTPClient

	HTTPClient     *http.Client  // default: one pooled client with explicit timeouts
	RequestTimeout time.Duration // per attempt; default 30s
	Retry          RetryPolicy
	Logger         *slog.Logger // default: discard
	UserAgent      string       // default: "scaivault-run/" and the module version
	// Observer, when set, is told of every HTTP attempt to the ScaiVault
	// API (see ResponseObserver); clients derived with WithRetry tell it
	// too.
	Observer ResponseObserver
	// Outage: when trouble with the server is logged, once LogOutages is
	// called (health.go).
	Outage OutagePolicy
}

// ResponseObserver is told of each HTTP attempt to the ScaiVault API (the
// token endpoint of client credentials aside), on the goroutine that made
// it: the method, the route's template ("/v1/secrets/{path}": never the
// path itself, which may come from a secret) and the status code, 0 when
// no answer came. It must be fast and must not block (a metrics counter).
type ResponseObserver interface {
	ObserveResponse(method, route string, status int)
}

// RetryPolicy is the backoff of scaivault-api.md. Zero fields take the
// defaults: 3 retries, first wait 200ms, multiplier 1.5, cap 30s.
type RetryPolicy struct {
	MaxRetries int // -1: no retries
	Initial    time.Duration
	Multiplier float64
	Max        time.Duration
}

// Environment variables read by ConfigFromEnv.
const (
	EnvBaseURL      = "SCAIVAULT_BASE_URL"
	EnvToken        = "SCAIVAULT_TOKEN"
	EnvTokenFile    = "SCAIVAULT_TOKEN_FILE"
	EnvClientID     = "SCAIKEY_CLIENT_ID"
	EnvClientSecret = "SCAIKEY_CLIENT_SECRET"
	EnvTokenURL     = "SCAIKEY_TOKEN_URL"
)

// ConfigFromEnv reads the server variables of scaivault-api.md,
// SCAIVAULT_TOKEN_FILE and the TLS variables. Values are trimmed of
// surrounding white space. SCAIVAULT_TLS_SKIP_VERIFY is on for what
// strconv.ParseBool takes as true; any other value is an error, since
// reading a misspelt "ture" as false would be as surprising as reading it
// as true. A nil getenv reads the process environment.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var skip bool
	if v := get(EnvTLSSkipVerify); v != "" {
		var err error
		if skip, err = strconv.ParseBool(v); err != nil {
			return Config{}, fmt.Errorf("%s=%q: want true or false", EnvTLSSkipVerify, v)
		}
	}
	return Config{
		TLS: TLSConfig{
			CACert: get(EnvCACert), CAPath: get(EnvCAPath),
			ClientCert: get(EnvClientCert), ClientKey: get(EnvClientKey),
			ServerName: get(EnvTLSServerName), SkipVerify: skip,
		},
		BaseURL:      get(EnvBaseURL),
		Token:        get(EnvToken),
		TokenFile:    get(EnvTokenFile),
		ClientID:     get(EnvClientID),
		ClientSecret: get(EnvClientSecret),
		TokenURL:     get(EnvTokenURL),
	}, nil
}

// Client talks to one ScaiVault server. It is safe for concurrent use.
// Clients derived from it (WithRetry) share its HTTP client, its
// credential and its 429 gate.
type Client struct {
	baseURL    string // scheme://host[/path], no trailing slash
	hc         *http.Client
	ownHC      bool // hc was made by New (not handed in, not derived)
	auth       authSource
	tls        *clientTLS  // nil: no TLS settings
	retry      RetryPolicy // defaults filled in
	reqTimeout time.Duration
	log        *slog.Logger
	userAgent  string
	observer   ResponseObserver
	// gate is shared by every client derived from the one New made: a
	// 429's Retry-After holds back the whole process (DESIGN.md), the
	// start-up, the watcher and the revocations on exit alike.
	gate *rateGate
	// orders serializes ACME order look-ups per account and domain set
	// (shared like gate), so that two references to one set never both
	// create an order.
	orders *orderLocks
	// health is the server's health as every request sees it (health.go),
	// shared like gate.
	health *health

	closeOnce sync.Once
	closed    atomic.Bool
	closeCtx  context.Context // ends when Close is called
	closeFn   context.CancelFunc
}

// New returns a client; it validates the configuration but makes no request.
// A token file is read here. Token or TokenFile (setting both is an error:
// two tokens leave no way to tell which was meant) wins over ClientID with
// ClientSecret.
func New(cfg Config) (*Client, error) {
	if err := cfg.Retry.validate(); err != nil {
		return nil, err
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("negative request timeout %s", cfg.RequestTimeout)
	}
	base, err := parseServerURL(EnvBaseURL, cfg.BaseURL, false)
	if err != nil {
		return nil, err
	}
	c := &Client{
		baseURL:    base,
		hc:         cfg.HTTPClient,
		retry:      cfg.Retry.withDefaults(),
		reqTimeout: cfg.RequestTimeout,
		log:        cfg.Logger,
		userAgent:  cfg.UserAgent,
		observer:   cfg.Observer,
		gate:       &rateGate{},
		orders:     &orderLocks{},
	}
	if c.reqTimeout == 0 {
		c.reqTimeout = DefaultRequestTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.userAgent == "" {
		c.userAgent = "scaivault-run/" + moduleVersion()
	}
	c.health = newHealth(cfg.Outage, c.log)
	if !cfg.TLS.isZero() {
		if cfg.HTTPClient != nil {
			return nil, errors.New("TLS settings and an HTTP client of the caller's: set TLS on that client instead")
		}
		if c.tls, err = newClientTLS(cfg.TLS, c.log); err != nil {
			return nil, err
		}
	}
	if c.hc == nil {
		c.hc, c.ownHC = newHTTPClient(c.reqTimeout, c.tls), true
	}
	if c.auth, err = c.newAuth(cfg); err != nil {
		return nil, err
	}
	if cc, ok := c.auth.(*clientCreds); ok {
		cc.health = c.health
	}
	c.closeCtx, c.closeFn = context.WithCancel(context.Background())
	c.log.Debug("scaivault client ready", "base_url", c.baseURL, "auth", c.auth.describe())
	return c, nil
}

// WithRetry returns a client that is c with another retry policy (zero
// fields take the defaults, as in Config). It shares c's HTTP client and
// connections, its credential (one token, refreshed once for both) and its
// 429 gate, so a Retry-After seen by either holds back both. It has its own
// Close: closing it ends its event streams and its later calls, and leaves
// what it shares to c; closing c leaves it working (c's Close only drops
// idle connections). A client derived from a closed client is closed.
func (c *Client) WithRetry(p RetryPolicy) (*Client, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	d := &Client{
		baseURL: c.baseURL, hc: c.hc, auth: c.auth, tls: c.tls, gate: c.gate, orders: c.orders, health: c.health,
		retry: p.withDefaults(), reqTimeout: c.reqTimeout, log: c.log, userAgent: c.userAgent,
		observer: c.observer,
	}
	d.closeCtx, d.closeFn = context.WithCancel(context.Background())
	if c.isClosed() {
		d.Close()
	}
	return d, nil
}

func (c *Client) newAuth(cfg Config) (authSource, error) {
	switch {
	case cfg.Token != "" && cfg.TokenFile != "":
		return nil, fmt.Errorf("both %s and %s are set: use one", EnvToken, EnvTokenFile)
	case cfg.Token != "":
		if err := checkToken(cfg.Token); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvToken, err)
		}
		return staticToken(cfg.Token), nil
	case cfg.TokenFile != "":
		return newTokenFile(cfg.TokenFile, c.log)
	case cfg.ClientID == "" && cfg.ClientSecret == "":
		return nil, fmt.Errorf("no credentials: set %s, %s, or %s and %s",
			EnvToken, EnvTokenFile, EnvClientID, EnvClientSecret)
	case cfg.ClientID == "":
		return nil, fmt.Errorf("%s is set but %s is not", EnvClientSecret, EnvClientID)
	case cfg.ClientSecret == "":
		return nil, fmt.Errorf("%s is set but %s is not", EnvClientID, EnvClientSecret)
	}
	tokenURL := c.baseURL + "/v1/auth/token"
	if cfg.TokenURL != "" {
		var err error
		if tokenURL, err = parseServerURL(EnvTokenURL, cfg.TokenURL, true); err != nil {
			return nil, err
		}
	}
	hc, ct := c.hc, c.tls
	if ct != nil && ct.cfg.ServerName != "" && !sameHost(tokenURL, c.baseURL) && c.ownHC {
		// SCAIVAULT_TLS_SERVER_NAME names ScaiVault's certificate, not
		// that of a token endpoint elsewhere.
		ct = ct.withoutServerName()
		hc = newHTTPClient(c.reqTimeout, ct)
	}
	return newClientCreds(cfg.ClientID, cfg.ClientSecret, tokenURL, hc, ct, c.reqTimeout, c.log), nil
}

// parseServerURL checks a server URL: http or https with a host, https
// unless the host is loopback, no user info. The error names the variable
// and never quotes the URL (it could hold a password).
func parseServerURL(name, raw string, allowQuery bool) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("no server: set %s", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("%s: invalid URL: %v", name, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%s: scheme %q (want https, or http for a loopback host)", name, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%s: no host", name)
	case u.User != nil:
		return "", fmt.Errorf("%s: the URL must not carry user info", name)
	case u.Fragment != "" || (!allowQuery && u.RawQuery != ""):
		return "", fmt.Errorf("%s: the URL must not carry a query or fragment", name)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "", fmt.Errorf("%s: https is required for host %q (http is allowed only for loopback)", name, u.Hostname())
	}
	if allowQuery {
		return u.String(), nil
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// sameHost reports whether two URLs name the same host and port.
func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host)
}

func isLoopbackHost(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// moduleVersion is the main module's version from the build info, "dev"
// when there is none (go run, tests).
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Close ends running event streams (they return ErrClientClosed), makes
// later calls fail with ErrClientClosed and releases idle connections of
// the client's own HTTP client. Requests already in flight finish. Tokens
// are only ever refreshed on demand, so nothing else keeps running.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeFn()
		if c.ownHC {
			c.hc.CloseIdleConnections()
		}
	})
}

func (c *Client) isClosed() bool { return c.closed.Load() }

// ReloadToken re-reads Config.TokenFile now, for a file watcher; for other
// credentials it does nothing. On failure the previous token stays in use.
func (c *Client) ReloadToken() error {
	if f, ok := c.auth.(*tokenFile); ok {
		return f.reload()
	}
	return nil
}

// Whoami returns the identity behind the client's credential.
func (c *Client) Whoami(ctx context.Context) (*Whoami, error) {
	var w Whoami
	if err := c.getJSON(ctx, &call{method: http.MethodGet, route: "/v1/auth/whoami", pattern: "/v1/auth/whoami"}, &w); err != nil {
		return nil, fmt.Errorf("whoami: %w", err)
	}
	return &w, nil
}

// getJSON sends a call and decodes its JSON answer into out.
func (c *Client) getJSON(ctx context.Context, cl *call, out any) error {
	resp, err := c.send(ctx, cl)
	if err != nil {
		return err
	}
	return decodeJSON(resp.body, out)
}
