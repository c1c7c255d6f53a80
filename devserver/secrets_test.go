package devserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestReadETagAndNotModified(t *testing.T) {
	h := newHarness(t, testSeed())
	r := h.do("GET", "/v1/secrets/app/db", rootTok, nil).want(t, 200)
	for k, want := range map[string]string{"ETag": `"1"`, "Cache-Control": "no-store", "Content-Type": "application/json"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
	var s fetch.Secret
	r.decode(t, &s)
	if s.Path != "app/db" || s.Version != 1 || s.SecretType != "json" || str(t, s.Data["password"]) != "pw1" {
		t.Fatalf("secret %+v", s)
	}
	if !strings.Contains(string(r.body), `"rotation":null`) {
		t.Errorf("rotation is not null: %s", r.body)
	}

	r = h.do("GET", "/v1/secrets/app/db", rootTok, nil, "If-None-Match", `"1"`).want(t, 304)
	if len(r.body) != 0 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("304: body %q etag %q", r.body, r.header.Get("ETag"))
	}
	h.do("GET", "/v1/secrets/app/db", rootTok, nil, "If-None-Match", `"0"`).want(t, 200)
	h.write("app/db", map[string]any{"data": map[string]any{"password": "pw2"}})
	h.do("GET", "/v1/secrets/app/db", rootTok, nil, "If-None-Match", `"1"`).want(t, 200)
	// If-None-Match compares with the version being returned.
	h.do("GET", "/v1/secrets/app/db?version=1", rootTok, nil, "If-None-Match", `"1"`).want(t, 304)
	h.do("GET", "/v1/secrets/app/db", rootTok, nil, "If-None-Match", `W/"2"`).want(t, 304)

	h.do("GET", "/v1/secrets/app/db?version=0", rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	h.do("GET", "/v1/secrets/app/db?version=x", rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	h.do("GET", "/v1/secrets/app/db?version=9", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
}

func TestWriteVersionsAndCAS(t *testing.T) {
	h := newHarness(t, testSeed())
	w := h.write("app/new", map[string]any{"data": map[string]any{"k": "v1"}, "cas": 0})
	if w.Path != "app/new" || w.Version != 1 || w.CreatedAt.IsZero() {
		t.Fatalf("write result %+v", w)
	}
	h.do("PUT", "/v1/secrets/app/new", rootTok, map[string]any{"data": map[string]any{"k": "x"}, "cas": 0}).
		wantErr(t, 409, fetch.CodeConflict)
	h.do("PUT", "/v1/secrets/app/new", rootTok, map[string]any{"data": map[string]any{"k": "x"}, "cas": 5}).
		wantErr(t, 409, fetch.CodeConflict)
	if w := h.write("app/new", map[string]any{"data": map[string]any{"k": "v2"}, "cas": 1}); w.Version != 2 {
		t.Fatalf("cas write version %d", w.Version)
	}
	old := h.read("app/new?version=1", rootTok)
	if str(t, old.Data["k"]) != "v1" || old.Version != 1 {
		t.Fatalf("version 1: %+v", old)
	}
	// Numbers keep their exact form.
	h.write("app/num", `{"data":{"big":12345678901234567890,"f":1.5}}`)
	r := h.do("GET", "/v1/secrets/app/num", rootTok, nil).want(t, 200)
	if !strings.Contains(string(r.body), `"big":12345678901234567890`) {
		t.Fatalf("number changed: %s", r.body)
	}
}

func TestMaxVersions(t *testing.T) {
	h := newHarness(t, testSeed())
	h.write("app/mv", map[string]any{"data": map[string]any{"n": 1}, "max_versions": 3})
	for i := 2; i <= 5; i++ {
		h.write("app/mv", map[string]any{"data": map[string]any{"n": i}})
	}
	for v := 1; v <= 2; v++ {
		h.do("GET", fmt.Sprintf("/v1/secrets/app/mv?version=%d", v), rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	}
	for v := 3; v <= 5; v++ {
		h.do("GET", fmt.Sprintf("/v1/secrets/app/mv?version=%d", v), rootTok, nil).want(t, 200)
	}
	// Default 10.
	for i := 1; i <= 12; i++ {
		h.write("app/d", map[string]any{"data": map[string]any{"n": i}})
	}
	h.do("GET", "/v1/secrets/app/d?version=2", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("GET", "/v1/secrets/app/d?version=3", rootTok, nil).want(t, 200)
	h.do("PUT", "/v1/secrets/app/d", rootTok, map[string]any{"data": map[string]any{}, "max_versions": -1}).
		wantErr(t, 400, fetch.CodeValidation)
}

func TestDeleteAndUndelete(t *testing.T) {
	h := newHarness(t, testSeed())
	h.write("app/db", map[string]any{"data": map[string]any{"password": "pw2"}})
	h.do("DELETE", "/v1/secrets/app/db", rootTok, nil).want(t, 204)
	h.do("GET", "/v1/secrets/app/db", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("GET", "/v1/secrets/app/db?version=1", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("DELETE", "/v1/secrets/app/db", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	// A soft-deleted secret is no current version: cas 0 may recreate it,
	// with the next version number.
	if w := h.write("app/db", map[string]any{"data": map[string]any{"password": "pw3"}, "cas": 0}); w.Version != 3 {
		t.Fatalf("undelete version %d, want 3", w.Version)
	}
	h.do("DELETE", "/v1/secrets/app/db?permanent=true", rootTok, nil).want(t, 204)
	h.do("GET", "/v1/secrets/app/db?version=3", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	if w := h.write("app/db", map[string]any{"data": map[string]any{"password": "pw4"}}); w.Version != 1 {
		t.Fatalf("after permanent delete: version %d, want 1", w.Version)
	}
	h.do("DELETE", "/v1/secrets/app/db?permanent=maybe", rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	h.do("DELETE", "/v1/secrets/app/none?permanent=true", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
}

func TestPatchMetadata(t *testing.T) {
	h := newHarness(t, testSeed())
	h.write("app/m", map[string]any{"data": map[string]any{"k": "v"},
		"metadata": map[string]any{"tags": []string{"a"}, "custom": map[string]any{"owner": "x", "team": "y"}}})
	var s fetch.Secret
	h.do("PATCH", "/v1/secrets/app/m/metadata", rootTok,
		map[string]any{"metadata": map[string]any{"custom": map[string]any{"owner": "z", "team": nil}, "note": "n"}}).
		want(t, 200).decode(t, &s)
	if s.Version != 1 || s.Data != nil {
		t.Fatalf("patch answer: version %d data %v", s.Version, s.Data)
	}
	custom, _ := s.Metadata["custom"].(map[string]any)
	if custom["owner"] != "z" || custom["team"] != nil || len(custom) != 1 || s.Metadata["note"] != "n" || s.Metadata["tags"] == nil {
		t.Fatalf("merged metadata %v", s.Metadata)
	}
	if got := h.read("app/m", rootTok); got.Version != 1 || got.Metadata["note"] != "n" {
		t.Fatalf("after patch: %+v", got)
	}
	h.do("PATCH", "/v1/secrets/app/m/metadata", rootTok, map[string]any{}).wantErr(t, 400, fetch.CodeValidation)
	h.do("PATCH", "/v1/secrets/app/m/metadata", rootTok, `{"metadata": 3}`).wantErr(t, 400, fetch.CodeValidation)
	h.do("PATCH", "/v1/secrets/app/zz/metadata", rootTok, map[string]any{"metadata": map[string]any{}}).
		wantErr(t, 404, fetch.CodeNotFound)
}

func TestSecretTypes(t *testing.T) {
	h := newHarness(t, testSeed())
	s := h.read("app/api-key", rootTok)
	if s.SecretType != "text" || str(t, s.Data["value"]) != "key-1" {
		t.Fatalf("text secret %+v", s)
	}
	// The type carries over when not given.
	h.write("app/api-key", map[string]any{"data": map[string]any{"value": "key-2"}})
	if s := h.read("app/api-key", rootTok); s.SecretType != "text" {
		t.Fatalf("type became %q", s.SecretType)
	}
	bad := []map[string]any{
		{"data": map[string]any{"k": "v"}, "secret_type": "text"},
		{"data": map[string]any{"value": 3}, "secret_type": "password"},
		{"data": map[string]any{"value": "not base64!"}, "secret_type": "binary"},
		{"data": map[string]any{"value": "v"}, "secret_type": "blob"},
		{"secret_type": "json"},
	}
	for _, b := range bad {
		e := h.do("PUT", "/v1/secrets/app/t", rootTok, b).wantErr(t, 400, fetch.CodeValidation)
		if !strings.Contains(e.Message, "data") && !strings.Contains(e.Message, "secret_type") {
			t.Errorf("%v: message %q names no field", b, e.Message)
		}
	}
	h.write("app/bin", map[string]any{"data": map[string]any{"value": "aGVsbG8="}, "secret_type": "binary"})
}

func TestRequestValidation(t *testing.T) {
	h := newHarness(t, testSeed())
	cases := []struct {
		method, path string
		body         any
		status       int
		msg          string
	}{
		{"GET", "/v1/secrets/app%2Fdb", nil, 400, "encoded slash"},
		{"GET", "/v1/secrets/app/a%2Fb", nil, 400, "segment 2"},
		{"GET", "/v1/secrets/app/../db", nil, 400, `".."`},
		{"GET", "/v1/secrets/app//db", nil, 400, "empty segment"},
		{"GET", "/v1/secrets/app/db/", nil, 400, "empty segment"},
		{"GET", "/v1/secrets/app/d%20b", nil, 400, "not allowed"},
		{"PUT", "/v1/secrets/app/x", `{"data":{},"max_version":3}`, 400, `unknown field "max_version"`},
		{"PUT", "/v1/secrets/app/x", `{"data":{}} trailing`, 400, "after the JSON object"},
		{"PUT", "/v1/secrets/app/x", `{"data":`, 400, "JSON"},
		{"PUT", "/v1/secrets/app/x", `{"data":{},"cas":"1"}`, 400, "cas"},
		{"PUT", "/v1/secrets/app/x", ``, 400, "want a JSON object"},
		{"POST", "/v1/secrets/app/x", nil, 405, "not allowed"},
		{"GET", "/v1/nothing", nil, 404, "no such route"},
	}
	for _, tc := range cases {
		r := h.do(tc.method, tc.path, rootTok, tc.body)
		var body fetch.ErrorBody
		r.decode(t, &body)
		if r.status != tc.status || !strings.Contains(body.Error.Message, tc.msg) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, r.status, r.body, tc.status, tc.msg)
		}
	}
	if r := h.do("POST", "/v1/secrets/app/x", rootTok, nil); r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, testSeed())
	big := `{"data":{"k":"` + strings.Repeat("a", int(MaxBodyBytes)) + `"}}`
	e := h.do("PUT", "/v1/secrets/app/big", rootTok, big).wantErr(t, 400, fetch.CodeValidation)
	if !strings.Contains(e.Message, "larger than") {
		t.Fatalf("message %q", e.Message)
	}
	h.do("GET", "/v1/secrets/app/big", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
}

func TestBatchRead(t *testing.T) {
	h := newHarness(t, testSeed())
	app := h.token("app", "app-secret")
	h.do("DELETE", "/v1/secrets/app/config", rootTok, nil).want(t, 204)
	var res fetch.BatchReadResult
	r := h.do("POST", "/v1/secrets/batch-read", app,
		map[string]any{"paths": []string{"app/db", "app/missing", "other/secret", "bad//path", "app/config"}}).want(t, 200)
	r.decode(t, &res)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("batch-read without Cache-Control: no-store")
	}
	if len(res.Secrets) != 1 || str(t, res.Secrets["app/db"].Data["password"]) != "pw1" {
		t.Fatalf("secrets %v", res.Secrets)
	}
	want := map[string]string{"app/missing": "not_found", "other/secret": "access_denied",
		"bad//path": "validation_error", "app/config": "not_found"}
	for p, code := range want {
		if res.Errors[p].Code != code || res.Errors[p].Message == "" {
			t.Errorf("%s: %+v, want %s", p, res.Errors[p], code)
		}
	}
	r = h.do("POST", "/v1/secrets/batch-read", app, map[string]any{"paths": []string{}}).want(t, 200)
	if strings.TrimSpace(string(r.body)) != `{"secrets":{},"errors":{}}` {
		t.Fatalf("empty batch: %s", r.body)
	}
	paths := make([]string, 101)
	for i := range paths {
		paths[i] = fmt.Sprintf("app/p%d", i)
	}
	h.do("POST", "/v1/secrets/batch-read", app, map[string]any{"paths": paths}).wantErr(t, 400, fetch.CodeValidation)
	h.do("POST", "/v1/secrets/batch-read", app, map[string]any{"paths": paths[:100]}).want(t, 200)
}

func TestPanicAnswers500(t *testing.T) {
	h := newHarness(t, testSeed())
	rt := &route{method: "GET", pattern: "/v1/panic", segs: []string{"v1", "panic"},
		handle: func(*call) *apiError { var m map[string]int; m["x"]++; panic("secret-value") }}
	h.s.routes = append(h.s.routes, rt)
	h.s.counts.byRoute[rt.name()] = h.s.counts.byRoute["GET /v1/events"]
	e := h.do("GET", "/v1/panic", rootTok, nil).wantErr(t, 500, fetch.CodeInternal)
	if strings.Contains(e.Message, "goroutine") || strings.Contains(e.Message, "secret-value") {
		t.Fatalf("message %q", e.Message)
	}
}
