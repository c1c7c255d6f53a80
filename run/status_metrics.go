package run

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scailabs/scaivault-run/watch"
)

// The metrics of the status endpoint, in the Prometheus text format, by
// github.com/VictoriaMetrics/metrics (BENCHMARKS.md says why this one).
// Counters are counted where things happen (an atomic add); the gauges
// are set from the board's view at scrape time, so nothing the loop or the
// watcher does waits for a scrape.

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

// commandResults are the values of template_commands_total's result
// label (see Observer.CommandEnded); every one is exposed from the start.
var commandResults = []string{"ok", "failed", "timeout", "error"}

// restartReasons are the values of restarts_total's reason label (see
// Observer.Restarting); every one is exposed from the start, at 0.
var restartReasons = []string{"secret", "lease", "certificate", "list", "multiple", "other"}

type statusMetrics struct {
	set      *metrics.Set
	reloads  *metrics.Counter
	restarts map[string]*metrics.Counter
	commands map[string]*metrics.Counter

	mu      sync.Mutex      // one scrape at a time updates the gauges
	labeled map[string]bool // lease and certificate series of the last scrape
}

func newStatusMetrics() *statusMetrics {
	// HELP and TYPE lines (the library writes the HELP line without a
	// text; README.md describes every metric).
	metrics.ExposeMetadata(true)
	m := &statusMetrics{set: metrics.NewSet(), restarts: map[string]*metrics.Counter{}, commands: map[string]*metrics.Counter{}, labeled: map[string]bool{}}
	m.reloads = m.set.NewCounter(mReloads)
	for _, r := range restartReasons {
		m.restarts[r] = m.set.NewCounter(series(mRestarts, "reason", r))
	}
	for _, r := range commandResults {
		m.commands[r] = m.set.NewCounter(series(mCommands, "result", r))
	}
	// A family without a series yet still shows its HELP and TYPE lines.
	m.set.RegisterMetricsWriter(func(w io.Writer) {
		names := m.set.ListMetricNames()
		for _, fam := range []struct{ name, typ string }{{mRequests, "counter"}, {mLeaseExpiry, "gauge"}, {mCertExpiry, "gauge"}} {
			if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, fam.name+"{") }) {
				metrics.WriteMetadataIfNeeded(w, fam.name, fam.typ)
			}
		}
	})
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
	m.set.GetOrCreateCounter(series(mRequests, "route", route, "code", code)).Inc()
}

// write sets the gauges from v and writes every metric to w.
func (m *statusMetrics) write(w io.Writer, v view) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(name string, val float64) { m.set.GetOrCreateGauge(name, nil).Set(val) }
	gauge(mChildUp, b2f(v.Child.Up))
	st := v.Watch
	var secrets int
	var events bool
	now := map[string]bool{}
	if st == nil {
		gauge(mLastRefresh, float64(v.Started.Unix())) // nothing watched: the start-up read all
	} else {
		secrets, events = len(st.Secrets), st.EventsConnected
		gauge(mLastRefresh, float64(st.LastSuccess.Unix()))
		// One series per engine/role and per role: the earliest end
		// among the leases (certificates) that share it.
		ends := map[string]int64{}
		for _, l := range st.Leases {
			earliest(ends, series(mLeaseExpiry, "engine", l.Engine, "role", l.Role), l.ExpiresAt.Unix())
		}
		for _, c := range st.Certs {
			earliest(ends, series(mCertExpiry, "role", certRole(c)), c.ExpiresAt.Unix())
		}
		for name, end := range ends {
			gauge(name, float64(end))
			now[name] = true
		}
	}
	for name := range m.labeled {
		if !now[name] {
			m.set.UnregisterMetric(name)
		}
	}
	m.labeled = now
	gauge(mSecretsWatched, float64(secrets))
	gauge(mEventsUp, b2f(events))
	gauge(mStateFallback, b2f(v.Fallback != nil))
	m.set.GetOrCreateCounter(series(mStateWrites, "result", "ok")).Set(v.StateWrites)
	m.set.GetOrCreateCounter(series(mStateWrites, "result", "failed")).Set(v.StateWriteFailures)
	m.set.WritePrometheus(w)
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

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// series is name{k1="v1",k2="v2"}, the values escaped for the text format.
func series(name string, kv ...string) string {
	var b strings.Builder
	b.WriteString(name)
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
