package fetch_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// The dev server always sends "metadata":{}; a server that leaves it out
// or sends null is taken too, and every form of "none" reaches the caller
// as the same empty, non-nil map (a watcher comparing two reads sees no
// change between them).
func TestSecretMetadataForms(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx := ctxT(t)
	for _, form := range []struct{ name, replace string }{
		{"as sent: {}", `"metadata":{}`},
		{"left out", ``},
		{"null", `"metadata":null`},
	} {
		// The dev server's own answer, with its metadata rewritten.
		h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			rec := httptest.NewRecorder()
			h.srv.Handler().ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if !bytes.Contains(body, []byte(`"metadata":{}`)) {
				t.Errorf("%s %s: the dev server sent no \"metadata\":{}: %s", r.Method, r.URL.Path, body)
			}
			repl := ""
			if form.replace != "" {
				repl = form.replace + ","
			}
			body = bytes.ReplaceAll(body, []byte(`"metadata":{},`), []byte(repl))
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
			return true
		})
		s, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
		if err != nil {
			t.Fatalf("%s: read: %v", form.name, err)
		}
		if s.Metadata == nil || len(s.Metadata) != 0 {
			t.Errorf("%s: read gives metadata %#v, want an empty map", form.name, s.Metadata)
		}
		secrets, errs, err := c.BatchRead(ctx, []string{"app/db", "app/api"})
		if err != nil || len(errs) != 0 {
			t.Fatalf("%s: batch read: %v %v", form.name, errs, err)
		}
		for p, s := range secrets {
			if s.Metadata == nil || len(s.Metadata) != 0 {
				t.Errorf("%s: batch read of %s gives metadata %#v, want an empty map", form.name, p, s.Metadata)
			}
		}
	}
	h.setIntercept(nil)
	// Set metadata comes through as it is.
	if _, err := h.admin().PatchMetadata(ctx, "app/db", map[string]any{"tags": []any{"critical"}}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Read(ctx, "app/db", fetch.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tags, _ := s.Metadata["tags"].([]any); len(tags) != 1 || tags[0] != "critical" {
		t.Errorf("metadata %#v", s.Metadata)
	}
}

// TestRotationWireForm: every field of a rotation object is present, null
// where unset; a null decodes as unset.
func TestRotationWireForm(t *testing.T) {
	at := time.Date(2027, 2, 23, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		r    fetch.Rotation
		want string
	}{
		{fetch.Rotation{}, `{"policy_id":null,"next_rotation_at":null,"previous_version":null,"grace_period_ends_at":null}`},
		{fetch.Rotation{PolicyID: "rp_1", NextRotationAt: &at}, `{"policy_id":"rp_1","next_rotation_at":"2027-02-23T12:00:00Z","previous_version":null,"grace_period_ends_at":null}`},
		{fetch.Rotation{PreviousVersion: 2, GracePeriodEndsAt: &at}, `{"policy_id":null,"next_rotation_at":null,"previous_version":2,"grace_period_ends_at":"2027-02-23T12:00:00Z"}`},
	} {
		got, err := json.Marshal(tt.r)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tt.r, got, err, tt.want)
		}
		var back fetch.Rotation
		if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(back, tt.r) {
			t.Errorf("round trip of %s = %+v, %v", got, back, err)
		}
	}
}
