package fetch_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

// policySeed gives the client "app" a dynamic and a pki permission besides
// its reads, and "ops" only a pki one.
const policySeed = `{
  "root_token": "root-SECRET-tok-0001",
  "clients": [
    {"client_id": "app", "client_secret": "app-SECRET-0002", "policies": ["app-read", "app-dynamic"]},
    {"client_id": "ops", "client_secret": "ops-SECRET-0004", "policies": ["ops-pki"]}
  ],
  "policies": {
    "app-read": [{"path_pattern": "app/**", "permissions": ["read", "list"]}],
    "app-dynamic": [{"path_pattern": "dynamic/support-db/*", "permissions": ["dynamic"]}],
    "ops-pki": [{"path_pattern": "pki/svc-*", "permissions": ["pki"]}]
  },
  "secrets": {"app/db": {"data": {"password": "pw-SECRET-db-1"}}},
  "dynamic": {"support-db": {"kind": "random", "roles": {"readonly": {"ttl": "1h"}}}},
  "pki": {"roles": {"svc-mtls": {"allowed_domains": ["svc.cluster.local"], "allow_subdomains": true}}}
}`

const policyRoute = "POST /v1/policies/test"

// wantDecision checks an answer: allowed by policy, or denied ("").
func wantDecision(t *testing.T, what string, d *fetch.PolicyDecision, err error, policy string) {
	t.Helper()
	noteErr(err)
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case policy == "" && (d.Allowed || d.Policy != nil):
		t.Errorf("%s: allowed by %v, want denied", what, *d.Policy)
	case policy != "" && (!d.Allowed || d.Policy == nil || *d.Policy != policy):
		t.Errorf("%s: %+v, want allowed by %q", what, d, policy)
	}
}

func TestTestPolicy(t *testing.T) {
	h := newHarness(t, policySeed)
	ctx := ctxT(t)
	app := h.client(t, asClient("app", "app-SECRET-0002"))
	root := h.client(t, nil)

	// The caller's own identity; nothing is created.
	d, err := app.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "dynamic/support-db/readonly", Permission: "dynamic",
		Context: map[string]any{"source_ip": "10.0.1.50"}})
	wantDecision(t, "app: dynamic", d, err, "app-dynamic")
	if n := h.srv.ActiveLeases(); n != 0 {
		t.Errorf("%d leases after a policy test", n)
	}
	d, err = app.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "pki/svc-mtls", Permission: "pki"})
	wantDecision(t, "app: pki", d, err, "")
	d, err = app.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "app/db", Permission: "read", IdentityID: "app"})
	wantDecision(t, "app: read, naming itself", d, err, "app-read")
	// A role that does not exist: the policy's answer all the same.
	d, err = app.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "dynamic/support-db/no-such-role", Permission: "dynamic"})
	wantDecision(t, "app: dynamic on a missing role", d, err, "app-dynamic")

	// Another identity needs the root token.
	d, err = root.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "pki/svc-mtls", Permission: "pki", IdentityID: "ops"})
	wantDecision(t, "root for ops: pki", d, err, "ops-pki")
	d, err = root.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "dynamic/support-db/readonly", Permission: "dynamic", IdentityID: "ops"})
	wantDecision(t, "root for ops: dynamic", d, err, "")
	d, err = root.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "app/db", Permission: "delete"})
	wantDecision(t, "root itself", d, err, "root")
	_, err = app.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "pki/svc-mtls", Permission: "pki", IdentityID: "ops"})
	mustFail(t, err, fetch.ErrAccessDenied)
	if want := `test permission pki on "pki/svc-mtls" for identity "ops": `; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want the prefix %q", err, want)
	}
	_, err = root.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "app/db", Permission: "read", IdentityID: "nobody"})
	mustFail(t, err, fetch.ErrNotFound)
	_, err = app.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "app/db", Permission: "admin"})
	mustFail(t, err, fetch.ErrValidation)
	var apiErr *fetch.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, `unknown permission "admin"`) {
		t.Errorf("unknown permission: %v", err)
	}

	// Invalid requests are not sent.
	before := h.srv.Requests(policyRoute)
	for _, req := range []fetch.PolicyTestRequest{
		{Path: "app/../db", Permission: "read"},
		{Path: "", Permission: "read"},
		{Path: "app/db"},
	} {
		_, err := app.TestPolicy(ctx, req)
		noteErr(err)
		if err == nil {
			t.Errorf("%+v: no error", req)
		}
	}
	if n := h.srv.Requests(policyRoute) - before; n != 0 {
		t.Errorf("%d invalid policy tests sent", n)
	}
}

// TestPolicy goes the way of every call: retried after a 503, and after a
// 401 invalid_token once with a fresh token.
func TestTestPolicyRetries(t *testing.T) {
	h := newHarness(t, policySeed)
	ctx := ctxT(t)
	app := h.client(t, asClient("app", "app-SECRET-0002"))
	req := fetch.PolicyTestRequest{Path: "dynamic/support-db/readonly", Permission: "dynamic"}

	h.srv.SetFaults(devserver.Faults{Next: 2, Status: http.StatusServiceUnavailable, PathPrefix: "/v1/policies/test"})
	d, err := app.TestPolicy(ctx, req)
	wantDecision(t, "after two 503s", d, err, "app-dynamic")
	if n := h.srv.Requests(policyRoute); n != 3 {
		t.Errorf("%d requests, want 3 (two 503s, then the answer)", n)
	}

	tokens := h.srv.Requests("POST /v1/auth/token")
	h.srv.SetFaults(devserver.Faults{Next: 1, Status: http.StatusUnauthorized, PathPrefix: "/v1/policies/test"})
	d, err = app.TestPolicy(ctx, req)
	wantDecision(t, "after a 401", d, err, "app-dynamic")
	if n := h.srv.Requests("POST /v1/auth/token") - tokens; n != 1 {
		t.Errorf("%d token requests after a 401, want 1", n)
	}
}
