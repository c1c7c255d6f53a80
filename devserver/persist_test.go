package devserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestPersistenceRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json")
	withData := func(o *Options) { o.DataFile = file }

	h1 := newHarness(t, testSeed(), withData)
	h1.write("app/db", map[string]any{"data": map[string]any{"password": "pw2"}, "max_versions": 4})
	h1.do("POST", "/v1/secrets/app/db/rotate", rootTok, map[string]any{"grace_period": "1h"}).want(t, 200)
	h1.do("PATCH", "/v1/secrets/app/db/metadata", rootTok, map[string]any{"metadata": map[string]any{"n": 1}}).want(t, 200)
	h1.do("DELETE", "/v1/secrets/other/secret?permanent=true", rootTok, nil).want(t, 204)
	h1.do("DELETE", "/v1/secrets/app/api-key", rootTok, nil).want(t, 204)
	lease := h1.generate("support-db/creds/readonly", rootTok, nil)
	tok := h1.token("app", "app-secret")
	var cert fetch.Cert
	h1.do("POST", "/v1/pki/issue/svc-mtls", rootTok, map[string]any{"common_name": "localhost"}).want(t, 200).decode(t, &cert)
	h1.s.Close()

	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("data file: %v %v", err, fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
	raw, _ := os.ReadFile(file)
	if strings.Contains(string(raw), tok) {
		t.Fatal("the data file holds a token in clear")
	}

	h2 := newHarness(t, testSeed(), withData)
	cur := h2.read("app/db", rootTok)
	if cur.Version != 3 || cur.Rotation == nil || cur.Rotation.PreviousVersion != 2 || cur.Metadata["n"] == nil {
		t.Fatalf("restored secret %+v", cur)
	}
	if old := h2.read("app/db?version=2", rootTok); str(t, old.Data["password"]) != "pw2" {
		t.Fatalf("restored previous version %+v", old)
	}
	h2.do("GET", "/v1/secrets/other/secret", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	h2.do("GET", "/v1/secrets/app/api-key", rootTok, nil).wantErr(t, 404, fetch.CodeNotFound)
	if w := h2.write("app/api-key", map[string]any{"data": map[string]any{"value": "k"}}); w.Version != 2 {
		t.Fatalf("undelete after restart: version %d", w.Version)
	}
	var l fetch.Lease
	h2.do("GET", "/v1/dynamic/leases/"+lease.LeaseID, rootTok, nil).want(t, 200).decode(t, &l)
	if !l.ExpiresAt.Equal(lease.ExpiresAt) {
		t.Fatalf("restored lease %+v", l)
	}
	h2.do("GET", "/v1/auth/whoami", tok, nil).want(t, 200)
	// The same CA: the old certificate verifies against the served CA.
	r := h2.do("GET", "/v1/pki/cas/default/pem", rootTok, nil).want(t, 200)
	if string(r.body) != cert.CAChain[0] {
		t.Fatal("the CA changed across the restart")
	}
	verify(t, &cert, h2.clock.Now(), "localhost")
	// Event ids go on from where they were.
	st := h2.events("", rootTok)
	h2.write("app/x", map[string]any{"data": map[string]any{}})
	if ev := st.next(); atoi(ev.id) < 5 {
		t.Fatalf("event id %q restarted", ev.id)
	}
}

func TestPersistenceBadFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(file, []byte("{not json"), 0o600)
	_, err := New(Options{Seed: testSeed(), DataFile: file})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("New with a bad data file: %v", err)
	}
	_, err = New(Options{Seed: testSeed(), DataFile: filepath.Join(t.TempDir(), "no", "dir", "state.json")})
	if err == nil {
		t.Fatal("New with an unwritable data file succeeded")
	}
}
