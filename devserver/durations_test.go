package devserver

import (
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// Request durations: bare seconds ("90"), compound forms, days; negative,
// zero where a positive one is needed, and JSON numbers are clear 400s.
// Every field that takes a duration is covered: generate ttl, renew
// increment, issue ttl and rotate grace_period.
func TestRequestDurations(t *testing.T) {
	h := newHarness(t, testSeed())
	generate := func(body string) *resp {
		return h.do("POST", "/v1/dynamic/support-db/creds/readonly", rootTok, body)
	}
	tests := []struct {
		name    string
		send    func(body string) *resp
		body    string
		want    time.Duration // of the lease, certificate or grace period
		wantErr string        // in the 400's message
	}{
		{"ttl bare seconds", generate, `{"ttl":"90"}`, 90 * time.Second, ""},
		{"ttl bare seconds, spaces", generate, `{"ttl":" 3600 "}`, time.Hour, ""},
		{"ttl go form", generate, `{"ttl":"90s"}`, 90 * time.Second, ""},
		{"ttl compound", generate, `{"ttl":"1h30m"}`, 90 * time.Minute, ""},
		{"ttl days, capped at max_ttl", generate, `{"ttl":"90d"}`, 24 * time.Hour, ""},
		{"ttl days and hours", generate, `{"ttl":"0d12h"}`, 12 * time.Hour, ""},
		{"ttl left out: the role's", generate, `{}`, time.Hour, ""},
		{"ttl negative seconds", generate, `{"ttl":"-90"}`, 0, `ttl: negative duration "-90"`},
		{"ttl negative compound", generate, `{"ttl":"-1h30m"}`, 0, `ttl: negative duration "-1h30m"`},
		{"ttl zero", generate, `{"ttl":"0"}`, 0, "ttl: must be positive"},
		{"ttl no unit after a fraction", generate, `{"ttl":"1.5"}`, 0, `ttl: invalid duration "1.5"`},
		{"ttl JSON number", generate, `{"ttl":90}`, 0, `ttl: want a duration string such as "90s", "1h30m", "90d" or "90" (seconds), not a JSON number`},
		{"ttl JSON bool", generate, `{"ttl":true}`, 0, "ttl: want a string"},

		{"increment bare seconds", h.renewer(), `{"increment":"90"}`, 90 * time.Second, ""},
		{"increment days, capped", h.renewer(), `{"increment":"2d"}`, 24 * time.Hour, ""},
		{"increment negative", h.renewer(), `{"increment":"-90"}`, 0, `increment: negative duration "-90"`},
		{"increment JSON number", h.renewer(), `{"increment":90}`, 0, "increment: want a duration string"},

		{"certificate ttl bare seconds", h.issuer(), `{"common_name":"a.svc.cluster.local","ttl":"90"}`, 90 * time.Second, ""},
		{"certificate ttl compound", h.issuer(), `{"common_name":"a.svc.cluster.local","ttl":"1h30m"}`, 90 * time.Minute, ""},
		{"certificate ttl days", h.issuer(), `{"common_name":"a.svc.cluster.local","ttl":"7d"}`, 7 * 24 * time.Hour, ""},
		{"certificate ttl negative", h.issuer(), `{"common_name":"a.svc.cluster.local","ttl":"-90"}`, 0, `ttl: negative duration "-90"`},
		{"certificate ttl JSON number", h.issuer(), `{"common_name":"a.svc.cluster.local","ttl":90}`, 0, "ttl: want a duration string"},

		{"grace bare seconds", h.rotator(), `{"grace_period":"90"}`, 90 * time.Second, ""},
		{"grace compound", h.rotator(), `{"grace_period":"1h30m"}`, 90 * time.Minute, ""},
		{"grace days", h.rotator(), `{"grace_period":"1d"}`, 24 * time.Hour, ""},
		{"grace zero: ends at once", h.rotator(), `{"grace_period":"0"}`, 0, ""},
		{"grace negative", h.rotator(), `{"grace_period":"-90"}`, 0, `grace_period: negative duration "-90"`},
		{"grace JSON number", h.rotator(), `{"grace_period":90}`, 0, "grace_period: want a duration string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send(tt.body)
			if tt.wantErr != "" {
				e := r.wantErr(t, 400, fetch.CodeValidation)
				if !strings.Contains(e.Message, tt.wantErr) {
					t.Fatalf("message %q, want it to contain %q", e.Message, tt.wantErr)
				}
				return
			}
			r.want(t, 200)
			if got := answerDuration(t, r, h.clock.Now()); got != tt.want {
				t.Fatalf("%s: duration %v, want %v", tt.body, got, tt.want)
			}
		})
	}
}

// answerDuration is how long a lease, certificate or grace period runs
// from now, read from the answer.
func answerDuration(t *testing.T, r *resp, now time.Time) time.Duration {
	t.Helper()
	var a struct {
		LeaseID   string         `json:"lease_id"`
		ExpiresAt time.Time      `json:"expires_at"`
		Rotation  fetch.Rotation `json:"rotation"`
	}
	r.decode(t, &a)
	switch {
	case a.Rotation.GracePeriodEndsAt != nil:
		return a.Rotation.GracePeriodEndsAt.Sub(now)
	case !a.ExpiresAt.IsZero():
		return a.ExpiresAt.Sub(now)
	}
	t.Fatalf("no duration in %s", r.body)
	return 0
}

// renewer sends a body to the renew call of a fresh lease.
func (h *harness) renewer() func(string) *resp {
	return func(body string) *resp {
		l := h.generate("support-db/creds/readonly", rootTok, nil)
		return h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, body)
	}
}

func (h *harness) issuer() func(string) *resp {
	return func(body string) *resp { return h.do("POST", "/v1/pki/issue/svc-mtls", rootTok, body) }
}

func (h *harness) rotator() func(string) *resp {
	return func(body string) *resp { return h.do("POST", "/v1/secrets/app/db/rotate", rootTok, body) }
}
