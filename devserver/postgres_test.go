package devserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/internal/pgtest"
)

// pgLogin connects with a lease's connection_url and returns current_user.
func pgLogin(ctx context.Context, connURL string) (string, error) {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var user string
	err = conn.QueryRow(ctx, "SELECT current_user").Scan(&user)
	return user, err
}

// roleExists asks PostgreSQL, as the superuser, whether a role exists.
func roleExists(t *testing.T, ctx context.Context, admin, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// waitFor polls cond until it holds or the generous limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pgEnv is what the postgres engine's subtests share.
type pgEnv struct {
	h     *harness
	admin string // superuser URL
	ctx   context.Context
}

func TestPostgresEngine(t *testing.T) {
	pg := pgtest.Shared(t)
	seed := &Seed{RootToken: rootTok, Dynamic: map[string]SeedEngine{"pg": {
		Kind: "postgres", ConnectionURL: pg.URL(),
		Roles: map[string]SeedEngineRole{
			"app":   {TTL: "1h", MaxTTL: "4h"},
			"short": {TTL: "2s", MaxTTL: "2s"},
			"design": {TTL: "1h", MaxTTL: "4h", CreationStatements: []string{
				`CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'`}},
		},
	}}}
	s, err := New(Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	h := serve(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	steps := []struct {
		name string
		run  func(*testing.T, pgEnv)
	}{
		{"generate, log in, revoke", pgLoginRevoke},
		{"renew moves VALID UNTIL", pgRenew},
		{"expiry drops the role", pgExpiry},
		{"close drops what is left", pgClose},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			sub := *h
			sub.t = t
			st.run(t, pgEnv{h: &sub, admin: pg.URL(), ctx: ctx})
		})
	}
}

func pgLoginRevoke(t *testing.T, e pgEnv) {
	l := e.h.generate("pg/creds/app", rootTok, nil)
	user, connURL := str(t, l.Data["username"]), str(t, l.Data["connection_url"])
	if !strings.HasPrefix(connURL, "postgres://"+user+":") || strings.Contains(connURL, "postgres@") {
		t.Fatalf("connection_url %q", strings.ReplaceAll(connURL, str(t, l.Data["password"]), "***"))
	}
	if got, err := pgLogin(e.ctx, connURL); err != nil || got != user {
		t.Fatalf("login as the lease: %q %v", got, err)
	}
	e.h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 204)
	if _, err := pgLogin(e.ctx, connURL); err == nil {
		t.Fatal("revoked credential still logs in")
	}
	if roleExists(t, e.ctx, e.admin, user) {
		t.Fatal("role still exists after revoke")
	}
}

func pgRenew(t *testing.T, e pgEnv) {
	l := e.h.generate("pg/creds/design", rootTok, map[string]string{"ttl": "10m"})
	var got fetch.Lease
	e.h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, map[string]string{"increment": "2h"}).
		want(t, 200).decode(t, &got)
	conn, err := pgx.Connect(e.ctx, e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(e.ctx)
	var until time.Time
	user := str(t, l.Data["username"])
	if err := conn.QueryRow(e.ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", user).Scan(&until); err != nil {
		t.Fatal(err)
	}
	if d := until.Sub(got.ExpiresAt); d > time.Second || d < -time.Second {
		t.Fatalf("VALID UNTIL %v, lease expires %v", until, got.ExpiresAt)
	}
}

func pgExpiry(t *testing.T, e pgEnv) {
	l := e.h.generate("pg/creds/short", rootTok, nil)
	user, connURL := str(t, l.Data["username"]), str(t, l.Data["connection_url"])
	if l.LeaseDuration != 2 {
		t.Fatalf("lease %+v", l)
	}
	if _, err := pgLogin(e.ctx, connURL); err != nil {
		t.Fatalf("fresh short lease: %v", err)
	}
	waitFor(t, 15*time.Second, "role dropped after expiry", func() bool { return !roleExists(t, e.ctx, e.admin, user) })
	if _, err := pgLogin(e.ctx, connURL); err == nil {
		t.Fatal("expired credential still logs in")
	}
	e.h.do("GET", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
}

func pgClose(t *testing.T, e pgEnv) {
	l := e.h.generate("pg/creds/app", rootTok, nil)
	user := str(t, l.Data["username"])
	if err := e.h.s.Close(); err != nil {
		t.Fatal(err)
	}
	if roleExists(t, e.ctx, e.admin, user) {
		t.Fatal("role survives Close")
	}
}

func TestPostgresErrorsHideSecrets(t *testing.T) {
	pg := pgtest.Shared(t)
	seed := &Seed{RootToken: rootTok, Dynamic: map[string]SeedEngine{"pg": {
		Kind: "postgres", ConnectionURL: pg.URL(),
		Roles: map[string]SeedEngineRole{"bad": {CreationStatements: []string{
			`CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' BOGUS '{{password}}'`}}},
	}}}
	s, err := New(Options{Seed: seed}) // real time: VALID UNTIL must lie ahead
	if err != nil {
		t.Fatal(err)
	}
	h := serve(t, s)
	e := h.do("POST", "/v1/dynamic/pg/creds/bad", rootTok, nil).wantErr(t, 500, fetch.CodeInternal)
	if !strings.Contains(e.Message, "SQLSTATE") || !strings.Contains(e.Message, "statement 1") {
		t.Fatalf("message %q", e.Message)
	}
	t.Logf("message: %s", e.Message)
	if strings.Contains(e.Message, "PASSWORD '") {
		t.Fatalf("message quotes the statement: %q", e.Message)
	}
}
