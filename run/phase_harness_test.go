//go:build linux

package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

// Phase tests (in the manner of tailscale's containerboot tests): Launch
// runs for real against the dev server in process, with the test binary
// as its child ("signals" mode: it prints "PID ready ... val=$SVTEST_VAL"
// and "PID got SIG"); each phase changes the server, then checks what the
// child printed, the files, the signals, the pids and the exit status.
// Every value the server holds is scanned for in every log line.

// phaseSeed holds every kind of source; every value holds "SECRET".
const phaseSeed = `{
  "root_token": "root-SECRET-phase-0",
  "clients": [
    {"client_id": "short", "client_secret": "short-SECRET-phase", "token_ttl": "2s", "policies": ["app"]},
    {"client_id": "one", "client_secret": "one-SECRET-phase", "token_ttl": "1h", "policies": ["app"]},
    {"client_id": "two", "client_secret": "two-SECRET-phase", "token_ttl": "1h", "policies": ["app"]}
  ],
  "policies": {"app": [{"path_pattern": "app/**", "permissions": ["read", "list"]},
                       {"path_pattern": "dynamic/**", "permissions": ["dynamic"]},
                       {"path_pattern": "pki/**", "permissions": ["pki"]}]},
  "secrets": {
    "app/db": {"data": {"password": "pw-SECRET-1", "username": "app"}},
    "app/tpl": {"data": {"v": "tpl-SECRET-1"}}
  },
  "dynamic": {"db": {"kind": "random", "roles": {
      "renew": {"ttl": "3s", "max_ttl": "1h"},
      "fixed": {"ttl": "6s", "renewable": false}}}},
  "pki": {"roles": {"svc": {"allowed_domains": ["svc.local"], "allow_subdomains": true, "ttl": "4s", "max_ttl": "1h"}}}
}`

const (
	refDBPassword = "scaivault://app/db#password"
	refRenew      = "scaivault+dynamic://db/renew#username"
	refFixed      = "scaivault+dynamic://db/fixed#password"
)

// phase is one Launch under test.
type phase struct {
	t      testing.TB
	srv    *devserver.Server
	hs     *httptest.Server
	url    string
	root   *fetch.Client
	log    *phaseLog
	lines  <-chan string
	seen   []string
	result chan [2]any
	cancel context.CancelFunc

	mu      sync.Mutex
	secrets []string // for the leak scan
}

// startPhase starts a dev server seeded with phaseSeed and Launch with the
// helper child; val is the reference the child prints as val=. mut may
// change the options before the start.
func startPhase(t testing.TB, val string, mut func(*phase, *Options)) *phase {
	t.Helper()
	seed, err := devserver.ParseSeed([]byte(phaseSeed), "phase-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	p := &phase{t: t, srv: srv, hs: hs, url: hs.URL, log: newPhaseLog(), result: make(chan [2]any, 1)}
	p.noteSeed(seed)
	p.root, err = fetch.New(fetch.Config{BaseURL: hs.URL, Token: srv.RootToken()})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
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
		Client:       fetch.Config{BaseURL: hs.URL, Token: srv.RootToken(), Logger: log},
		Env:          template.EnvSpec{Env: childEnv("SVTEST_VAL=" + val)},
		Argv:         childArgv("signals"),
		PollInterval: 200 * time.Millisecond,
		Supervisor:   Config{Stdin: null, Stdout: w, Stderr: null, KillTimeout: 10 * time.Second},
		Logger:       log,
	}
	if mut != nil {
		mut(p, &opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		code, err := Launch(ctx, opts)
		w.Close()
		p.result <- [2]any{code, err}
	}()
	t.Cleanup(func() {
		cancel()
		p.wait()
		r.Close()
		null.Close()
		p.root.Close()
		srv.Close() // first: it ends the event streams hs.Close waits for
		hs.Close()
		p.scan()
		if t.Failed() {
			t.Logf("child said: %q\nlog:\n%s", p.seen, p.log.String())
		}
	})
	return p
}

// expect waits for the child to print a line matching re and returns its
// submatches.
func (p *phase) expect(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(deadline)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("the child's output ended before a line matching %q; seen %q", re, p.seen)
			}
			p.seen = append(p.seen, l)
			if i := strings.Index(l, " val="); i >= 0 {
				p.note(l[i+5:]) // what the child got is a secret
			}
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
			p.t.Fatalf("the child said %q; want a line matching %q", l, re)
		case <-timeout:
			p.t.Fatalf("no line matching %q within %v; seen %q", re, deadline, p.seen)
		}
	}
}

// ready waits for a (new) child and returns its pid.
func (p *phase) ready(val string) string {
	p.t.Helper()
	return p.expect(`^(\d+) ready .* val=` + regexp.QuoteMeta(val) + `$`)[1]
}

