package run

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/watch"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func runningView(w *watch.State) view {
	return view{Started: t0, EverRan: true, Child: childView{Pid: 42, Up: true, Started: t0}, Watch: w}
}

// fallbackRunning is a child started on the state file at since, given a
// lease that ends at end; stale after 20 s (2 poll intervals of 10 s).
func fallbackRunning(since, end time.Time) view {
	v := runningView(nil)
	v.Fallback = &fallbackView{Since: since, ResolvedAt: since.Add(-time.Hour), StaleAfter: 20 * time.Second,
		Ends: []fallbackEnd{{Kind: "lease", Ref: "dynamic db/ro", LeaseID: "l1", At: end}}}
	return v
}

func TestReadiness(t *testing.T) {
	poll := 10 * time.Second
	secret := func(refreshed time.Time, pinned bool) watch.SecretState {
		return watch.SecretState{Ref: "app/db", Path: "app/db", Version: 3, Refreshed: refreshed, Pinned: pinned}
	}
	state := func(eventsUp bool, downSince time.Time, secrets ...watch.SecretState) *watch.State {
		return &watch.State{PollInterval: poll, EventsConnected: eventsUp, EventsDownSince: downSince, Secrets: secrets}
	}
	now := t0.Add(time.Hour)
	old := now.Add(-2*poll - time.Second)
	tests := []struct {
		name string
		v    view
		want []string // reasons' references ("" for none), in order; nil: ready
	}{
		{"before the child", view{Started: t0}, []string{""}},
		{"restarting", view{Started: t0, EverRan: true}, []string{""}},
		{"exiting", view{Started: t0, EverRan: true, Done: true}, []string{""}},
		{"running, nothing watched", runningView(nil), nil},
		{"fresh while polling", runningView(state(false, t0, secret(now.Add(-poll), false))), nil},
		{"exactly 2 intervals", runningView(state(false, t0, secret(now.Add(-2*poll), false))), nil},
		{"stale while polling", runningView(state(false, t0, secret(old, false))), []string{"app/db"}},
		{"old but events up", runningView(state(true, time.Time{}, secret(old, false))), nil},
		{"old, events down only lately", runningView(state(false, now.Add(-poll), secret(old, false))), nil},
		{"old, events down long", runningView(state(false, old, secret(old, false))), []string{"app/db"}},
		{"pinned version", runningView(state(false, t0, secret(old, true))), nil},
		{"lease alive", runningView(&watch.State{PollInterval: poll, EventsConnected: true,
			Leases: []watch.LeaseState{{Ref: "dynamic db/ro", LeaseID: "l1", ExpiresAt: now.Add(time.Second)}}}), nil},
		{"lease past its end", runningView(&watch.State{PollInterval: poll, EventsConnected: true,
			Leases: []watch.LeaseState{{Ref: "dynamic db/ro", LeaseID: "l1", ExpiresAt: now}}}), []string{"dynamic db/ro"}},
		{"files only, before the first render", view{Started: t0, FilesOnly: true}, []string{""}},
		{"files only, rendered (no child ever)", view{Started: t0, FilesOnly: true, EverRan: true}, nil},
		{"files only, stale", view{Started: t0, FilesOnly: true, EverRan: true, Watch: state(false, t0, secret(old, false))}, []string{"app/db"}},
		{"files only, exiting", view{Started: t0, FilesOnly: true, EverRan: true, Done: true}, []string{""}},
		{"on the state file (fallback)", fallbackRunning(now.Add(-poll), now.Add(time.Second)), nil},
		{"on the state file, a lease of it ended", fallbackRunning(now.Add(-poll), now), []string{"dynamic db/ro"}},
		{"on the state file for over 2 intervals", fallbackRunning(old, now.Add(time.Second)), []string{""}},
		{"certificate past its end", runningView(&watch.State{PollInterval: poll, EventsConnected: true,
			Certs: []watch.CertState{{Ref: "pki svc common_name=a", ExpiresAt: now.Add(-time.Second)}}}), []string{"pki svc common_name=a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nr := readiness(tt.v, now)
			var got []string
			for _, r := range nr {
				got = append(got, r.Reference)
				if r.Reason == "" {
					t.Errorf("a reason without text: %+v", r)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("not ready for %q (%+v), want %q", got, nr, tt.want)
			}
			if d := document(tt.v, now); d.Ready != (len(tt.want) == 0) {
				t.Errorf("/status ready=%v, /readyz %v", d.Ready, nr)
			}
		})
	}
}

// TestMetricsExposition: every metric has HELP and TYPE lines, lease and
// certificate ends are Unix seconds (the earliest per label set), series
// of leases no longer held go, requests count by route template.
func TestMetricsExposition(t *testing.T) {
	b := newBoard(t0)
	b.ChildStarted(42, t0)
	b.Restarting("secret")
	b.Restarting("bogus")
	b.Reloaded()
	b.metrics.ObserveResponse("POST", "/v1/secrets/batch-read", 200)
	b.metrics.ObserveResponse("GET", "/v1/secrets/{path}", 0)
	end := t0.Add(time.Hour)
	b.setWatch(&watch.State{
		PollInterval: time.Minute, EventsConnected: true, LastSuccess: t0.Add(time.Minute),
		Secrets: []watch.SecretState{{Ref: "app/db", Path: "app/db", Version: 1}},
		Leases: []watch.LeaseState{
			{Ref: "dynamic db/ro", Engine: "db", Role: "ro", LeaseID: "l1", ExpiresAt: end},
			{Ref: "dynamic db/ro ttl=1h", Engine: "db", Role: "ro", LeaseID: "l2", ExpiresAt: end.Add(-time.Minute)},
			{Ref: `dynamic d"b/r`, Engine: `d"b`, Role: "r", LeaseID: "l3", ExpiresAt: end},
		},
		Certs: []watch.CertState{{Ref: "pki svc", Role: "svc", Serial: "01", ExpiresAt: end},
			{Ref: "acme le domains=a.example.com", Account: "le", OrderID: "ord_1", Serial: "02", ExpiresAt: end.Add(time.Hour)}},
	})
	b.state = &stateRun{}
	b.state.writes.Add(3)
	b.state.writeFails.Add(1)
	out := scrape(b)
	for _, name := range []string{mStateFallback, mStateWrites, mChildUp, mRestarts, mReloads, mLastRefresh, mRequests, mLeaseExpiry, mCertExpiry, mSecretsWatched, mEventsUp, mCommands} {
		if !regexp.MustCompile(`(?m)^# HELP ` + name + ` [A-Z1].*\.\n# TYPE ` + name + ` (gauge|counter)$`).MatchString(out) {
			t.Errorf("no HELP (with its text) and TYPE lines for %s", name)
		}
	}
	checkExposition(t, out)
	for _, line := range []string{
		"scaivault_run_child_up 1",
		`scaivault_run_child_restarts_total{reason="secret"} 1`,
		`scaivault_run_child_restarts_total{reason="other"} 1`,
		`scaivault_run_child_restarts_total{reason="lease"} 0`,
		"scaivault_run_child_reloads_total 1",
		"scaivault_run_last_refresh_success_timestamp_seconds " + itoa(t0.Add(time.Minute).Unix()),
		`scaivault_run_requests_total{route="/v1/secrets/batch-read",code="200"} 1`,
		`scaivault_run_requests_total{route="/v1/secrets/{path}",code="error"} 1`,
		`scaivault_run_lease_expiry_timestamp_seconds{engine="db",role="ro"} ` + itoa(end.Add(-time.Minute).Unix()),
		`scaivault_run_lease_expiry_timestamp_seconds{engine="d\"b",role="r"} ` + itoa(end.Unix()),
		`scaivault_run_certificate_expiry_timestamp_seconds{role="svc"} ` + itoa(end.Unix()),
		`scaivault_run_certificate_expiry_timestamp_seconds{role="acme/le"} ` + itoa(end.Add(time.Hour).Unix()),
		"scaivault_run_secrets_watched 1",
		"scaivault_run_events_connected 1",
		"scaivault_run_state_fallback 0",
		`scaivault_run_state_writes_total{result="ok"} 3`,
		`scaivault_run_state_writes_total{result="failed"} 1`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("no line %q in\n%s", line, out)
		}
	}
	b.setWatch(&watch.State{PollInterval: time.Minute})
	b.ChildExited(42)
	out = scrape(b)
	if strings.Contains(out, "scaivault_run_lease_expiry_timestamp_seconds{") || strings.Contains(out, "certificate_expiry_timestamp_seconds{") {
		t.Errorf("series of leases no longer held are still there:\n%s", out)
	}
	if !strings.Contains(out, "# TYPE scaivault_run_lease_expiry_timestamp_seconds gauge\n") || !strings.Contains(out, "scaivault_run_child_up 0\n") {
		t.Errorf("after the leases went:\n%s", out)
	}
}

