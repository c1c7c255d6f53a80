//go:build linux

package run

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
	"github.com/scailabs/scaivault-run/template"
)

// Phase tests of the state file: one dev server that can be stopped and
// started again on the same address (connections refused in between, as
// a server that is down), and several Launches in turn on one state file.

const stateSeed = `{
  "root_token": "root-SECRET-state-0",
  "policies": {},
  "secrets": {"app/db": {"data": {"password": "pw-SECRET-1", "username": "app"}}},
  "dynamic": {"db": {"kind": "random", "roles": {"long": {"ttl": "1h", "max_ttl": "24h"}}}},
  "pki": {"roles": {"svc": {"allowed_domains": ["svc.local"], "allow_subdomains": true, "ttl": "1h", "max_ttl": "24h"}}}
}`

const refLong = "scaivault+dynamic://db/long#username"

// stateWorld is the server, its switchable listener, and a key and state file.
type stateWorld struct {
	t     *testing.T
	srv   *devserver.Server
	addr  string
	hs    *http.Server
	admin *httptest.Server // always up: the operator's way in while the server is "down"
	key   string
	file  string
}

func newStateWorld(t *testing.T) *stateWorld {
	t.Helper()
	seed, err := devserver.ParseSeed([]byte(stateSeed), "state-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	w := &stateWorld{t: t, srv: srv, admin: httptest.NewServer(srv.Handler())}
	dir := t.TempDir()
	w.key, w.file = filepath.Join(dir, "key.txt"), filepath.Join(dir, "state.age")
	writeKey(t, w.key)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	w.serve(ln)
	t.Cleanup(func() {
		srv.Close()
		if w.hs != nil {
			w.hs.Close()
		}
		w.admin.Close()
	})
	return w
}

// stopWritten waits until p wrote its state, then stops it cleanly.
func stopWritten(t *testing.T, p *phase) {
	t.Helper()
	p.log.await(t, `msg="state file written"`, 1)
	stopLaunch(t, p)
}

// firstRun is a run on refDBPassword (and env) that leaves its state: the
// start of every fallback test.
func (w *stateWorld) firstRun(t *testing.T, env []string) {
	t.Helper()
	first := w.launch(t, refDBPassword, env, nil)
	first.ready("pw-SECRET-1")
	stopWritten(t, first)
}

// writeKey writes a new identity file as age-keygen does.
func writeKey(t *testing.T, path string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *stateWorld) serve(ln net.Listener) {
	w.hs = &http.Server{Handler: w.srv.Handler()}
	go w.hs.Serve(ln)
}

// stop closes the listener and every connection: requests are refused.
func (w *stateWorld) stop() {
	w.hs.Close()
	w.hs = nil
}

// start serves on the same address again.
func (w *stateWorld) start() {
	var ln net.Listener
	var err error
	for end := time.Now().Add(deadline); ; {
		if ln, err = net.Listen("tcp", w.addr); err == nil || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port is released asynchronously
	}
	if err != nil {
		w.t.Fatal(err)
	}
	w.serve(ln)
}

// launch starts Launch on the world's server and state file; env are the
// child's NAME=VALUE (references or not) besides SVTEST_VAL=val.
func (w *stateWorld) launch(t *testing.T, val string, env []string, mut func(*Options)) *phase {
	t.Helper()
	p := &phase{t: t, srv: w.srv, url: "http://" + w.addr, log: newPhaseLog(), result: make(chan [2]any, 1)}
	p.note("pw-SECRET-1", "root-SECRET-state-0")
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.lines = lineReader(r)
	log := slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{
		Client:         fetch.Config{BaseURL: p.url, Token: w.srv.RootToken(), Logger: log},
		Env:            template.EnvSpec{Env: childEnv(append([]string{"SVTEST_VAL=" + val}, env...)...)},
		Argv:           childArgv("signals"),
		PollInterval:   time.Hour,
		StateFile:      w.file,
		StateKeyFile:   w.key,
		FallbackAfter:  time.Second,
		StartupTimeout: 30 * time.Second,
		Supervisor:     Config{Stdin: null, Stdout: wr, Stderr: null, KillTimeout: 10 * time.Second},
		Logger:         log,
	}
	if mut != nil {
		mut(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		code, err := Launch(ctx, opts)
		wr.Close()
		p.result <- [2]any{code, err}
	}()
	t.Cleanup(func() {
		cancel()
		p.wait()
		r.Close()
		null.Close()
		for _, v := range w.srv.SecretValues() {
			p.note(v)
		}
		p.scan()
		if t.Failed() {
			t.Logf("child said: %q\nlog:\n%s", p.seen, p.log.String())
		}
	})
	return p
}

// stopLaunch ends a Launch cleanly and checks its status.
func stopLaunch(t *testing.T, p *phase) {
	t.Helper()
	p.cancel()
	if code, err := p.wait(); code != 0 || err != nil {
		t.Fatalf("Launch = %d, %v", code, err)
	}
}

// noValues fails when the state file holds a value the server handed out
// or the child got, in plaintext.
func (w *stateWorld) noValues(t *testing.T, extra ...string) {
	t.Helper()
	data, err := os.ReadFile(w.file)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range append(w.srv.SecretValues(), extra...) {
		if len(v) >= 4 && bytes.Contains(data, []byte(v)) {
			t.Errorf("the state file holds a value in plaintext: %.4s…", v)
		}
	}
}

// readState decrypts the state file.
func (w *stateWorld) readState(t *testing.T) *statefile.Doc {
	t.Helper()
	k, _, err := statefile.LoadKey(w.key)
	if err != nil {
		t.Fatal(err)
	}
	d, err := statefile.ReadFile(w.file, k)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestStateFallbackRecovers: a run with --no-revoke leaves its state and
// lease; with the server down the next run starts the child from the
// state within --fallback-after (+1s), says so with the state's age,
// reports it on /readyz, and once the server answers re-resolves
// everything without a restart (nothing changed) and keeps the lease.
func TestStateFallbackRecovers(t *testing.T) {
	w := newStateWorld(t)
	noRevoke := func(o *Options) { o.NoRevoke = true }
	first := w.launch(t, refLong, []string{"DB_PASS=" + refDBPassword}, noRevoke)
	user := first.expect(`ready .* val=(v-long-[0-9a-f]+)$`)[1]
	first.log.await(t, `msg="state file written"`, 1)
	w.noValues(t, user)
	stopLaunch(t, first)
	if d := w.readState(t); d.Exit == nil || d.Exit.LeasesRevoked || len(d.Leases) != 1 || d.Leases[0].Revoked {
		t.Fatalf("state after a --no-revoke exit: exit %+v, leases %+v", d.Exit, d.Leases)
	}

	w.stop()
	p := w.launch(t, refLong, []string{"DB_PASS=" + refDBPassword}, func(o *Options) { o.StatusAddr = "127.0.0.1:0" })
	pid := p.ready(user)
	p.log.await(t, `level=WARN msg="the server is not reachable: the child starts on the state file.*age=`, 1)
	begin := p.log.timeOf(t, `msg="state file read"`)
	started := p.log.timeOf(t, `msg="child started"`)
	if d := started.Sub(begin); d > time.Second+time.Second {
		t.Errorf("the child started %v after the state was read, want within --fallback-after 1s + 1s", d)
	}

	addr := p.log.await(t, `msg="status endpoint listening" addr=(\S+)`, 1)[1]
	// Ready on the state file (README: a 503 would take the child out of
	// service for the whole outage); /status and the metrics say so.
	if code, body := getReadyz(t, addr); code != http.StatusOK {
		t.Errorf("/readyz while on the state file: %d %s", code, body)
	}
	if _, body := getStatusPath(t, addr, "/status"); !regexp.MustCompile(`"fallback":\s*\{\s*"since":`).MatchString(body) {
		t.Errorf("/status while on the state file has no fallback: %s", body)
	} else if !strings.Contains(body, `"kind": "lease"`) || !strings.Contains(body, `"kind": "secret"`) {
		t.Errorf("/status while on the state file lists not what the child runs on: %s", body)
	}
	if _, body := getStatusPath(t, addr, "/metrics"); !strings.Contains(body, "\nscaivault_run_state_fallback 1\n") {
		t.Errorf("/metrics while on the state file: no scaivault_run_state_fallback 1")
	}

	w.start()
	p.log.await(t, `msg="the server answers: everything re-resolved after the fallback start"`, 1)
	p.log.await(t, `msg="the change does not touch the child"`, 1)
	p.log.await(t, `msg="lease of the previous run reused" lease=`, 1)
	p.log.await(t, `msg="watching for changes"`, 1)
	p.quiet()
	if n := w.srv.ActiveLeases(); n != 1 {
		t.Errorf("%d leases active, want 1: the state's lease was replaced", n)
	}
	p.log.await(t, `msg="state file written"`, 1)
	w.noValues(t, user)
	if code, body := getReadyz(t, addr); code != http.StatusOK {
		t.Errorf("/readyz once the server answered: %d %s", code, body)
	}
	if _, body := getStatusPath(t, addr, "/status"); strings.Contains(body, `"fallback"`) {
		t.Errorf("/status once the server answered still says fallback: %s", body)
	}
	_, body := getStatusPath(t, addr, "/metrics")
	if !strings.Contains(body, "\nscaivault_run_state_fallback 0\n") || !regexp.MustCompile(`\nscaivault_run_state_writes_total\{result="ok"\} [1-9]`).MatchString(body) {
		t.Errorf("/metrics once the server answered: fallback not 0 or no state write counted")
	}
	p.cancel()
	p.expect(`^` + pid + ` got SIGTERM$`)
	p.wait()
	if n := w.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases active after a clean exit, want 0", n)
	}
	if d := w.readState(t); d.Exit == nil || !d.Exit.LeasesRevoked || d.Leases[0].Lease != nil {
		t.Errorf("state after a clean exit: exit %+v, leases %+v", d.Exit, d.Leases)
	}
}

// TestStateFallbackRestartsOnChange: a value that changed while the child
// ran on the state restarts it once the server answers.
func TestStateFallbackRestartsOnChange(t *testing.T) {
	w := newStateWorld(t)
	w.firstRun(t, nil)

	w.stop()
	p := w.launch(t, refDBPassword, nil, nil)
	pid := p.ready("pw-SECRET-1")
	p.note("pw-SECRET-2")
	admin := &devserver.Admin{BaseURL: w.admin.URL, Token: w.srv.RootToken()}
	if _, err := admin.Write(context.Background(), "app/db", fetch.WriteRequest{Data: map[string]any{"password": "pw-SECRET-2", "username": "app"}}); err != nil {
		t.Fatal(err)
	}
	w.start()
	p.restarted(pid, "pw-SECRET-2")
	p.log.await(t, `msg="state file written"`, 1)
	if d := w.readState(t); d.Secrets[0].Secret.Version != 2 {
		t.Errorf("state holds version %d after the recovery, want 2", d.Secrets[0].Secret.Version)
	}
}

// TestStateFallbackCannotStandIn: a state without what the child needs (a
// lease revoked at the last clean exit), or too old, is not used: the
// start-up retries until its timeout as without it.
func TestStateFallbackCannotStandIn(t *testing.T) {
	w := newStateWorld(t)
	first := w.launch(t, refLong, nil, nil)
	first.expect(`ready .* val=v-long-`)
	stopWritten(t, first)
	before, _ := os.ReadFile(w.file)

	w.stop()
	for name, mut := range map[string]func(*Options){
		"revoked lease": nil,
		"too old":       func(o *Options) { o.FallbackMaxAge = time.Nanosecond },
	} {
		t.Run(name, func(t *testing.T) {
			p := w.launch(t, refLong, nil, func(o *Options) {
				o.FallbackAfter, o.StartupTimeout = 200*time.Millisecond, 2*time.Second
				if mut != nil {
					mut(o)
				}
			})
			if code, err := p.wait(); code != ExitFailure || err == nil {
				t.Fatalf("Launch = %d, %v; want 125", code, err)
			}
			want := map[string]string{"revoked lease": "was revoked when scaivault-run last exited", "too old": "more than --fallback-max-age"}[name]
			p.log.await(t, `msg="the server is not reachable, and the state file cannot stand in.*`+regexp.QuoteMeta(want), 1)
			if after, _ := os.ReadFile(w.file); !bytes.Equal(before, after) {
				t.Error("the state file changed")
			}
		})
	}
}

// TestStateBadFiles: each file that cannot be used is named in a warning
// with its reason, never used (no fallback with the server down: 125),
// never fatal (with the server up the run goes on), and not overwritten
// until this run resolved everything itself.
func TestStateBadFiles(t *testing.T) {
	w := newStateWorld(t)
	w.firstRun(t, nil)
	good, err := os.ReadFile(w.file)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(t.TempDir(), "other.txt")
	writeKey(t, otherKey)
	end := bytes.Index(good, []byte("\n-----END"))
	tampered := append([]byte(nil), good...)
	// The first letter of the last line, the payload's end: another
	// base64 letter (all six bits count, so the armor still decodes).
	at := bytes.LastIndexByte(good[:end], '\n') + 1
	if tampered[at] == 'A' {
		tampered[at] = 'B'
	} else {
		tampered[at] = 'A'
	}
	cases := []struct {
		name, reason string
		data         []byte
		mut          func(*Options)
	}{
		{"wrong key", "encrypted to another key", good, func(o *Options) { o.StateKeyFile = otherKey }},
		{"truncated", "truncated", good[:len(good)/2], nil},
		{"corrupt", "corrupt: not an age-encrypted file", []byte("\x00\x01garbage\n"), nil},
		{"tampered", "tampered with", tampered, nil},
		{"other configuration", "written for another configuration", good, func(o *Options) {
			o.Env.Env = append(o.Env.Env, "OTHER="+refLong)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(w.file, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			w.stop()
			down := w.launch(t, refDBPassword, nil, func(o *Options) {
				o.FallbackAfter, o.StartupTimeout = 200*time.Millisecond, 1500*time.Millisecond
				if c.mut != nil {
					c.mut(o)
				}
			})
			if code, err := down.wait(); code != ExitFailure || !strings.Contains(err.Error(), "start-up timeout") {
				t.Fatalf("server down: Launch = %d, %v; want 125 for the start-up timeout (the file must not be used)", code, err)
			}
			down.log.await(t, `level=WARN msg="state file not used: `+regexp.QuoteMeta(c.reason), 1)
			if got, _ := os.ReadFile(w.file); !bytes.Equal(got, c.data) {
				t.Fatal("the file was overwritten by a run that resolved nothing")
			}
			w.start()
			up := w.launch(t, refDBPassword, nil, c.mut)
			up.ready("pw-SECRET-1")
			up.log.await(t, `level=WARN msg="state file not used: `+regexp.QuoteMeta(c.reason), 1)
			up.log.await(t, `msg="state file written"`, 1)
			stopLaunch(t, up)
			if got, _ := os.ReadFile(w.file); bytes.Equal(got, c.data) {
				t.Fatal("the file was not replaced after a successful resolution")
			}
		})
	}
}

// TestStateKeyErrors: a key file that is no key is the run's error (125).
func TestStateKeyErrors(t *testing.T) {
	w := newStateWorld(t)
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	p := w.launch(t, refDBPassword, nil, func(o *Options) { o.StateKeyFile = bad })
	code, err := p.wait()
	if code != ExitFailure || err == nil || !strings.Contains(err.Error(), "--state-key-file") || strings.Contains(err.Error(), "NOTAKEY") {
		t.Fatalf("Launch = %d, %v", code, err)
	}
	if _, err := os.Stat(w.file); !errors.Is(err, os.ErrNotExist) {
		t.Error("a state file was written")
	}
}

func getReadyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	return getStatusPath(t, addr, "/readyz")
}

// getStatusPath GETs path of the status endpoint at addr.
func getStatusPath(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
