package fetch

// API SKELETON: the client helper replaces every body; signatures are the
// contract the rest of the code compiles against. Do not change them without
// telling the integrator.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

var errTODO = errors.New("not implemented")

// ErrNotModified is returned by Read when ReadOptions.IfNoneMatch equals the
// version the server would return (HTTP 304).
var ErrNotModified = errors.New("not modified")

// Config configures a Client. The zero value of each field is its documented
// default.
type Config struct {
	BaseURL      string // SCAIVAULT_BASE_URL
	Token        string // SCAIVAULT_TOKEN; wins over client credentials
	TokenFile    string // read the token from this file; re-read when it changes
	ClientID     string // SCAIKEY_CLIENT_ID
	ClientSecret string // SCAIKEY_CLIENT_SECRET
	TokenURL     string // SCAIKEY_TOKEN_URL; default {BaseURL}/v1/auth/token

	HTTPClient     *http.Client  // default: one pooled client with explicit timeouts
	RequestTimeout time.Duration // per attempt; default 30s
	Retry          RetryPolicy
	Logger         *slog.Logger // default: discard
	UserAgent      string
}

// RetryPolicy is the backoff of scaivault-api.md. Zero fields take the
// defaults: 3 retries, first wait 200ms, multiplier 1.5, cap 30s.
type RetryPolicy struct {
	MaxRetries int // -1: no retries
	Initial    time.Duration
	Multiplier float64
	Max        time.Duration
}

// ConfigFromEnv reads the server variables of scaivault-api.md.
func ConfigFromEnv(getenv func(string) string) Config { return Config{} }

// Client talks to one ScaiVault server. It is safe for concurrent use.
type Client struct{}

// New returns a client; it validates the configuration but makes no request.
func New(cfg Config) (*Client, error) { return nil, errTODO }

// Close releases idle connections and stops token refreshes.
func (c *Client) Close() {}

// ReadOptions selects a version and makes a read conditional.
type ReadOptions struct {
	Version     int // 0: current
	IfNoneMatch int // 0: unconditional; else ErrNotModified when unchanged
}

func (c *Client) Read(ctx context.Context, path string, opt ReadOptions) (*Secret, error) {
	return nil, errTODO
}

// BatchRead reads paths in chunks of at most 100, chunks in parallel.
// Per-path failures are in errs (as *APIError); err is for the call itself.
func (c *Client) BatchRead(ctx context.Context, paths []string) (secrets map[string]*Secret, errs map[string]error, err error) {
	return nil, nil, errTODO
}

// List returns every entry under prefix, following all pages.
func (c *Client) List(ctx context.Context, prefix string) ([]ListEntry, error) { return nil, errTODO }

// ListPage returns one page; limit 0 is the server default.
func (c *Client) ListPage(ctx context.Context, prefix string, limit int, cursor string) (*ListPage, error) {
	return nil, errTODO
}

func (c *Client) Write(ctx context.Context, path string, req WriteRequest) (*WriteResult, error) {
	return nil, errTODO
}

func (c *Client) PatchMetadata(ctx context.Context, path string, metadata map[string]any) (*Secret, error) {
	return nil, errTODO
}

func (c *Client) Delete(ctx context.Context, path string, permanent bool) error { return errTODO }

func (c *Client) Rotate(ctx context.Context, path string, req RotateRequest) (*Secret, error) {
	return nil, errTODO
}

// Generate creates a leased credential; ttl "" is the role's default.
func (c *Client) Generate(ctx context.Context, engine, role, ttl string) (*Lease, error) {
	return nil, errTODO
}

// Renew extends a lease; increment "" is the role's ttl.
func (c *Client) Renew(ctx context.Context, leaseID, increment string) (*Lease, error) {
	return nil, errTODO
}

func (c *Client) LookupLease(ctx context.Context, leaseID string) (*Lease, error) {
	return nil, errTODO
}

// Revoke revokes a lease; revoking an already-revoked lease is no error.
func (c *Client) Revoke(ctx context.Context, leaseID string) error { return errTODO }

func (c *Client) Issue(ctx context.Context, role string, req IssueRequest) (*Cert, error) {
	return nil, errTODO
}

// CAPEM returns a CA certificate; caID "default" names the default CA.
func (c *Client) CAPEM(ctx context.Context, caID string) (string, error) { return "", errTODO }

func (c *Client) Whoami(ctx context.Context) (*Whoami, error) { return nil, errTODO }

func (c *Client) RotationDue(ctx context.Context, withinHours int) ([]DueEntry, error) {
	return nil, errTODO
}

// EventsOptions selects the events stream.
type EventsOptions struct {
	Prefix string
	Since  string // resume cursor; "" starts from now
	// OnConnect, when set, is called each time the stream (re)connects.
	OnConnect func()
}

// Events follows GET /v1/events and calls handle for each event, in order,
// from this goroutine. It reconnects with backoff after a drop, resuming with
// since= the last event id. It returns ErrEventsNotSupported at once when the
// server answers 404, a permanent error (401 that cannot be refreshed, 403),
// or ctx.Err() when ctx ends.
func (c *Client) Events(ctx context.Context, opt EventsOptions, handle func(Event)) error {
	return errTODO
}
