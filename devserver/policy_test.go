package devserver

import (
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"app/db", "app/db", true},
		{"app/db", "app/db2", false},
		{"app/*", "app/db", true},
		{"app/*", "app", false},
		{"app/*", "app/db/x", false},
		{"app/*-db", "app/main-db", true},
		{"app/*-db", "app/main-api", false},
		{"app/**", "app", false},
		{"app/**", "app/db", true},
		{"app/**", "app/db/x/y", true},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/db", "db", false},
		{"**/db", "x/db", true},
		{"**/db", "x/y/db", true},
		{"**/db", "x/y/db2", false},
		{"a/**/z", "a/z", false},
		{"a/**/z", "a/b/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"dynamic/support-db/*", "dynamic/support-db/readonly", true},
		{"dynamic/*/readonly", "dynamic/other/readonly", true},
		{"pki/svc-mtls", "pki/svc-mtls", true},
	}
	for _, tc := range cases {
		pat, err := compilePattern(tc.pattern)
		if err != nil {
			t.Fatalf("compile %q: %v", tc.pattern, err)
		}
		if got := matchPattern(pat, strings.Split(tc.path, "/")); got != tc.want {
			t.Errorf("%q vs %q: got %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestCompilePatternErrors(t *testing.T) {
	for _, p := range []string{"", "a//b", "a/../b", "a/b**", "a/**x", "a/b c", "/a"} {
		if _, err := compilePattern(p); err == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
}

func TestPermissions(t *testing.T) {
	h := newHarness(t, testSeed())
	app := h.token("app", "app-secret")
	ops := h.token("ops", "ops-secret")

	// No existence leak: same 403 for a path that exists and one that does not.
	for _, p := range []string{"other/secret", "other/missing"} {
		e := h.do("GET", "/v1/secrets/"+p, app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
		if e.Details["path"] != p || e.Details["permission"] != "read" {
			t.Errorf("%s: details %v", p, e.Details)
		}
	}
	// Read-only policy may not write, delete or rotate.
	h.do("PUT", "/v1/secrets/app/db", app, map[string]any{"data": map[string]any{}}).wantErr(t, 403, fetch.CodeAccessDenied)
	e := h.do("DELETE", "/v1/secrets/app/db", app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
	if e.Details["permission"] != "delete" {
		t.Errorf("delete details %v", e.Details)
	}
	h.do("POST", "/v1/secrets/app/db/rotate", app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
	// Readable but absent: 404.
	h.do("GET", "/v1/secrets/app/missing", app, nil).wantErr(t, 404, fetch.CodeNotFound)

	// dynamic and pki are matched against dynamic/ENGINE/ROLE and pki/ROLE.
	h.do("POST", "/v1/dynamic/support-db/creds/readonly", app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
	h.do("POST", "/v1/dynamic/support-db/creds/readonly", ops, nil).want(t, 200)
	e = h.do("POST", "/v1/dynamic/other/creds/x", ops, nil).wantErr(t, 403, fetch.CodeAccessDenied)
	if e.Details["path"] != "dynamic/other/x" || e.Details["permission"] != "dynamic" {
		t.Errorf("dynamic details %v", e.Details)
	}
	h.do("POST", "/v1/pki/issue/svc-mtls", app, map[string]any{"common_name": "a.svc.cluster.local"}).
		wantErr(t, 403, fetch.CodeAccessDenied)
	h.do("POST", "/v1/pki/issue/svc-mtls", ops, map[string]any{"common_name": "a.svc.cluster.local"}).want(t, 200)
	// ops may read app/db only.
	h.do("GET", "/v1/secrets/app/db", ops, nil).want(t, 200)
	h.do("GET", "/v1/secrets/app/config", ops, nil).wantErr(t, 403, fetch.CodeAccessDenied)
	// Dev endpoints are root only.
	h.do("GET", "/v1/dev/stats", app, nil).wantErr(t, 403, fetch.CodeAccessDenied)
}
