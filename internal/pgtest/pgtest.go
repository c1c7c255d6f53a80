// Package pgtest starts a real, throw-away PostgreSQL for tests: initdb in a
// temp directory, a server on 127.0.0.1 and a free port (its unix socket
// inside the temp directory), stopped with `pg_ctl stop -m immediate`.
//
// The superuser "postgres" logs in without a password over loopback; every
// other role must give its password (scram-sha-256), so a lease's
// username/password really is checked. As root, the binaries run as the
// `postgres` system user (else `nobody`), since PostgreSQL refuses to run as
// root.
//
// When the binaries (initdb, pg_ctl, postgres under
// /usr/lib/postgresql/*/bin, or on PATH) are missing, a test is skipped
// with the reason, unless the environment variable CI is non-empty: then it
// fails, so that CI cannot pass by skipping.
//
// It must not touch any PostgreSQL it did not start, listen beyond
// loopback, or leave a server running after a test binary that uses Start
// or Main ends normally. Start and Shared are safe for concurrent use.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL.
type Server struct {
	dir  string // temp directory: data/, socket, log
	port int
	bins binaries
	cred *syscall.Credential
}

// URL is the superuser's connection URL (no password, sslmode=disable).
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Port is the TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Start starts a fresh server for one test and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(s.stop)
	return s
}

var shared struct {
	mu      sync.Mutex
	enabled bool
	srv     *Server
	err     error
}

// Main runs a test binary's tests and then stops the shared server. Call it
// from TestMain: `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }`.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.enabled = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.stop()
	}
	return code
}

// Shared is one server for the whole test binary, started on first use
// (initdb takes seconds). Without Main in TestMain it is Start(t): nothing
// would stop a shared server otherwise. Tests sharing it should use roles
// and databases of their own names.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	if !shared.enabled {
		shared.mu.Unlock()
		return Start(t)
	}
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start()
	}
	if shared.err != nil {
		missing(t, shared.err)
	}
	return shared.srv
}

// errMissing marks the absence of the PostgreSQL binaries.
var errMissing = errors.New("PostgreSQL binaries (initdb, pg_ctl, postgres) not found")

func missing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errMissing) && os.Getenv("CI") == "" {
		t.Skipf("pgtest: %v; install the Debian package postgresql to run this test", err)
	}
	t.Fatalf("pgtest: %v", err)
}

type binaries struct{ initdb, pgctl, postgres string }

// findBinaries prefers the newest /usr/lib/postgresql/*/bin, then PATH.
func findBinaries() (binaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		b := binaries{filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl"), filepath.Join(d, "postgres")}
		if isExec(b.initdb) && isExec(b.pgctl) && isExec(b.postgres) {
			return b, nil
		}
	}
	var b binaries
	var err1, err2, err3 error
	b.initdb, err1 = exec.LookPath("initdb")
	b.pgctl, err2 = exec.LookPath("pg_ctl")
	b.postgres, err3 = exec.LookPath("postgres")
	if err1 != nil || err2 != nil || err3 != nil {
		return binaries{}, errMissing
	}
	return b, nil
}

func pgVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// runAs is the credential to run the binaries with: nil unless we are root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither user postgres nor nobody exists")
}

func start() (*Server, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a free port may be taken between finding and binding it
		s, err := startOnce(bins, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOnce(bins binaries, cred *syscall.Credential) (*Server, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bins: bins, cred: cred}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if s.port, err = freePort(); err == nil {
		err = s.initAndStart()
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const hbaConf = `# pgtest: the superuser over the socket and loopback without a password,
# every other role with its password.
local all postgres trust
host  all postgres 127.0.0.1/32 trust
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
`

func (s *Server) initAndStart() error {
	data := filepath.Join(s.dir, "data")
	if out, err := s.run(s.bins.initdb, "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C",
		"--no-sync", "--auth=trust"); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := s.writeFile(filepath.Join(data, "pg_hba.conf"), hbaConf); err != nil {
		return err
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c password_encryption=scram-sha-256",
		s.port, s.dir)
	if out, err := s.run(s.bins.pgctl, "-D", data, "-l", filepath.Join(s.dir, "log"), "-o", opts,
		"-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return s.waitReady(60 * time.Second)
}

// waitReady connects until the server answers or the deadline passes.
func (s *Server) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.URL())
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres on port %d not ready: %v", s.port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

func (s *Server) run(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + s.dir, "PGTZ=UTC"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	return []byte(strings.TrimSpace(string(out))), err
}

// stop stops the server at once and removes its directory.
func (s *Server) stop() {
	data := filepath.Join(s.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		s.run(s.bins.pgctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop")
	}
	os.RemoveAll(s.dir)
}
