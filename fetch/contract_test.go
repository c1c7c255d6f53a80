package fetch_test

// Contract tests: every row of scaivault-api.md through the client against
// the dev server, in process. The helpers here are shared by the other
// external tests of the package. TestMain scans every captured log line and
// error for every secret value and credential the tests came across.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/internal/leakscan"
)

// testSeed is the dev server's state for these tests. Every secret value
// and credential holds "SECRET" so that the leak scan finds it.
const testSeed = `{
  "root_token": "root-SECRET-tok-0001",
  "clients": [
    {"client_id": "app", "client_secret": "app-SECRET-0002", "token_ttl": "1h", "policies": ["app-read"]},
    {"client_id": "short", "client_secret": "short-SECRET-0003", "token_ttl": "2s", "policies": ["app-read"]}
  ],
  "policies": {"app-read": [{"path_pattern": "app/**", "permissions": ["read", "list"]}]},
  "secrets": {
    "app/db": {"data": {"password": "pw-SECRET-db-1", "username": "app"}, "secret_type": "json"},
    "app/api": {"data": {"value": "key-SECRET-api-2"}, "secret_type": "api_key",
                "rotation": {"policy_id": "rp_quarterly", "interval": "90d", "next_rotation_in": "72h"}},
    "other/x": {"data": {"k": "other-SECRET-3"}}
  },
  "dynamic": {"support-db": {"kind": "random", "roles": {
      "readonly": {"ttl": "1h", "max_ttl": "24h", "renewable": true},
      "fixed": {"ttl": "1h", "renewable": false}}}},
  "pki": {"roles": {"svc-mtls": {"allowed_domains": ["svc.cluster.local", "localhost"],
      "allow_subdomains": true, "allow_ip_sans": true, "max_ttl": "720h", "key_type": "ec", "key_bits": 256}}}
}`

// The leak scan (internal/leakscan), under the names this package's tests use.
var (
	noteSecret      = leakscan.Note
	noteErr         = leakscan.NoteErr
	noteSeedSecrets = leakscan.NoteSeed
)

type scanWriter = leakscan.Writer

func TestMain(m *testing.M) { os.Exit(leakscan.Main(m)) }

// harness is one dev server behind httptest. intercept, when set, sees
// every request first and may answer it itself (return true).
type harness struct {
	srv *devserver.Server
	hs  *httptest.Server

	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

func newHarness(t testing.TB, seedJSON string) *harness {
	t.Helper()
	if seedJSON == "" {
		seedJSON = testSeed
	}
	seed, err := devserver.ParseSeed([]byte(seedJSON), "test-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: srv}
	noteSeedSecrets(seed)
	noteSecret(srv.RootToken())
	h.hs = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		srv.Close() // ends event streams first: httptest waits for them
		h.hs.Close()
	})
	return h
}

func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		noteSecret(tok)
	}
	h.mu.Lock()
	icp := h.intercept
	h.mu.Unlock()
	if icp != nil && icp(w, r) {
		return
	}
	h.srv.Handler().ServeHTTP(w, r)
}

func (h *harness) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.intercept = f
}

// fastRetry keeps the backoff short in tests.
var fastRetry = fetch.RetryPolicy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}

