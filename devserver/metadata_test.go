package devserver

import (
	"strings"
	"testing"
)

// wantMetadata fails unless the raw answer carries "metadata":want exactly
// n times (one per secret object in it) and never leaves it null.
func wantMetadata(t *testing.T, what string, r *resp, want string, n int) {
	t.Helper()
	if got := strings.Count(string(r.body), `"metadata":`+want); got != n {
		t.Errorf("%s: %d secret objects with \"metadata\":%s, want %d: %s", what, got, want, n, r.body)
	}
	if strings.Contains(string(r.body), `"metadata":null`) {
		t.Errorf("%s: metadata is null: %s", what, r.body)
	}
}

// Every answer that carries a secret object carries metadata as an object,
// {} when none was set (scaivault-api.md "Secrets").
func TestMetadataEmptyObjectInEveryAnswer(t *testing.T) {
	h := newHarness(t, testSeed())
	h.write("app/db", map[string]any{"data": map[string]any{"password": "pw2"}}) // v2, still no metadata

	wantMetadata(t, "read", h.do("GET", "/v1/secrets/app/db", rootTok, nil).want(t, 200), "{}", 1)
	wantMetadata(t, "read of an old version", h.do("GET", "/v1/secrets/app/db?version=1", rootTok, nil).want(t, 200), "{}", 1)
	wantMetadata(t, "batch read", h.do("POST", "/v1/secrets/batch-read", rootTok,
		map[string]any{"paths": []string{"app/db", "app/api-key", "app/missing"}}).want(t, 200), "{}", 2)
	wantMetadata(t, "rotate", h.do("POST", "/v1/secrets/app/db/rotate", rootTok,
		map[string]any{"grace_period": "1h"}).want(t, 200), "{}", 1)
	wantMetadata(t, "metadata patch with an empty patch", h.do("PATCH", "/v1/secrets/app/db/metadata", rootTok,
		map[string]any{"metadata": map[string]any{}}).want(t, 200), "{}", 1)

	// Set, then removed again: by a merge patch of its one key, and by a
	// null patch (which clears it all); both answer {} and so do reads.
	wantMetadata(t, "metadata patch that sets a key", h.do("PATCH", "/v1/secrets/app/db/metadata", rootTok,
		map[string]any{"metadata": map[string]any{"owner": "a"}}).want(t, 200), `{"owner":"a"}`, 1)
	wantMetadata(t, "metadata patch that removes the key", h.do("PATCH", "/v1/secrets/app/db/metadata", rootTok,
		`{"metadata":{"owner":null}}`).want(t, 200), "{}", 1)
	h.do("PATCH", "/v1/secrets/app/db/metadata", rootTok, map[string]any{"metadata": map[string]any{"owner": "a"}}).want(t, 200)
	wantMetadata(t, "metadata patch null", h.do("PATCH", "/v1/secrets/app/db/metadata", rootTok,
		`{"metadata":null}`).want(t, 200), "{}", 1)
	wantMetadata(t, "read after the null patch", h.do("GET", "/v1/secrets/app/db", rootTok, nil).want(t, 200), "{}", 1)
	wantMetadata(t, "batch read after the null patch", h.do("POST", "/v1/secrets/batch-read", rootTok,
		map[string]any{"paths": []string{"app/db"}}).want(t, 200), "{}", 1)
}

// data is always an object too: a secret written with {} reads back with
// "data":{} (it used to be left out); only the metadata patch's answer, a
// secret without data, has none.
func TestEmptyDataIsAnObject(t *testing.T) {
	h := newHarness(t, testSeed())
	h.write("app/empty", map[string]any{"data": map[string]any{}})
	for _, tt := range []struct {
		what string
		r    *resp
	}{
		{"read", h.do("GET", "/v1/secrets/app/empty", rootTok, nil)},
		{"batch read", h.do("POST", "/v1/secrets/batch-read", rootTok, map[string]any{"paths": []string{"app/empty"}})},
		{"rotate", h.do("POST", "/v1/secrets/app/empty/rotate", rootTok, nil)},
	} {
		tt.r.want(t, 200)
		if !strings.Contains(string(tt.r.body), `"data":{}`) {
			t.Errorf("%s: no \"data\":{} in %s", tt.what, tt.r.body)
		}
	}
	r := h.do("PATCH", "/v1/secrets/app/empty/metadata", rootTok, map[string]any{"metadata": map[string]any{"a": "b"}}).want(t, 200)
	if strings.Contains(string(r.body), `"data"`) {
		t.Errorf("metadata patch answer carries data: %s", r.body)
	}
}
