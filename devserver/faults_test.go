package devserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestFaultsNext(t *testing.T) {
	h := newHarness(t, testSeed())
	h.s.SetFaults(Faults{Next: 2, PathPrefix: "/v1/secrets/batch-read"})
	batch := map[string]any{"paths": []string{"app/db"}}
	h.do("GET", "/v1/secrets/app/db", rootTok, nil).want(t, 200) // other path: untouched
	for i := 0; i < 2; i++ {
		r := h.do("POST", "/v1/secrets/batch-read", rootTok, batch)
		r.wantErr(t, 503, fetch.CodeUnavailable)
		if r.header.Get("Retry-After") != "" {
			t.Errorf("503 with Retry-After %q; want none by default", r.header.Get("Retry-After"))
		}
	}
	h.do("POST", "/v1/secrets/batch-read", rootTok, batch).want(t, 200)
	if n := h.s.Requests("POST /v1/secrets/batch-read"); n != 3 {
		t.Fatalf("batch-read count %d, want 3 (faulted ones count)", n)
	}
	if n := h.s.Requests("GET /v1/secrets/{path}"); n != 1 {
		t.Fatalf("read count %d", n)
	}
	if n := h.s.Requests(""); n != 4 {
		t.Fatalf("total %d", n)
	}
}

func TestFaults429(t *testing.T) {
	h := newHarness(t, testSeed())
	h.s.SetFaults(Faults{Next: 1, Status: 429})
	r := h.do("GET", "/v1/secrets/app/db", rootTok, nil)
	e := r.wantErr(t, 429, fetch.CodeRateLimited)
	if r.header.Get("Retry-After") != "1" || e.Details["retry_after"] != float64(1) {
		t.Fatalf("429: Retry-After %q details %v", r.header.Get("Retry-After"), e.Details)
	}
	h.s.SetFaults(Faults{Next: 1, Status: 429, RetryAfter: 7})
	r = h.do("GET", "/v1/secrets/app/db", rootTok, nil)
	if e := r.wantErr(t, 429, fetch.CodeRateLimited); r.header.Get("Retry-After") != "7" || e.Details["retry_after"] != float64(7) {
		t.Fatalf("429: Retry-After %q details %v", r.header.Get("Retry-After"), e.Details)
	}
	h.s.SetFaults(Faults{Next: 1, Status: 503, RetryAfter: 2})
	if r := h.do("GET", "/v1/secrets/app/db", rootTok, nil); r.header.Get("Retry-After") != "2" {
		t.Fatalf("503 Retry-After %q", r.header.Get("Retry-After"))
	}
	h.s.SetFaults(Faults{Next: 1, Status: 401})
	h.do("GET", "/v1/secrets/app/db", rootTok, nil).wantErr(t, 401, fetch.CodeInvalidToken)
	h.do("GET", "/v1/secrets/app/db", rootTok, nil).want(t, 200)
	// Rate 1 answers everything; rate 0 nothing.
	h.s.SetFaults(Faults{Rate: 1})
	h.do("GET", "/v1/secrets/app/db", rootTok, nil).wantErr(t, 503, fetch.CodeUnavailable)
	h.do("GET", "/v1/dev/stats", rootTok, nil).want(t, 200) // dev endpoints are never faulted
	h.s.SetFaults(Faults{})
	h.do("GET", "/v1/secrets/app/db", rootTok, nil).want(t, 200)
}

func TestDevFaultsOverHTTP(t *testing.T) {
	h := newHarness(t, testSeed())
	var got faultsJSON
	h.do("POST", "/v1/dev/faults", rootTok, map[string]any{"next": 1, "status": 503, "retry_after": 1,
		"latency": "1ms", "path_prefix": "/v1/secrets/"}).want(t, 200).decode(t, &got)
	if got.Next != 1 || got.Latency != "1ms" {
		t.Fatalf("faults %+v", got)
	}
	start := time.Now()
	r := h.do("GET", "/v1/secrets/app/db", rootTok, nil)
	r.wantErr(t, 503, fetch.CodeUnavailable)
	if r.header.Get("Retry-After") != "1" || time.Since(start) < time.Millisecond {
		t.Fatalf("Retry-After %q after %v", r.header.Get("Retry-After"), time.Since(start))
	}
	h.do("GET", "/v1/dev/faults", rootTok, nil).want(t, 200).decode(t, &got)
	if got.Next != 0 {
		t.Fatalf("next not used up: %+v", got)
	}
	for _, bad := range []string{`{"rate":2}`, `{"status":200}`, `{"latency":"x"}`, `{"next":-1}`, `{"bogus":1}`} {
		h.do("POST", "/v1/dev/faults", rootTok, bad).wantErr(t, 400, fetch.CodeValidation)
	}
	h.do("POST", "/v1/dev/faults", rootTok, `{}`).want(t, 200)
	var stats struct {
		Total  int64            `json:"total"`
		Routes map[string]int64 `json:"routes"`
	}
	h.do("GET", "/v1/dev/stats", rootTok, nil).want(t, 200).decode(t, &stats)
	if stats.Total != 1 || stats.Routes["GET /v1/secrets/{path}"] != 1 || len(stats.Routes) != 1 {
		raw, _ := json.Marshal(stats)
		t.Fatalf("stats %s", raw)
	}
}

func TestOptionsFaultRate(t *testing.T) {
	h := newHarness(t, testSeed(), func(o *Options) { o.FaultRate = 1 })
	r := h.do("GET", "/v1/secrets/app/db", rootTok, nil)
	r.wantErr(t, 503, fetch.CodeUnavailable)
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if _, err := New(Options{FaultRate: 1.5}); err == nil {
		t.Fatal("fault rate 1.5 accepted")
	}
}
