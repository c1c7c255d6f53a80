package pgtest

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartPasswordAuth(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatalf("superuser connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE ROLE pgtest_user LOGIN PASSWORD 'right-password'`); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.URL())
	u.User = url.UserPassword("pgtest_user", "right-password")
	c2, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("role with its password: %v", err)
	}
	c2.Close(ctx)
	u.User = url.UserPassword("pgtest_user", "wrong-password")
	if c3, err := pgx.Connect(ctx, u.String()); err == nil {
		c3.Close(ctx)
		t.Fatal("a wrong password logged in: password authentication is not enforced")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: unexpected error %v", err)
	}
	if !strings.HasPrefix(s.URL(), "postgres://postgres@127.0.0.1:") || s.Port() == 0 {
		t.Fatalf("URL %q, port %d", s.URL(), s.Port())
	}
}
