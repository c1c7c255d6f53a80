package devserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

const rootTok = "root-tok"

// fakeClock is the injectable clock: tests move time instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testSeed is the seed most tests use.
func testSeed() *Seed {
	no := false
	return &Seed{
		RootToken: rootTok,
		Clients: []SeedClient{
			{ClientID: "app", ClientSecret: "app-secret", TokenTTL: "1h", Policies: []string{"app-read"}},
			{ClientID: "writer", ClientSecret: "writer-secret", TokenTTL: "10m", Policies: []string{"app-write"}},
			{ClientID: "ops", ClientSecret: "ops-secret", Policies: []string{"ops"}},
		},
		Policies: map[string][]SeedPolicyRule{
			"app-read":  {{PathPattern: "app/**", Permissions: []string{"read", "list"}}},
			"app-write": {{PathPattern: "app/**", Permissions: []string{"read", "list", "write", "delete", "rotate"}}},
			"ops": {
				{PathPattern: "dynamic/support-db/*", Permissions: []string{"dynamic"}},
				{PathPattern: "pki/svc-mtls", Permissions: []string{"pki"}},
				{PathPattern: "app/db", Permissions: []string{"read"}},
			},
		},
		Secrets: map[string]SeedSecret{
			"app/db":      {Data: map[string]any{"username": "app", "password": "pw1"}},
			"app/api-key": {Data: map[string]any{"value": "key-1"}, SecretType: "text"},
			"app/config": {Data: map[string]any{"a": 1, "b": "two"},
				Rotation: &SeedRotation{PolicyID: "rp_1", Interval: "90d", NextRotationIn: "72h"}},
			"other/secret": {Data: map[string]any{"x": "y"}},
		},
		Dynamic: map[string]SeedEngine{"support-db": {Kind: "random", Roles: map[string]SeedEngineRole{
			"readonly": {TTL: "1h", MaxTTL: "24h"},
			"fixed":    {TTL: "1h", MaxTTL: "2h", Renewable: &no},
		}}},
		PKI: SeedPKI{Roles: map[string]SeedPKIRole{
			"svc-mtls": {AllowedDomains: []string{"svc.cluster.local", "localhost"}, AllowSubdomains: true,
				AllowIPSANs: true, MaxTTL: "720h"},
			"rsa-role":  {AllowedDomains: []string{"example.test"}, KeyType: "rsa", KeyBits: 2048, MaxTTL: "1h"},
			"no-ip-san": {AllowedDomains: []string{"example.test"}},
		}},
	}
}

type harness struct {
	t     *testing.T
	s     *Server
	ts    *httptest.Server
	clock *fakeClock
}

// newHarness serves a server with a fake clock over loopback. opts may
// change the options and the server before it serves.
func newHarness(t *testing.T, seed *Seed, opts ...func(*Options)) *harness {
	t.Helper()
	o := Options{Seed: seed}
	for _, f := range opts {
		f(&o)
	}
	clock := newFakeClock()
	s, err := newServer(o, clock.Now)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	h := serve(t, s)
	h.clock = clock
	return h
}

// serve serves a server over loopback until the test ends.
func serve(t *testing.T, s *Server) *harness {
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() { s.Close() }) // runs first: it ends event streams
	return &harness{t: t, s: s, ts: ts}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; body is JSON-encoded unless it is a string or nil.
// Every answer must carry an X-Request-Id.
func (h *harness) do(method, path, token string, body any, hdr ...string) *resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.Header.Get("X-Request-Id") == "" {
		h.t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: raw}
}

func (r *resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// wantOK fails unless the status is want.
func (r *resp) want(t *testing.T, want int) *resp {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
	return r
}

// wantErr checks an error answer: status, code, and the request id in the
// body equal to the header's.
func (r *resp) wantErr(t *testing.T, status int, code string) fetch.ErrorDetail {
	t.Helper()
	r.want(t, status)
	var body fetch.ErrorBody
	r.decode(t, &body)
	if body.Error.Code != code {
		t.Fatalf("code %q, want %q (message %q)", body.Error.Code, code, body.Error.Message)
	}
	if body.Error.RequestID == "" || body.Error.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("request_id %q, header %q", body.Error.RequestID, r.header.Get("X-Request-Id"))
	}
	if body.Error.Details == nil {
		t.Fatalf("details is null, want an object: %s", r.body)
	}
	return body.Error
}

// token gets a client token through the token endpoint.
func (h *harness) token(id, secret string) string {
	h.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	r := h.do("POST", "/v1/auth/token", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	r.want(h.t, 200)
	var tr fetch.TokenResponse
	r.decode(h.t, &tr)
	return tr.AccessToken
}

func (h *harness) read(path, token string) *fetch.Secret {
	h.t.Helper()
	var s fetch.Secret
	h.do("GET", "/v1/secrets/"+path, token, nil).want(h.t, 200).decode(h.t, &s)
	return &s
}

func (h *harness) write(path string, body any) fetch.WriteResult {
	h.t.Helper()
	var w fetch.WriteResult
	h.do("PUT", "/v1/secrets/"+path, rootTok, body).want(h.t, 200).decode(h.t, &w)
	return w
}

// str is the string in a raw JSON value.
func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a JSON string: %s", raw)
	}
	return s
}
