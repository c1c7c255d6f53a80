package fetch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

const (
	rtBatch    = "POST /v1/secrets/batch-read"
	rtRead     = "GET /v1/secrets/{path}"
	rtList     = "GET /v1/secrets"
	rtGenerate = "POST /v1/dynamic/{engine}/creds/{role}"
	rtRevoke   = "DELETE /v1/dynamic/leases/{lease_id}"
	rtIssue    = "POST /v1/pki/issue/{role}"
)

// resolveSeed has 150 secrets app/s000..app/s149, app/db, a secret the client
// may not read (other/secret), a random dynamic engine and a PKI role.
func resolveSeed(t *testing.T) *devserver.Seed {
	t.Helper()
	secrets := map[string]any{
		"app/db":       map[string]any{"data": map[string]any{"username": "app", "password": "pw-db-1"}, "secret_type": "json"},
		"other/secret": map[string]any{"data": map[string]any{"value": "pw-other"}, "secret_type": "json"},
	}
	for i := range 150 {
		secrets[fmt.Sprintf("app/s%03d", i)] = map[string]any{
			"data": map[string]any{"value": fmt.Sprintf("val-%03d", i), "n": i}, "secret_type": "json"}
	}
	seed := map[string]any{
		"root_token": "dev-root",
		"clients": []any{map[string]any{"client_id": "app", "client_secret": "app-secret", "token_ttl": "1h",
			"policies": []string{"app"}}},
		"policies": map[string]any{"app": []any{
			map[string]any{"path_pattern": "app/**", "permissions": []string{"read", "list", "write"}},
			map[string]any{"path_pattern": "dynamic/**", "permissions": []string{"dynamic"}},
			map[string]any{"path_pattern": "pki/**", "permissions": []string{"pki"}},
		}},
		"secrets": secrets,
		"dynamic": map[string]any{"support-db": map[string]any{"kind": "random",
			"roles": map[string]any{"readonly": map[string]any{"ttl": "1h", "max_ttl": "24h", "renewable": true}}}},
		"pki": map[string]any{"roles": map[string]any{"svc-mtls": map[string]any{
			"allowed_domains": []string{"svc.cluster.local", "localhost"}, "allow_subdomains": true,
			"allow_ip_sans": true, "max_ttl": "720h", "key_type": "ec", "key_bits": 256}}},
	}
	data, err := json.Marshal(seed)
	if err != nil {
		t.Fatal(err)
	}
	s, err := devserver.ParseSeed(data, "seed.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type resolveEnv struct {
	srv  *devserver.Server
	app  *fetch.Client // the "app" client, through its policies
	root *fetch.Client
	adm  *devserver.Admin
	logs *logBuffer
	res  *fetch.Resolver

	mu      sync.Mutex
	onLease []string // lease ids OnLease saw
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newResolveEnv(t *testing.T) *resolveEnv {
	t.Helper()
	srv, err := devserver.New(devserver.Options{Seed: resolveSeed(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	app, err := fetch.New(fetch.Config{BaseURL: hs.URL, ClientID: "app", ClientSecret: "app-secret"})
	if err != nil {
		t.Fatal(err)
	}
	root, err := fetch.New(fetch.Config{BaseURL: hs.URL, Token: srv.RootToken()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(); root.Close() })
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &resolveEnv{srv: srv, app: app, root: root, logs: logs, adm: &devserver.Admin{BaseURL: hs.URL, Token: srv.RootToken()}}
	e.res = &fetch.Resolver{Client: app, Logger: logger, Concurrency: 4, OnLease: func(_ fetch.Source, l *fetch.Lease) {
		e.mu.Lock()
		e.onLease = append(e.onLease, l.LeaseID)
		e.mu.Unlock()
	}}
	return e
}

func mustParseRef(t *testing.T, s string) fetch.Ref {
	t.Helper()
	r, ok, err := fetch.ParseRef(s)
	if err != nil || !ok {
		t.Fatalf("ParseRef(%q): %v %v", s, ok, err)
	}
	return r
}

func sourcesOf(refs []fetch.Ref) []fetch.Source {
	var out []fetch.Source
	for _, r := range refs {
		out = append(out, r.Source())
	}
	return out
}

func TestResolveBatch(t *testing.T) {
	e := newResolveEnv(t)
	ctx := context.Background()
	var refs []fetch.Ref
	for i := range 250 {
		s := fmt.Sprintf("scaivault://app/s%03d#value", i%150)
		if i >= 150 {
			s = fmt.Sprintf("scaivault://app/s%03d?as=file#n", i%150)
		}
		refs = append(refs, mustParseRef(t, s))
	}
	snap, err := e.res.Resolve(ctx, sourcesOf(refs), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Requests(rtBatch); n != 2 {
		t.Errorf("%d batch reads, want 2", n)
	}
	if n := e.srv.Requests(rtRead); n != 0 {
		t.Errorf("%d single reads, want 0", n)
	}
	if len(snap.Secrets) != 150 {
		t.Errorf("%d secrets, want 150", len(snap.Secrets))
	}
	for i, r := range refs {
		want := fmt.Sprintf("val-%03d", i%150)
		if i >= 150 {
			want = fmt.Sprint(i % 150)
		}
		if got, err := snap.Value(r); err != nil || got != want {
			t.Fatalf("Value(%s) = %q, %v; want %q", r.Raw, got, err, want)
		}
	}

	// What have holds is not fetched again; what it lacks is.
	more := append(sourcesOf(refs), mustParseRef(t, "scaivault://app/db#password").Source())
	snap2, err := e.res.Resolve(ctx, more, snap)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Requests(rtBatch); n != 3 {
		t.Errorf("%d batch reads after the second resolve, want 3", n)
	}
	if len(snap2.Secrets) != 151 || len(snap.Secrets) != 150 {
		t.Errorf("snapshots hold %d and %d secrets, want 151 and 150 (have unchanged)", len(snap2.Secrets), len(snap.Secrets))
	}
	if snap2.Secrets[refs[0].Source()] != snap.Secrets[refs[0].Source()] {
		t.Error("have's entry not carried over")
	}
}

func TestResolveVersionsListsCerts(t *testing.T) {
	e := newResolveEnv(t)
	ctx := context.Background()
	if _, err := e.adm.Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"username": "app", "password": "pw-db-2"}}); err != nil {
		t.Fatal(err)
	}
	cert := "scaivault+pki://svc-mtls?common_name=billing.svc.cluster.local&alt_names=b.svc.cluster.local,a.svc.cluster.local&ttl=72h"
	refs := []fetch.Ref{
		mustParseRef(t, "scaivault://app/db#password"),
		mustParseRef(t, "scaivault://app/db?version=1#password"),
		mustParseRef(t, "scaivault://app/db?version=1&as=file#username"),
		mustParseRef(t, cert+"#certificate_pem"),
		mustParseRef(t, "scaivault+pki://svc-mtls?ttl=3d&common_name=billing.svc.cluster.local&alt_names=a.svc.cluster.local,b.svc.cluster.local#private_key_pem"),
	}
	srcs := append(sourcesOf(refs), fetch.ListSource("app/s1"))
	snap, err := e.res.Resolve(ctx, srcs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		route string
		want  int64
	}{{rtBatch, 1}, {rtRead, 1}, {rtIssue, 1}, {rtList, 1}} {
		if n := e.srv.Requests(c.route); n != c.want {
			t.Errorf("%s: %d requests, want %d", c.route, n, c.want)
		}
	}
	for i, want := range []string{"pw-db-2", "pw-db-1", "app"} {
		if got, err := snap.Value(refs[i]); err != nil || got != want {
			t.Errorf("Value(%s) = %q, %v; want %q", refs[i].Raw, got, err, want)
		}
	}
	pem, err := snap.Value(refs[3])
	if err != nil || !strings.HasPrefix(pem, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("certificate_pem: %v", err)
	}
	if entries := snap.Lists[fetch.ListSource("app/s1")]; len(entries) != 50 {
		t.Errorf("list app/s1: %d entries, want 50", len(entries))
	}
}

func TestResolveSharedLease(t *testing.T) {
	e := newResolveEnv(t)
	ctx := context.Background()
	user := mustParseRef(t, "scaivault+dynamic://support-db/readonly?ttl=2h#username")
	pass := mustParseRef(t, "scaivault+dynamic://support-db/readonly?ttl=120m&as=file#password")
	other := mustParseRef(t, "scaivault+dynamic://support-db/readonly#username")
	snap, err := e.res.Resolve(ctx, []fetch.Source{user.Source(), pass.Source(), other.Source()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Requests(rtGenerate); n != 2 {
		t.Errorf("%d generate requests, want 2 (one per ttl)", n)
	}
	lease := snap.Leases[user.Source()]
	if lease == nil || snap.Leases[pass.Source()] != lease || snap.Leases[other.Source()] == lease {
		t.Fatalf("leases: %+v", snap.Leases)
	}
	u, err1 := snap.Value(user)
	p, err2 := snap.Value(pass)
	if err1 != nil || err2 != nil || u == "" || p == "" || u == p {
		t.Errorf("username %q, password %q: %v %v", u, p, err1, err2)
	}
	var leaseUser string
	if err := json.Unmarshal(lease.Data["username"], &leaseUser); err != nil || leaseUser != u {
		t.Errorf("username %q is not the lease's %q: %v", u, leaseUser, err)
	}

	revokeAll(t, e.root, snap)
}

func TestResolveErrors(t *testing.T) {
	e := newResolveEnv(t)
	ctx := context.Background()
	refs := []fetch.Ref{
		mustParseRef(t, "scaivault://app/db#password"),
		mustParseRef(t, "scaivault://app/missing"),
		mustParseRef(t, "scaivault://other/secret"),
		mustParseRef(t, "scaivault+dynamic://support-db/readonly#username"),
		mustParseRef(t, "scaivault+dynamic://support-db/readonly?ttl=1h#username"),
		mustParseRef(t, "scaivault+dynamic://nope/readonly#username"),
	}
	snap, err := e.res.Resolve(ctx, sourcesOf(refs), nil)
	if err == nil || snap == nil {
		t.Fatalf("snapshot %v, error %v; want an error and what was fetched", snap, err)
	}
	msg := err.Error()
	t.Logf("error:\n%s", msg)
	for _, want := range []string{`secret "app/missing": `, `secret "other/secret": `, "nope/readonly"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not name %s:\n%s", want, msg)
		}
	}
	if !errors.Is(err, fetch.ErrNotFound) || !errors.Is(err, fetch.ErrAccessDenied) {
		t.Errorf("error matches neither not found nor access denied: %v", err)
	}
	for _, secret := range []string{"pw-db-1", "pw-other"} {
		if strings.Contains(msg, secret) || strings.Contains(e.logs.String(), secret) {
			t.Errorf("a secret value in the error or logs: %s\n%s", msg, e.logs.String())
		}
	}
	if lines := strings.Count(msg, "\n") + 1; lines != 3 {
		t.Errorf("%d errors, want 3:\n%s", lines, msg)
	}

	// The two leases generated are handed back, each seen by OnLease, and
	// none is revoked: their owner decides.
	ids := generatedLeaseIDs(t, e.logs.String())
	if len(ids) != 2 || len(snap.Leases) != 2 {
		t.Fatalf("generated leases %v, in the snapshot %d; want 2", ids, len(snap.Leases))
	}
	if n := e.srv.Requests(rtRevoke); n != 0 {
		t.Errorf("%d revoke requests, want none", n)
	}
	e.mu.Lock()
	seen := slices.Clone(e.onLease)
	e.mu.Unlock()
	slices.Sort(seen)
	slices.Sort(ids)
	if !slices.Equal(seen, ids) {
		t.Errorf("OnLease saw %v, generated %v", seen, ids)
	}
	revokeAll(t, e.root, snap)

	// The same failure gives the same error.
	_, err2 := e.res.Resolve(ctx, sourcesOf(refs), nil)
	if err2 == nil || withoutRequestIDs(err2.Error()) != withoutRequestIDs(msg) {
		t.Errorf("errors differ:\n%v\n%v", err2, msg)
	}
}

// revokeAll revokes every lease of snap (the ledger's job in the product).
func revokeAll(t *testing.T, c *fetch.Client, snap *fetch.Snapshot) {
	t.Helper()
	for _, l := range snap.Leases {
		if err := c.Revoke(context.Background(), l.LeaseID); err != nil {
			t.Errorf("revoke %s: %v", l.LeaseID, err)
		}
	}
}

// generatedLeaseIDs reads the lease ids of the resolver's "generated lease" logs.
func generatedLeaseIDs(t *testing.T, logs string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec struct{ Msg, Lease string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "generated lease" {
			ids = append(ids, rec.Lease)
		}
	}
	return ids
}

// withoutRequestIDs removes "(req_…)" so that two runs' errors compare.
func withoutRequestIDs(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "(req_")
		if i < 0 {
			return b.String() + s
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			return b.String() + s[i:]
		}
		s = s[i+j+1:]
	}
}

func TestResolveCancelled(t *testing.T) {
	e := newResolveEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	snap, err := e.res.Resolve(ctx, []fetch.Source{fetch.StaticSource("app/db", 0), fetch.StaticSource("app/db", 1)}, nil)
	if err == nil || !errors.Is(err, context.Canceled) || snap == nil || len(snap.Secrets) != 0 {
		t.Errorf("cancelled resolve: %v, %v", snap, err)
	}
	if snap, err := e.res.Resolve(context.Background(), nil, nil); err != nil || snap == nil || len(snap.Secrets) != 0 {
		t.Errorf("empty resolve: %v, %v", snap, err)
	}
}

// Resolve keeps what it fetched when something else fails, revokes
// nothing, and a second call with that snapshot fetches only what failed.
func TestResolvePartial(t *testing.T) {
	e := newResolveEnv(t)
	ctx := context.Background()
	user := mustParseRef(t, "scaivault+dynamic://support-db/readonly#username")
	missing := fetch.StaticSource("app/not-there", 0)
	snap, err := e.res.Resolve(ctx, []fetch.Source{user.Source(), missing}, nil)
	if !errors.Is(err, fetch.ErrNotFound) {
		t.Fatalf("error %v, want not found", err)
	}
	lease := snap.Leases[user.Source()]
	if lease == nil {
		t.Fatalf("the lease fetched beside the failure is not in the snapshot: %+v", snap)
	}
	if n := e.srv.ActiveLeases(); n != 1 {
		t.Errorf("%d active leases, want the one kept", n)
	}
	// Again, with what the first call fetched: no second credential.
	snap, err = e.res.Resolve(ctx, []fetch.Source{user.Source(), missing}, snap)
	if !errors.Is(err, fetch.ErrNotFound) || snap.Leases[user.Source()] != lease {
		t.Fatalf("second call: %v, lease kept: %v", err, snap.Leases[user.Source()] == lease)
	}
	if n := e.srv.Requests(rtGenerate); n != 1 {
		t.Errorf("%d generate requests, want 1", n)
	}
	revokeAll(t, e.root, snap)
	if n := e.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases left after revoking", n)
	}
}
