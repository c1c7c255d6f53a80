//go:build linux

package run

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
)

// TestStatusEndpointPhases runs Launch for real with --status-addr against
// the dev server, the child on a static secret and a renewed lease, and
// scrapes the endpoint as things happen: renewals move the lease's expiry
// on and the last refresh with it, a rotation restarts the child and
// counts as a secret restart, faults with the events stream cut make
// /readyz 503 naming the secret and it turns 200 again once repaired;
// /status never shows a value.
func TestStatusEndpointPhases(t *testing.T) {
	p := startPhase(t, refDBPassword, func(p *phase, o *Options) {
		o.StatusAddr = "127.0.0.1:0"
		o.Env.Env = append(o.Env.Env, "SVTEST_LEASE="+refRenew)
	})
	addr := p.log.await(t, `status endpoint listening" addr=(\S+)`, 1)[1]
	base := "http://" + addr
	pid := p.ready("pw-SECRET-1")
	sc := &scraper{t: t, base: base}

	if code, body := sc.get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	sc.until("/readyz", func(code int, _ string) bool { return code == 200 })
	m0 := sc.metrics()
	if m0["scaivault_run_child_up"] != 1 || m0[`scaivault_run_child_restarts_total{reason="secret"}`] != 0 ||
		m0["scaivault_run_secrets_watched"] != 1 || m0[`scaivault_run_requests_total{route="/v1/secrets/batch-read",code="200"}`] < 1 {
		t.Errorf("first scrape: %v", m0)
	}
	lease := `scaivault_run_lease_expiry_timestamp_seconds{engine="db",role="renew"}`
	if m0[lease] == 0 || m0["scaivault_run_last_refresh_success_timestamp_seconds"] == 0 {
		t.Fatalf("no lease expiry or last refresh in %v", m0)
	}

	// Renewals (every 2s of the 3s lease): the expiry moves on, and so
	// does the last successful refresh.
	m1 := sc.metricsUntil(func(m map[string]float64) bool {
		return m[lease] > m0[lease] && m["scaivault_run_last_refresh_success_timestamp_seconds"] > m0["scaivault_run_last_refresh_success_timestamp_seconds"]
	})
	if m1[`scaivault_run_requests_total{route="/v1/dynamic/leases/{lease_id}/renew",code="200"}`] < 1 {
		t.Errorf("no renewal counted: %v", m1)
	}

	// A rotation: the child restarts, for a secret.
	p.write("app/db", map[string]any{"password": "pw-SECRET-2", "username": "app"})
	pid = p.restarted(pid, "pw-SECRET-2")
	m2 := sc.metricsUntil(func(m map[string]float64) bool { return m[`scaivault_run_child_restarts_total{reason="secret"}`] == 1 })
	if m2["scaivault_run_child_up"] != 1 {
		t.Errorf("child_up after the restart: %v", m2)
	}
	var doc statusDoc
	_, raw := sc.get("/status")
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("/status: %v\n%s", err, raw)
	}
	if doc.Child == nil || strconv.Itoa(doc.Child.Pid) != pid || doc.Child.Restarts != 1 || !doc.Ready {
		t.Errorf("/status child %+v ready %v, want pid %s after 1 restart", doc.Child, doc.Ready, pid)
	}
	var sawSecret, sawLease bool
	for _, r := range doc.References {
		sawSecret = sawSecret || (r.Kind == "secret" && r.Path == "app/db" && r.Version == 2)
		sawLease = sawLease || (r.Kind == "lease" && r.Engine == "db" && r.Role == "renew" && r.LeaseID != "" && !r.ExpiresAt.IsZero())
	}
	if !sawSecret || !sawLease {
		t.Errorf("/status references %+v", doc.References)
	}
	noValues(t, p, raw)

	// Faults: every request answered 503 and the events stream cut. The
	// secret goes stale after 2 poll intervals (200ms each): 503.
	p.srv.SetFaults(devserver.Faults{Rate: 1})
	p.hs.CloseClientConnections()
	_, body := sc.until("/readyz", func(code int, _ string) bool { return code == 503 })
	if !strings.Contains(body, `"reference": "app/db"`) || !strings.Contains(body, "events stream is down") {
		t.Errorf("/readyz while stale: %s", body)
	}
	noValues(t, p, body)
	if m := sc.metrics(); m["scaivault_run_events_connected"] != 0 {
		t.Errorf("events_connected with the stream cut: %v", m["scaivault_run_events_connected"])
	}
	_, raw = sc.get("/status")
	noValues(t, p, raw)

	// Repaired: 200 again.
	p.srv.SetFaults(devserver.Faults{})
	sc.until("/readyz", func(code int, _ string) bool { return code == 200 })
	_, raw = sc.get("/metrics")
	noValues(t, p, raw)

	p.cancel()
	if code, err := p.wait(); err != nil {
		t.Fatalf("Launch: %d %v", code, err)
	}
}

// noValues fails when body holds a value the server holds or handed out.
func noValues(t *testing.T, p *phase, body string) {
	t.Helper()
	for _, v := range append(p.srv.SecretValues(), "pw-SECRET-1", "pw-SECRET-2") {
		if strings.Contains(body, v) {
			t.Errorf("a secret value shows in the status endpoint's answer: %.4s…", v)
		}
	}
}

// scraper reads the status endpoint; until and metricsUntil poll it (there
// is no event to wait on from outside) every 20ms, for at most deadline.
type scraper struct {
	t    *testing.T
	base string
}

func (s *scraper) get(path string) (int, string) {
	s.t.Helper()
	resp, err := (&http.Client{Timeout: deadline}).Get(s.base + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	if path == "/metrics" && resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		s.t.Errorf("/metrics Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

func (s *scraper) until(path string, ok func(int, string) bool) (int, string) {
	s.t.Helper()
	end := time.Now().Add(deadline)
	for {
		code, body := s.get(path)
		if ok(code, body) {
			return code, body
		}
		if time.Now().After(end) {
			s.t.Fatalf("GET %s: still %d %s after %v", path, code, body, deadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var sampleLine = regexp.MustCompile(`(?m)^([a-z_]+(?:\{.*\})?) (\S+)$`)

// metrics is one scrape as series → value.
func (s *scraper) metrics() map[string]float64 {
	s.t.Helper()
	_, body := s.get("/metrics")
	out := map[string]float64{}
	for _, m := range sampleLine.FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			s.t.Fatalf("sample %q: %v", m[0], err)
		}
		out[m[1]] = v
	}
	return out
}

func (s *scraper) metricsUntil(ok func(map[string]float64) bool) map[string]float64 {
	s.t.Helper()
	var m map[string]float64
	s.until("/metrics", func(int, string) bool { m = s.metrics(); return ok(m) })
	return m
}
