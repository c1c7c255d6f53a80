package devserver

import (
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// policyTest posts a body to POST /v1/policies/test.
func (h *harness) policyTest(token string, body any) *resp {
	h.t.Helper()
	return h.do("POST", "/v1/policies/test", token, body)
}

func (r *resp) decision(t *testing.T) fetch.PolicyDecision {
	t.Helper()
	r.want(t, 200)
	var d fetch.PolicyDecision
	r.decode(t, &d)
	if d.Allowed != (d.Policy != nil) {
		t.Fatalf("allowed %v with policy %v: %s", d.Allowed, d.Policy, r.body)
	}
	return d
}

func TestPolicyTestAllowedAndDenied(t *testing.T) {
	h := newHarness(t, testSeed())
	ops := h.token("ops", "ops-secret")
	app := h.token("app", "app-secret")
	for _, tt := range []struct {
		token, path, permission string
		policy                  string // "": denied
	}{
		{ops, "dynamic/support-db/readonly", "dynamic", "ops"},
		{ops, "dynamic/other-db/readonly", "dynamic", ""},
		{ops, "pki/svc-mtls", "pki", "ops"},
		{ops, "pki/rsa-role", "pki", ""},
		{ops, "app/db", "read", "ops"},
		{ops, "app/db", "write", ""},
		{app, "app/db", "read", "app-read"},
		{app, "app/config", "list", "app-read"},
		{app, "other/secret", "read", ""},
		{app, "dynamic/support-db/readonly", "dynamic", ""},
		{app, "acme/letsencrypt", "acme", ""},
		{rootTok, "dynamic/support-db/readonly", "dynamic", "root"},
		{rootTok, "acme/letsencrypt", "acme", "root"},
	} {
		d := h.policyTest(tt.token, map[string]any{"path": tt.path, "permission": tt.permission}).decision(t)
		got := ""
		if d.Allowed {
			got = *d.Policy
		}
		if got != tt.policy {
			t.Errorf("%s on %s: policy %q, want %q (\"\": denied)", tt.permission, tt.path, got, tt.policy)
		}
	}
	// A denial is null, not left out.
	r := h.policyTest(app, map[string]any{"path": "other/secret", "permission": "read"})
	if !strings.Contains(string(r.body), `"policy":null`) || !strings.Contains(string(r.body), `"allowed":false`) {
		t.Errorf("denial %s", r.body)
	}
	// context is taken (the dev server's policies have no conditions).
	d := h.policyTest(ops, map[string]any{"path": "dynamic/support-db/readonly", "permission": "dynamic",
		"context": map[string]any{"source_ip": "10.0.1.50"}}).decision(t)
	if !d.Allowed {
		t.Errorf("with context: denied")
	}
}

// The answer agrees with what the real calls are allowed, whether or not
// the resource exists: it says nothing about existence.
func TestPolicyTestAgreesWithHandlers(t *testing.T) {
	h := newHarness(t, testSeed())
	ops := h.token("ops", "ops-secret")
	for _, tt := range []struct {
		test map[string]any
		call func() *resp
	}{
		{map[string]any{"path": "dynamic/support-db/readonly", "permission": "dynamic"},
			func() *resp { return h.do("POST", "/v1/dynamic/support-db/creds/readonly", ops, nil) }},
		{map[string]any{"path": "dynamic/support-db/no-such-role", "permission": "dynamic"},
			func() *resp { return h.do("POST", "/v1/dynamic/support-db/creds/no-such-role", ops, nil) }},
		{map[string]any{"path": "dynamic/no-such-engine/readonly", "permission": "dynamic"},
			func() *resp { return h.do("POST", "/v1/dynamic/no-such-engine/creds/readonly", ops, nil) }},
		{map[string]any{"path": "pki/svc-mtls", "permission": "pki"},
			func() *resp {
				return h.do("POST", "/v1/pki/issue/svc-mtls", ops, map[string]any{"common_name": "a.svc.cluster.local"})
			}},
		{map[string]any{"path": "pki/no-such-role", "permission": "pki"},
			func() *resp {
				return h.do("POST", "/v1/pki/issue/no-such-role", ops, map[string]any{"common_name": "x"})
			}},
		{map[string]any{"path": "app/db", "permission": "read"},
			func() *resp { return h.do("GET", "/v1/secrets/app/db", ops, nil) }},
		{map[string]any{"path": "app/missing", "permission": "read"},
			func() *resp { return h.do("GET", "/v1/secrets/app/missing", ops, nil) }},
		{map[string]any{"path": "app/config", "permission": "read"},
			func() *resp { return h.do("GET", "/v1/secrets/app/config", ops, nil) }},
	} {
		d := h.policyTest(ops, tt.test).decision(t)
		r := tt.call()
		if denied := r.status == 403; denied == d.Allowed {
			t.Errorf("%v: test says allowed %v, the call answers %d", tt.test, d.Allowed, r.status)
		}
	}
	// A nonexistent engine, role or secret still gets a plain answer: the
	// policy's, as for one that exists.
	for _, tt := range []struct {
		token, path, permission string
		allowed                 bool
	}{
		{ops, "dynamic/support-db/no-such-role", "dynamic", true},
		{ops, "dynamic/no-such-engine/readonly", "dynamic", false},
		{ops, "pki/no-such-role", "pki", false},
		{rootTok, "nothing/here", "delete", true},
	} {
		d := h.policyTest(tt.token, map[string]any{"path": tt.path, "permission": tt.permission}).decision(t)
		if d.Allowed != tt.allowed {
			t.Errorf("%s on %s (nonexistent): allowed %v, want %v", tt.permission, tt.path, d.Allowed, tt.allowed)
		}
	}
}

func TestPolicyTestOtherIdentity(t *testing.T) {
	h := newHarness(t, testSeed())
	app := h.token("app", "app-secret")
	body := func(id string) map[string]any {
		return map[string]any{"path": "dynamic/support-db/readonly", "permission": "dynamic", "identity_id": id}
	}
	// The root token may test any identity.
	if d := h.policyTest(rootTok, body("ops")).decision(t); !d.Allowed || *d.Policy != "ops" {
		t.Errorf("root testing ops: %+v", d)
	}
	if d := h.policyTest(rootTok, body("app")).decision(t); d.Allowed {
		t.Errorf("root testing app: allowed by %s", *d.Policy)
	}
	if d := h.policyTest(rootTok, body("root")).decision(t); !d.Allowed || *d.Policy != "root" {
		t.Errorf("root testing itself by name: %+v", d)
	}
	// Any token may test itself, by name too.
	if d := h.policyTest(app, body("app")).decision(t); d.Allowed {
		t.Errorf("app testing itself: allowed")
	}
	// Another identity without the root token: 403, whether or not it exists.
	for _, id := range []string{"ops", "root", "nobody"} {
		e := h.policyTest(app, body(id)).wantErr(t, 403, fetch.CodeAccessDenied)
		if e.Details["permission"] != "root" || e.Details["identity_id"] != id || !strings.Contains(e.Message, "root token") {
			t.Errorf("app testing %s: %q %v", id, e.Message, e.Details)
		}
	}
	// An unknown identity, asked by root: 404.
	e := h.policyTest(rootTok, body("nobody")).wantErr(t, 404, fetch.CodeNotFound)
	if !strings.Contains(e.Message, `identity "nobody" not found`) {
		t.Errorf("unknown identity: %q", e.Message)
	}
}

func TestPolicyTestBadRequests(t *testing.T) {
	h := newHarness(t, testSeed())
	app := h.token("app", "app-secret")
	for _, tt := range []struct {
		body any
		want string
	}{
		{map[string]any{"path": "app/db", "permission": "admin"}, `permission: unknown permission "admin"`},
		{map[string]any{"path": "app/db", "permission": "READ"}, `permission: unknown permission "READ"`},
		{map[string]any{"path": "app/db"}, "permission: required"},
		{map[string]any{"permission": "read"}, "path: required"},
		{map[string]any{"path": "app/../db", "permission": "read"}, `path: secret path "app/../db": segment 2`},
		{map[string]any{"path": "/app/db", "permission": "read"}, "segment 1: empty segment"},
		{map[string]any{"path": "support-db/readonly", "permission": "dynamic"}, "permission dynamic is tested on dynamic/ENGINE/ROLE"},
		{map[string]any{"path": "dynamic/support-db", "permission": "dynamic"}, "dynamic/ENGINE/ROLE"},
		{map[string]any{"path": "pki/a/b", "permission": "pki"}, "permission pki is tested on pki/ROLE"},
		{map[string]any{"path": "x/y", "permission": "acme"}, "acme/ACCOUNT_NAME"},
		{map[string]any{"path": "app/db", "permission": "read", "context": "x"}, "context: want an object"},
		{map[string]any{"path": "app/db", "permission": "read", "identity": "app"}, `unknown field "identity"`},
		{map[string]any{"path": "app/db", "permission": "read", "identity_id": 7}, "identity_id: want a string"},
		{"", "request body: want a JSON object"},
	} {
		e := h.policyTest(app, tt.body).wantErr(t, 400, fetch.CodeValidation)
		if !strings.Contains(e.Message, tt.want) {
			t.Errorf("%v: message %q, want %q", tt.body, e.Message, tt.want)
		}
	}
	// A bad permission is a 400 even when asked about another identity.
	h.policyTest(app, map[string]any{"path": "app/db", "permission": "admin", "identity_id": "ops"}).
		wantErr(t, 400, fetch.CodeValidation)
	// No token: 401.
	h.policyTest("", map[string]any{"path": "app/db", "permission": "read"}).wantErr(t, 401, fetch.CodeAuthFailed)
	if n := h.s.Requests("POST /v1/policies/test"); n == 0 {
		t.Error("policy tests not counted")
	}
}
