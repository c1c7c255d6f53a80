package devserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The postgres engine's default statements. {{name}} is the lease's role
// name, {{password}} its password, {{expiration}} the lease's expires_at as
// a timestamp PostgreSQL takes in VALID UNTIL.
var (
	defaultCreation = []string{
		`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'`,
	}
	defaultRenew = []string{
		`ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}'`,
	}
	defaultRevocation = []string{
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}'`,
		`DROP ROLE IF EXISTS "{{name}}"`,
	}
)

// pgTime formats t for VALID UNTIL.
func pgTime(t time.Time) string {
	if t.IsZero() {
		return "infinity"
	}
	return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
}

// pgExec runs statements, with the lease's values substituted, in one
// transaction over a fresh connection. Its errors never carry the password
// (of the lease or of the admin URL).
func pgExec(ctx context.Context, connURL string, stmts []string, name, password string, exp time.Time) error {
	secrets := []string{password, urlPassword(connURL)}
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return fmt.Errorf("connect: %s", redact(err.Error(), secrets))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %s", redact(err.Error(), secrets))
	}
	defer tx.Rollback(context.Background())
	r := strings.NewReplacer("{{name}}", name, "{{password}}", password, "{{expiration}}", pgTime(exp))
	for i, st := range stmts {
		if _, err := tx.Exec(ctx, r.Replace(st)); err != nil {
			return fmt.Errorf("statement %d: %s", i+1, pgErrorText(err, secrets))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %s", redact(err.Error(), secrets))
	}
	return nil
}

// pgErrorText is the SQLSTATE and message of a server error (they may quote
// the statement, so secrets are cut out), or the error's redacted text.
func pgErrorText(err error, secrets []string) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return redact(fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code), secrets)
	}
	return redact(err.Error(), secrets)
}

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

func urlPassword(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}
