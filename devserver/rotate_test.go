package devserver

import (
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestRotateWithGracePeriod(t *testing.T) {
	h := newHarness(t, testSeed())
	h.write("app/db", map[string]any{"data": map[string]any{"username": "app", "password": "pw2"}}) // v2
	var s fetch.Secret
	r := h.do("POST", "/v1/secrets/app/db/rotate", rootTok,
		map[string]any{"reason": "compromise", "new_value": map[string]any{"username": "app", "password": "pw3"},
			"grace_period": "1h"}).want(t, 200)
	r.decode(t, &s)
	end := h.clock.Now().Add(time.Hour)
	if s.Version != 3 || str(t, s.Data["password"]) != "pw3" || s.Rotation == nil ||
		s.Rotation.PreviousVersion != 2 || !s.Rotation.GracePeriodEndsAt.Equal(end) {
		t.Fatalf("rotated secret %+v rotation %+v", s, s.Rotation)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("rotate answer without no-store")
	}
	// Readable during the grace period, 404 from its end on.
	if old := h.read("app/db?version=2", rootTok); str(t, old.Data["password"]) != "pw2" {
		t.Fatalf("previous version %+v", old)
	}
	h.clock.Advance(time.Hour - time.Second)
	h.do("GET", "/v1/secrets/app/db?version=2", rootTok, nil).want(t, 200)
	h.clock.Advance(time.Second)
	h.do("GET", "/v1/secrets/app/db?version=2", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h.do("GET", "/v1/secrets/app/db?version=1", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	if cur := h.read("app/db", rootTok); cur.Version != 3 || cur.Rotation.PreviousVersion != 2 {
		t.Fatalf("current %+v", cur)
	}
	// A later write makes a version without rotation fields.
	h.write("app/db", map[string]any{"data": map[string]any{"password": "pw4"}})
	if cur := h.read("app/db", rootTok); cur.Rotation != nil {
		t.Fatalf("rotation after a plain write: %+v", cur.Rotation)
	}
}

func TestRotateWithoutGraceAndGenerated(t *testing.T) {
	h := newHarness(t, testSeed())
	var s fetch.Secret
	h.do("POST", "/v1/secrets/app/db/rotate", rootTok, nil).want(t, 200).decode(t, &s)
	if s.Version != 2 || !s.Rotation.GracePeriodEndsAt.Equal(h.clock.Now()) {
		t.Fatalf("rotation %+v", s.Rotation)
	}
	pw := str(t, s.Data["password"])
	if pw == "pw1" || len(pw) != 32 || str(t, s.Data["username"]) == "app" {
		t.Fatalf("generated values: %v", s.Data)
	}
	h.do("GET", "/v1/secrets/app/db?version=1", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)

	// Grace periods survive max_versions pruning.
	h.write("app/one", map[string]any{"data": map[string]any{"k": "a"}, "max_versions": 1})
	h.do("POST", "/v1/secrets/app/one/rotate", rootTok, map[string]any{"grace_period": "10m"}).want(t, 200)
	h.do("GET", "/v1/secrets/app/one?version=1", rootTok, nil).want(t, 200)

	h.do("POST", "/v1/secrets/app/db/rotate", rootTok, map[string]any{"grace_period": "-1h"}).
		wantErr(t, 400, fetch.CodeValidation)
	h.do("POST", "/v1/secrets/app/api-key/rotate", rootTok, map[string]any{"new_value": map[string]any{"k": "v"}}).
		wantErr(t, 400, fetch.CodeValidation)
	h.do("POST", "/v1/secrets/app/none/rotate", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	// A text secret gets a new value under "value".
	h.do("POST", "/v1/secrets/app/api-key/rotate", rootTok, nil).want(t, 200).decode(t, &s)
	if v := str(t, s.Data["value"]); v == "key-1" || s.SecretType != "text" {
		t.Fatalf("text rotation %+v", s)
	}
}