// client returns a client of the root token with a short backoff, logging
// at debug level into the leak scan; mut adjusts the config.
func (h *harness) client(t testing.TB, mut func(*fetch.Config)) *fetch.Client {
	t.Helper()
	cfg := fetch.Config{
		BaseURL: h.hs.URL,
		Token:   h.srv.RootToken(),
		Retry:   fastRetry,
		Logger:  slog.New(slog.NewTextHandler(scanWriter{}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mut != nil {
		mut(&cfg)
	}
	c, err := fetch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// admin changes the server as an operator would (writes, patches,
// deletes, rotations: nothing the product's client does).
func (h *harness) admin() *devserver.Admin {
	return &devserver.Admin{BaseURL: h.hs.URL, Token: h.srv.RootToken()}
}

func asClient(id, secret string) func(*fetch.Config) {
	return func(c *fetch.Config) { c.Token, c.ClientID, c.ClientSecret = "", id, secret }
}

// mustFail checks that err matches want and notes it for the leak scan.
func mustFail(t *testing.T, err, want error) {
	t.Helper()
	noteErr(err)
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want one matching %v", err, want)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func str(t *testing.T, s *fetch.Secret, key string) string {
	t.Helper()
	raw, ok := s.Data[key]
	if !ok {
		t.Fatalf("secret %s v%d has no key %q", s.Path, s.Version, key)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	noteSecret(v)
	return v
}

func TestReadVersionsAndIfNoneMatch(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)

	s1, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Version != 1 || s1.Path != "app/db" || s1.SecretType != "json" || str(t, s1, "password") != "pw-SECRET-db-1" {
		t.Fatalf("read %+v", s1)
	}
	if _, err := h.admin().Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"password": "pw-SECRET-db-v2"}}); err != nil {
		t.Fatal(err)
	}
	old, err := c.Read(ctx, "app/db", fetch.ReadOptions{Version: 1})
	if err != nil || old.Version != 1 || str(t, old, "password") != "pw-SECRET-db-1" {
		t.Fatalf("read version 1: %+v, %v", old, err)
	}
	_, err = c.Read(ctx, "app/db", fetch.ReadOptions{IfNoneMatch: 2})
	mustFail(t, err, fetch.ErrNotModified)
	cur, err := c.Read(ctx, "app/db", fetch.ReadOptions{IfNoneMatch: 1})
	if err != nil || cur.Version != 2 {
		t.Fatalf("If-None-Match on an old version: %+v, %v", cur, err)
	}
	_, err = c.Read(ctx, "app/db", fetch.ReadOptions{Version: 1, IfNoneMatch: 1})
	mustFail(t, err, fetch.ErrNotModified)

	_, err = c.Read(ctx, "app/missing", fetch.ReadOptions{Version: 3})
	mustFail(t, err, fetch.ErrNotFound)
	var apiErr *fetch.APIError
	if !errors.As(err, &apiErr) || apiErr.RequestID == "" || apiErr.Code != fetch.CodeNotFound {
		t.Fatalf("not an APIError with a request id: %#v", err)
	}
	want := `read secret "app/missing" version 3: ` + apiErr.Error()
	if err.Error() != want || !strings.HasSuffix(want, "("+apiErr.RequestID+")") {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestPathsValidatedBeforeSending(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	before := h.srv.Requests("")
	for _, p := range []string{"", "/app/db", "app/../db", "app//db", "app/d b", "app/db/"} {
		_, err := c.Read(ctx, p, fetch.ReadOptions{})
		noteErr(err)
		if err == nil || !strings.Contains(err.Error(), "secret path") && p != "" {
			t.Errorf("Read(%q) = %v, want a path error", p, err)
		}
	}
	_, err := c.Read(ctx, "app/../db", fetch.ReadOptions{})
	if !strings.Contains(err.Error(), `segment 2: ".." is not allowed`) {
		t.Errorf("error %q does not name the segment", err)
	}
	if n := h.srv.Requests("") - before; n != 0 {
		t.Errorf("%d requests sent for invalid paths", n)
	}
	// Segments are escaped on their own: allowed characters go through.
	if _, err := h.admin().Write(ctx, "app/a-b_c.d", fetch.WriteRequest{Data: map[string]any{"v": "x"}}); err != nil {
		t.Fatal(err)
	}
	if s, err := c.Read(ctx, "app/a-b_c.d", fetch.ReadOptions{}); err != nil || s.Path != "app/a-b_c.d" {
		t.Fatalf("read back: %+v %v", s, err)
	}
}

func TestWriteCAS(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	zero, one := 0, 1
	_, err := h.admin().Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"p": "x"}, CAS: &zero})
	mustFail(t, err, fetch.ErrConflict)
	res, err := h.admin().Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"p": "x"}, CAS: &one, MaxVersions: 5,
		Metadata: map[string]any{"tags": []any{"critical"}}})
	if err != nil || res.Version != 2 || res.Path != "app/db" || res.CreatedAt.IsZero() {
		t.Fatalf("cas write: %+v, %v", res, err)
	}
	_, err = h.admin().Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"p": "y"}, CAS: &one})
	mustFail(t, err, fetch.ErrConflict)
	res, err = h.admin().Write(ctx, "app/new", fetch.WriteRequest{Data: map[string]any{"p": "x"}, SecretType: "json", CAS: &zero})
	if err != nil || res.Version != 1 {
		t.Fatalf("create only: %+v, %v", res, err)
	}
}