// checkExposition checks the text format's grammar as Prometheus reads
// it: each sample after its family's TYPE line, names and labels well
// formed, label values quoted and escaped, integer values, no series
// twice.
func checkExposition(t *testing.T, out string) {
	t.Helper()
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? -?[0-9]+$`)
	family, seen := "", map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			family, _, _ = strings.Cut(rest, " ")
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sample.FindStringSubmatch(line)
		switch {
		case m == nil:
			t.Errorf("line %d %q: not a sample", i+1, line)
		case m[1] != family:
			t.Errorf("line %d %q: outside its family (after TYPE %s)", i+1, line, family)
		case seen[m[1]+m[2]]:
			t.Errorf("line %d %q: series given twice", i+1, line)
		}
		if m != nil {
			seen[m[1]+m[2]] = true
		}
	}
}

func scrape(b *board) string {
	var buf bytes.Buffer
	b.metrics.write(&buf, b.view())
	return buf.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestStatusServerBounds: only GET and HEAD of the four routes; at most
// maxStatusConns connections at a time, so that clients that open
// connections and send nothing hold no more than that (and each only
// until the header timeout); a connection that closes frees its place.
func TestStatusServerBounds(t *testing.T) {
	ln, err := listenStatus("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := newBoard(t0)
	srv := serveStatus(ln, b, slog.New(slog.DiscardHandler))
	defer srv.close()
	base := "http://" + ln.Addr().String()
	get := func(method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader("x"))
		resp, err := (&http.Client{Timeout: deadlineUnit}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200}, {"HEAD", "/healthz", 200}, {"GET", "/readyz", 503}, {"GET", "/status", 200},
		{"GET", "/metrics", 200}, {"POST", "/metrics", 405}, {"PUT", "/status", 405}, {"DELETE", "/healthz", 405},
		{"GET", "/v1/secrets/app/db", 404}, {"GET", "/", 404},
	} {
		if got := get(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	b.LoopDone()
	if got := get("GET", "/healthz"); got != 503 {
		t.Errorf("/healthz after the loop ended: %d, want 503", got)
	}

	var idle []net.Conn
	for range maxStatusConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	// Every place is taken: a request waits (it is not answered within
	// a second, far below the 5s header timeout that frees the places).
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := cl.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("answered with %d connections held open; want it to wait", maxStatusConns)
	}
	idle[0].Close()
	cl.Timeout = deadlineUnit
	resp, err := cl.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("no answer once a connection closed: %v", err)
	}
	resp.Body.Close()
}

// deadlineUnit bounds one request of these tests.
const deadlineUnit = 20 * time.Second

// TestStatusOffByDefault: without an address nothing listens and nothing
// observes.
func TestStatusOffByDefault(t *testing.T) {
	opts := Options{}
	s, err := startStatus(&opts, slog.New(slog.DiscardHandler))
	if s != nil || err != nil || opts.Client.Observer != nil || s.observer() != nil || s.onState() != nil {
		t.Fatalf("status without an address: %v %v %v", s, err, opts.Client.Observer)
	}
	s.close()
}