// restarted expects pid to get the kill signal and a new child to start
// with val; it returns the new pid.
func (p *phase) restarted(pid, val string) string {
	p.t.Helper()
	p.expect(`^` + pid + ` got SIGTERM$`)
	np := p.ready(val)
	if np == pid {
		p.t.Fatalf("same pid %s after a restart", pid)
	}
	return np
}

// quiet checks that the child has said nothing since the last expect.
func (p *phase) quiet() {
	p.t.Helper()
	select {
	case l := <-p.lines:
		p.seen = append(p.seen, l)
		p.t.Fatalf("the child said %q; want nothing", l)
	default:
	}
}

// wait returns Launch's exit status and error.
func (p *phase) wait() (int, error) {
	p.t.Helper()
	select {
	case r := <-p.result:
		p.result <- r
		err, _ := r[1].(error)
		return r[0].(int), err
	case <-time.After(deadline):
		p.t.Fatalf("Launch did not return within %v", deadline)
	}
	return 0, nil
}

func (p *phase) write(path string, data map[string]any) {
	p.t.Helper()
	for _, v := range data {
		if s, ok := v.(string); ok {
			p.note(s)
		}
	}
	if _, err := p.admin().Write(context.Background(), path, fetch.WriteRequest{Data: data}); err != nil {
		p.t.Fatal(err)
	}
}

// requests waits until the server has answered at least n requests on
// route (there is no event for it: the counter is checked every 10ms).
func (p *phase) requests(route string, n int64) {
	p.t.Helper()
	end := time.Now().Add(deadline)
	for p.srv.Requests(route) < n {
		if time.Now().After(end) {
			p.t.Fatalf("%d %s requests within %v, want %d", p.srv.Requests(route), route, deadline, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dev calls a dev endpoint of the server with the root token.
func (p *phase) dev(path string, body any) {
	p.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, p.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+p.srv.RootToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// note adds values to the leak scan.
func (p *phase) note(vs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range vs {
		for _, line := range strings.Split(v, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 6 && !strings.HasPrefix(line, "-----") {
				p.secrets = append(p.secrets, line)
			}
		}
	}
}

func (p *phase) noteSeed(seed *devserver.Seed) {
	p.note(seed.RootToken)
	for _, c := range seed.Clients {
		p.note(c.ClientSecret)
	}
	for _, s := range seed.Secrets {
		for _, v := range s.Data {
			if str, ok := v.(string); ok {
				p.note(str)
			}
		}
	}
}

// scan fails the test when a noted value shows in a log line or in
// Launch's error.
func (p *phase) scan() {
	out := p.log.String()
	if r := <-p.result; r[1] != nil {
		out += fmt.Sprint(r[1])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range p.secrets {
		if strings.Contains(out, v) {
			p.t.Errorf("a secret value shows in the logs or errors: %.4s…", v)
		}
	}
}

// phaseLog is the run's log; await waits for a line.
type phaseLog struct {
	mu     sync.Mutex
	b      strings.Builder
	notify chan struct{}
}

func newPhaseLog() *phaseLog { return &phaseLog{notify: make(chan struct{})} }

func (l *phaseLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.notify)
	l.notify = make(chan struct{})
	return l.b.Write(p)
}

func (l *phaseLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is the number of log lines matching re.
func (l *phaseLog) count(re string) int {
	return len(regexp.MustCompile(`(?m)`+re).FindAllString(l.String(), -1))
}

// await waits for a log line matching re (n-th match, from 1) and
// returns its submatches.
func (l *phaseLog) await(t testing.TB, re string, n int) []string {
	t.Helper()
	rx := regexp.MustCompile(`(?m)` + re)
	timeout := time.After(deadline)
	for {
		l.mu.Lock()
		all := rx.FindAllStringSubmatch(l.b.String(), -1)
		ch := l.notify
		l.mu.Unlock()
		if len(all) >= n {
			return all[n-1]
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("no log line matching %q (#%d) within %v", re, n, deadline)
		}
	}
}

// timeOf is the time= of the first log line matching re (awaited).
func (l *phaseLog) timeOf(t testing.TB, re string) time.Time {
	t.Helper()
	m := l.await(t, `time=(\S+) .*`+re, 1)
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatalf("log time %q: %v", m[1], err)
	}
	return at
}

// admin changes the server as an operator would.
func (p *phase) admin() *devserver.Admin {
	return &devserver.Admin{BaseURL: p.url, Token: p.srv.RootToken()}
}

// isNotFound matches a look-up of a revoked lease.
func isNotFound(err error) bool { return errors.Is(err, fetch.ErrNotFound) }