func TestPatchMetadata(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	s, err := h.admin().PatchMetadata(ctx, "app/db", map[string]any{"tags": []any{"critical"}, "custom": map[string]any{"owner": "team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 1 || len(s.Data) != 0 || s.Metadata["custom"].(map[string]any)["owner"] != "team-a" {
		t.Fatalf("patched %+v", s)
	}
	s, err = h.admin().PatchMetadata(ctx, "app/db", map[string]any{"custom": map[string]any{"owner": nil, "tier": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	custom := s.Metadata["custom"].(map[string]any)
	if _, has := custom["owner"]; has || custom["tier"] != "1" || s.Metadata["tags"] == nil {
		t.Errorf("merge patch gave %+v", s.Metadata)
	}
	_, err = h.admin().PatchMetadata(ctx, "app/nope", nil)
	mustFail(t, err, fetch.ErrNotFound)
}

func TestDelete(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	if err := h.admin().Delete(ctx, "app/db", false); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrNotFound)
	res, err := h.admin().Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"p": "x"}})
	if err != nil || res.Version != 2 {
		t.Fatalf("write after soft delete: %+v, %v", res, err)
	}
	if err := h.admin().Delete(ctx, "app/db", true); err != nil {
		t.Fatal(err)
	}
	res, err = h.admin().Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"p": "x"}})
	if err != nil || res.Version != 1 {
		t.Fatalf("write after permanent delete: %+v, %v", res, err)
	}
	err = h.admin().Delete(ctx, "app/gone", false)
	mustFail(t, err, fetch.ErrNotFound)
	if !strings.HasPrefix(err.Error(), `delete secret "app/gone": `) {
		t.Errorf("error %q", err)
	}
}

func bulkSeed(n int) string {
	var b strings.Builder
	b.WriteString(`{"root_token": "root-SECRET-tok-0001", "secrets": {`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"bulk/s%04d": {"data": {"v": "bulk-SECRET-%d"}}`, i, i)
	}
	b.WriteString(`, "other/y": {"data": {"v": "other-SECRET-y"}}}}`)
	return b.String()
}

func TestListAllPages(t *testing.T) {
	h := newHarness(t, bulkSeed(2100))
	c := h.client(t, nil)
	ctx := ctxT(t)
	all, err := c.List(ctx, "bulk/")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2100 {
		t.Fatalf("%d entries, want 2100", len(all))
	}
	for i, e := range all {
		if want := fmt.Sprintf("bulk/s%04d", i); e.Path != want || e.Version != 1 {
			t.Fatalf("entry %d = %+v, want %s", i, e, want)
		}
	}
	if n := h.srv.Requests("GET /v1/secrets"); n != 3 {
		t.Errorf("%d list requests, want 3 pages of 1000", n)
	}
	page, err := c.ListPage(ctx, "bulk/", 0, "")
	if err != nil || len(page.Data) != 50 || !page.HasMore || page.Cursor == nil {
		t.Fatalf("default page: %d entries, %+v", len(page.Data), err)
	}
	next, err := c.ListPage(ctx, "bulk/", 10, *page.Cursor)
	if err != nil || len(next.Data) != 10 || next.Data[0].Path != "bulk/s0050" {
		t.Fatalf("second page: %+v, %v", next, err)
	}
	last, err := c.ListPage(ctx, "", 1000, "")
	if err != nil || last.HasMore != true {
		t.Fatalf("whole store: %v", err)
	}
	end, err := c.ListPage(ctx, "other/", 5, "")
	if err != nil || end.HasMore || end.Cursor != nil || len(end.Data) != 1 {
		t.Fatalf("last page: %+v, %v", end, err)
	}
	_, err = c.ListPage(ctx, "bulk/", 10, "not-a-cursor")
	mustFail(t, err, fetch.ErrValidation)
}

func TestRotateWithGrace(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	s, err := h.admin().Rotate(ctx, "app/db", fetch.RotateRequest{Reason: "compromise",
		NewValue: map[string]any{"password": "pw-SECRET-rotated", "username": "app"}, GracePeriod: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || s.Rotation == nil || s.Rotation.PreviousVersion != 1 || s.Rotation.GracePeriodEndsAt == nil ||
		str(t, s, "password") != "pw-SECRET-rotated" {
		t.Fatalf("rotated %+v", s)
	}
	if d := time.Until(*s.Rotation.GracePeriodEndsAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("grace ends in %v", d)
	}
	if old, err := c.Read(ctx, "app/db", fetch.ReadOptions{Version: 1}); err != nil || str(t, old, "password") != "pw-SECRET-db-1" {
		t.Fatalf("previous version in grace: %v", err)
	}
	s, err = h.admin().Rotate(ctx, "app/db", fetch.RotateRequest{}) // generated value, no grace
	if err != nil || s.Version != 3 {
		t.Fatalf("rotate without grace: %+v, %v", s, err)
	}
	noteSecret(str(t, s, "password"))
	_, err = c.Read(ctx, "app/db", fetch.ReadOptions{Version: 2})
	mustFail(t, err, fetch.ErrNotFound)
	if api, err := h.admin().Rotate(ctx, "app/api", fetch.RotateRequest{}); err != nil || api.Rotation == nil || api.Rotation.NextRotationAt == nil {
		t.Fatalf("rotation with a policy: %+v, %v", api, err)
	} else {
		noteSecret(str(t, api, "value"))
	}
}
