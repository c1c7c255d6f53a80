package run

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/scailabs/scaivault-run/watch"
)

// The metrics of the status endpoint, in the Prometheus text format
// (version 0.0.4), written here: a dozen families of counters and gauges
// need no library, and the one used before (VictoriaMetrics/metrics) read
// cgroup files and built runtime/metrics tables at every start of every
// supervisor, status endpoint on or off (BENCHMARKS.md, "What users
// pay"). Counters are counted where things happen (an atomic add); the
// gauges are read from the board's view at scrape time, so nothing the
// loop or the watcher does waits for a scrape.

// Metric names (README.md, "Status endpoint").
const (
	mChildUp        = "scaivault_run_child_up"
	mRestarts       = "scaivault_run_child_restarts_total"
	mReloads        = "scaivault_run_child_reloads_total"
	mLastRefresh    = "scaivault_run_last_refresh_success_timestamp_seconds"
	mRequests       = "scaivault_run_requests_total"
	mLeaseExpiry    = "scaivault_run_lease_expiry_timestamp_seconds"
	mCertExpiry     = "scaivault_run_certificate_expiry_timestamp_seconds"
	mSecretsWatched = "scaivault_run_secrets_watched"
	mEventsUp       = "scaivault_run_events_connected"
	mCommands       = "scaivault_run_template_commands_total"
	mStateFallback  = "scaivault_run_state_fallback"
	mStateWrites    = "scaivault_run_state_writes_total"
)

// help is each family's HELP text and type, in the order they are written.
var help = []struct{ name, typ, text string }{
	{mChildUp, "gauge", "1 while the child runs."},
	{mRestarts, "counter", "Child restarts, by what changed."},
	{mReloads, "counter", "Reload signals sent to the child (files only: to the --reload-pid-file process)."},
	{mCommands, "counter", "Template commands ended, by result."},
	{mLastRefresh, "gauge", "Unix time of the last refresh the server answered."},
	{mRequests, "counter", "Requests to ScaiVault, by route template and status code (error: no answer)."},
	{mLeaseExpiry, "gauge", "Unix time at which the lease the child runs on ends (the earliest per engine and role)."},
	{mCertExpiry, "gauge", "Unix time at which the certificate the child runs on ends (the earliest per role)."},
	{mSecretsWatched, "gauge", "Static secrets watched."},
	{mEventsUp, "gauge", "1 while the change-events stream is up."},
	{mStateFallback, "gauge", "1 while the child runs on values from the state file (a fallback start), until the server answers."},
	{mStateWrites, "counter", "State file writes, by result."},
}

// commandResults are the values of template_commands_total's result
// label (see Observer.CommandEnded); every one is exposed from the start.
var commandResults = []string{"ok", "failed", "timeout", "error"}

// restartReasons are the values of restarts_total's reason label (see
// Observer.Restarting); every one is exposed from the start, at 0.
var restartReasons = []string{"secret", "lease", "certificate", "list", "multiple", "other"}

// counter is a monotonic count.
type counter struct{ n atomic.Uint64 }

func (c *counter) Inc() { c.n.Add(1) }

type statusMetrics struct {
	reloads  counter
	restarts map[string]*counter // fixed keys: read without a lock
	commands map[string]*counter

	mu       sync.Mutex
	requests map[[2]string]uint64 // route, code
}

func newStatusMetrics() *statusMetrics {
	m := &statusMetrics{restarts: map[string]*counter{}, commands: map[string]*counter{}, requests: map[[2]string]uint64{}}
	for _, r := range restartReasons {
		m.restarts[r] = &counter{}
	}
	for _, r := range commandResults {
		m.commands[r] = &counter{}
	}
	return m
}

func (m *statusMetrics) restart(reason string) {
	c := m.restarts[reason]
	if c == nil {
		c = m.restarts["other"]
	}
	c.Inc()
}

// ObserveResponse counts one API attempt by route template and status
// (fetch.ResponseObserver); 0, no answer, is code "error".
func (m *statusMetrics) ObserveResponse(_, route string, status int) {
	if route == "" {
		route = "other"
	}
	code := "error"
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.mu.Lock()
	m.requests[[2]string{route, code}]++
	m.mu.Unlock()
}

// write writes every metric, its gauges from v, to w: each family with
// its HELP and TYPE lines (also when it has no series yet), series in a
// stable order.
func (m *statusMetrics) write(w io.Writer, v view) error {
	series := map[string][]string{} // family: its lines
	add := func(fam, labels string, val int64) {
		series[fam] = append(series[fam], fam+labels+" "+strconv.FormatInt(val, 10))
	}
	add(mChildUp, "", flag01(v.Child.Up))
	for _, r := range restartReasons {
		add(mRestarts, labelSet("reason", r), int64(m.restarts[r].n.Load()))
	}
	add(mReloads, "", int64(m.reloads.n.Load()))
	for _, r := range commandResults {
		add(mCommands, labelSet("result", r), int64(m.commands[r].n.Load()))
	}
	m.mu.Lock()
	reqs := maps.Clone(m.requests)
	m.mu.Unlock()
	for _, k := range slices.SortedFunc(maps.Keys(reqs), func(a, b [2]string) int {
		return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1])
	}) {
		add(mRequests, labelSet("route", k[0], "code", k[1]), int64(reqs[k]))
	}
	st := v.Watch
	var secrets int
	var events bool
	if st == nil {
		add(mLastRefresh, "", v.Started.Unix()) // nothing watched: the start-up read all
	} else {
		secrets, events = len(st.Secrets), st.EventsConnected
		add(mLastRefresh, "", st.LastSuccess.Unix())
		// One series per engine/role and per role: the earliest end
		// among the leases (certificates) that share it.
		leases, certs := map[string]int64{}, map[string]int64{}
		for _, l := range st.Leases {
			earliest(leases, labelSet("engine", l.Engine, "role", l.Role), l.ExpiresAt.Unix())
		}
		for _, c := range st.Certs {
			earliest(certs, labelSet("role", certRole(c)), c.ExpiresAt.Unix())
		}
		for _, l := range slices.Sorted(maps.Keys(leases)) {
			add(mLeaseExpiry, l, leases[l])
		}
		for _, l := range slices.Sorted(maps.Keys(certs)) {
			add(mCertExpiry, l, certs[l])
		}
	}
	add(mSecretsWatched, "", int64(secrets))
	add(mEventsUp, "", flag01(events))
	add(mStateFallback, "", flag01(v.Fallback != nil))
	add(mStateWrites, labelSet("result", "ok"), int64(v.StateWrites))
	add(mStateWrites, labelSet("result", "failed"), int64(v.StateWriteFailures))
	bw := bufio.NewWriter(w)
	for _, h := range help {
		bw.WriteString("# HELP " + h.name + " " + h.text + "\n# TYPE " + h.name + " " + h.typ + "\n")
		for _, line := range series[h.name] {
			bw.WriteString(line + "\n")
		}
	}
	return bw.Flush()
}

// certRole is a certificate's role label: the PKI role, or acme/ACCOUNT
// for an ACME certificate (the path its permission is on; a PKI role
// holds no slash, so the two never mix).
func certRole(c watch.CertState) string {
	if c.Account != "" {
		return "acme/" + c.Account
	}
	return c.Role
}

func earliest(m map[string]int64, k string, v int64) {
	if old, ok := m[k]; !ok || v < old {
		m[k] = v
	}
}

func flag01(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// labelSet is {k1="v1",k2="v2"}, the values escaped for the text format.
func labelSet(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
