package statefile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/scailabs/scaivault-run/fetch"
)

// newKey makes an identity file as age-keygen writes it and loads it.
func newKey(t testing.TB) (*Key, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.txt")
	content := fmt.Sprintf("# created: 2026-01-02T03:04:05Z\n# public key: %s\n%s\n", id.Recipient(), id)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	k, open, err := LoadKey(path)
	if err != nil || open {
		t.Fatalf("LoadKey: %v (open %v)", err, open)
	}
	if k.Recipient() != id.Recipient().String() {
		t.Fatalf("recipient %s, want %s", k.Recipient(), id.Recipient())
	}
	return k, path
}

// Values of sampleDoc that must never be seen in the file.
var sampleValues = []string{"pw-SECRET-1", "user-SECRET-2", "lease-pw-SECRET-3", "-----BEGIN PRIVATE KEY-----\nSECRETKEY"}

func sampleDoc() *Doc {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	dyn, _ := fetch.DynamicSource("db", "ro", "2h")
	pki, _ := fetch.PKISource("svc", fetch.IssueRequest{CommonName: "a.svc.local", AltNames: []string{"b.svc.local"}})
	acme, _ := fetch.ACMESource("letsencrypt", []string{"B.example.com", "a.example.com"}, "dns-01")
	raw := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	return &Doc{
		Fingerprint: "sha256:abc", ResolvedAt: now, WrittenAt: now, Pid: 42,
		Secrets: []Secret{{Source: FromSource(fetch.StaticSource("app/db", 0)), UsedBy: []string{"--env DB_PASS"},
			Secret: &fetch.Secret{Path: "app/db", Version: 3, Data: map[string]json.RawMessage{"password": raw(sampleValues[0]), "username": raw(sampleValues[1])}, Metadata: map[string]any{}}}},
		Leases: []Lease{{Source: FromSource(dyn), LeaseID: "dyn_db_ro_1", Phase: "in use", UsedBy: []string{"--env DB_USER"},
			ReceivedAt: now, Duration: 7200, ExpiresAt: now.Add(2 * time.Hour), Renewable: true,
			Lease: &fetch.Lease{LeaseID: "dyn_db_ro_1", Engine: "db", Role: "ro", LeaseDuration: 7200, Data: map[string]json.RawMessage{"password": raw(sampleValues[2])}}},
			{Source: FromSource(dyn), LeaseID: "dyn_db_ro_0", Phase: "superseded", ReceivedAt: now, Duration: 60, ExpiresAt: now.Add(time.Minute)}},
		Certs: []Cert{{Source: FromSource(pki), Cert: &fetch.Cert{SerialNumber: "01:02", CertificatePEM: "CERT", PrivateKeyPEM: sampleValues[3], ExpiresAt: now.Add(time.Hour)}},
			{Source: FromSource(acme), Cert: &fetch.Cert{SerialNumber: "03:04", CertificatePEM: "CERT", PrivateKeyPEM: "KEY", ExpiresAt: now.Add(time.Hour)}, OrderID: "ord_1"}},
		Lists: []List{{Source: FromSource(fetch.ListSource("app/")), Entries: []fetch.ListEntry{{Path: "app/db", Version: 3}}}},
	}
}

func TestRoundTrip(t *testing.T) {
	k, _ := newKey(t)
	doc := sampleDoc()
	data, err := Encode(doc, k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(armor.Header)) {
		t.Fatalf("not armored: %.40q", data)
	}
	for _, v := range sampleValues {
		for _, part := range strings.Split(v, "\n") {
			if bytes.Contains(data, []byte(part)) {
				t.Errorf("a value shows in the file: %.6q", part)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "state.age")
	if err := WriteFile(path, data); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	got, err := ReadFile(path, k)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(doc)
	have, _ := json.Marshal(got)
	if !bytes.Equal(want, have) {
		t.Fatalf("round trip:\n got %s\nwant %s", have, want)
	}
	for _, s := range got.Leases {
		if _, err := s.Source.Source(); err != nil {
			t.Fatal(err)
		}
	}
	// An ACME certificate keeps its order (fetch.Cert has it off the
	// wire): the watcher polls that order after a fallback start.
	if got.Certs[1].OrderID != "ord_1" {
		t.Errorf("ACME certificate's order id: %q", got.Certs[1].OrderID)
	}
}

// TestPlaintextIsReadableJSON: what `age -d -i KEY FILE` prints is the
// envelope, and its state is the document.
func TestPlaintextIsReadableJSON(t *testing.T) {
	k, _ := newKey(t)
	data, err := Encode(sampleDoc(), k)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), k.id)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
		State   Doc    `json:"state"`
	}
	if err := json.NewDecoder(r).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if env.Format != Format || env.Version != Version || env.State.Pid != 42 {
		t.Fatalf("envelope %+v", env)
	}
}

// TestBadFiles: each way a file can be unusable is a *DecodeError of its
// kind, whose message quotes nothing of the file.
func TestBadFiles(t *testing.T) {
	k, _ := newKey(t)
	other, _ := newKey(t)
	good, err := Encode(sampleDoc(), k)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(good) / 2
	cutLine := bytes.Index(good, []byte("\n-----END"))
	// A payload byte flipped: the armor's base64 decoded, changed, encoded.
	flipped := func(at int) []byte {
		body := good[len(armor.Header)+1 : cutLine]
		raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(body), "\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		if at < len(raw)-100 { // in the header's text: another base64 letter (a flipped bit may be none: corrupt, not what the case means)
			if raw[at] == 'A' {
				raw[at] = 'B'
			} else {
				raw[at] = 'A'
			}
		} else {
			raw[at] ^= 0x01
		}
		var b bytes.Buffer
		w := armor.NewWriter(&b)
		w.Write(raw)
		w.Close()
		return b.Bytes()
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(good[len(armor.Header)+1:cutLine]), "\n", ""))
	rawLen, macAt := len(raw), bytes.Index(raw, []byte("\n--- "))
	forged := func(mut func(*envelope)) []byte {
		body, _ := json.Marshal(sampleDoc())
		env := envelope{Format: Format, Version: Version, MAC: fmt.Sprintf("%x", k.sum(body)), State: body}
		mut(&env)
		plain, _ := json.Marshal(env)
		var b bytes.Buffer
		aw := armor.NewWriter(&b)
		w, _ := age.Encrypt(aw, k.rcpt) // anyone with the recipient can do this
		w.Write(plain)
		w.Close()
		aw.Close()
		return b.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		key  *Key
		want error
	}{
		{"wrong key", good, other, ErrWrongKey},
		{"empty", nil, k, ErrTruncated},
		{"cut in the first line", good[:10], k, ErrTruncated},
		{"cut in the middle", good[:mid], k, ErrTruncated},
		{"cut before the end line", good[:cutLine+1], k, ErrTruncated},
		{"cut inside the payload, end line kept", append(clone(good[:cutLine-8]), good[cutLine:]...), k, ErrTampered},
		{"header MAC changed", flipped(macAt + 6), k, ErrTampered},
		{"header stanza changed (reads as another key's)", flipped(40), k, ErrWrongKey},
		{"payload byte changed", flipped(rawLen - 5), k, ErrTampered},
		{"not age", []byte("DB_PASSWORD=hunter2hunter2\n"), k, ErrCorrupt},
		{"random bytes", bytes.Repeat([]byte{0x9c, 0x01, 0xff}, 100), k, ErrCorrupt},
		{"too large", append([]byte(armor.Header+"\n"), make([]byte, MaxFileSize)...), k, ErrTooLarge},
		{"forged: wrong MAC", forged(func(e *envelope) { e.MAC = strings.Repeat("00", 32) }), k, ErrTampered},
		{"forged: state changed after the MAC", forged(func(e *envelope) { e.State = bytes.Replace(e.State, []byte(`"pid":42`), []byte(`"pid":43`), 1) }), k, ErrTampered},
		{"another version", forged(func(e *envelope) { e.Version = 2 }), k, ErrVersion},
		{"another format", forged(func(e *envelope) { e.Format = "something else" }), k, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.data, c.key)
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, c.want) {
				t.Fatalf("err = %v (%T), want a %v", err, err, c.want)
			}
			for _, v := range append(sampleValues, "hunter2") {
				if strings.Contains(err.Error(), v) {
					t.Fatalf("the error quotes a value: %v", err)
				}
			}
			t.Logf("%s: %v", c.name, err)
		})
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// TestBadDocuments: an authenticated document that is not well formed is
// refused with ErrCorrupt (a bug, or a holder of the key gone wrong).
func TestBadDocuments(t *testing.T) {
	k, _ := newKey(t)
	cases := map[string]func(*Doc){
		"unknown kind":     func(d *Doc) { d.Secrets[0].Source.Kind = "acme" },
		"bad path":         func(d *Doc) { d.Secrets[0].Source.Path = "../etc" },
		"kind mismatch":    func(d *Doc) { d.Secrets[0].Source = d.Lists[0].Source },
		"foreign field":    func(d *Doc) { d.Secrets[0].Source.Engine = "x" },
		"ttl not canon":    func(d *Doc) { d.Leases[0].Source.TTL = "120m" },
		"params not canon": func(d *Doc) { d.Certs[0].Source.Params = "common_name=a.svc.local&alt_names=b.svc.local" },
		"twice":            func(d *Doc) { d.Secrets = append(d.Secrets, d.Secrets[0]) },
		"lease id twice":   func(d *Doc) { d.Leases[1].LeaseID = d.Leases[0].LeaseID },
		"bad lease id":     func(d *Doc) { d.Leases[1].LeaseID = "a b" },
		"no secret data":   func(d *Doc) { d.Secrets[0].Secret.Data = nil },
		"lease id differs": func(d *Doc) { d.Leases[0].Lease.LeaseID = "other" },
		"bad phase":        func(d *Doc) { d.Leases[0].Phase = "gone" },
		"no resolved_at":   func(d *Doc) { d.ResolvedAt = time.Time{} },
		"huge duration":    func(d *Doc) { d.Leases[0].Duration = 1 << 60 },
		"no cert expiry":   func(d *Doc) { d.Certs[0].Cert.ExpiresAt = time.Time{} },
		"acme not canon":   func(d *Doc) { d.Certs[1].Source.Params = "domains=b.example.com,a.example.com" },
		"acme no account":  func(d *Doc) { d.Certs[1].Source.Account = "" },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			d := sampleDoc()
			mut(d)
			data, err := Encode(d, k)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(data, k); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestPendingDocument: a start-up that resolved nothing yet writes only
// leases, pending, and no resolved_at; that reads back. With values it
// is corrupt (see TestBadDocuments).
func TestPendingDocument(t *testing.T) {
	k, _ := newKey(t)
	d := sampleDoc()
	d.ResolvedAt, d.Secrets, d.Certs, d.Lists = time.Time{}, []Secret{}, []Cert{}, []List{}
	d.Leases[0].Pending = true
	data, err := Encode(d, k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data, k)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ResolvedAt.IsZero() || !got.Leases[0].Pending || got.Leases[0].Lease == nil {
		t.Errorf("pending document read back as resolved %v, lease %+v", got.ResolvedAt, got.Leases[0].LeaseID)
	}
}

// truncate never splits a character nor passes invalid UTF-8 on.
func TestTruncate(t *testing.T) {
	for in, want := range map[string]string{
		"short":                               "short",
		strings.Repeat("a", 39) + "é" + "zzz": strings.Repeat("a", 39) + "…",
		strings.Repeat("a", 38) + "\xff\xfe" + "zz": strings.Repeat("a", 38) + "?" + "…",
		"bad \xff":              "bad ?",
		strings.Repeat("€", 20): strings.Repeat("€", 13) + "…",
	} {
		got := truncate(in)
		if got != want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadKey(t *testing.T) {
	_, path := newKey(t)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, open, err := LoadKey(path); err != nil || !open {
		t.Fatalf("0644 key: open %v, err %v", open, err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":   "",
		"comment": "# public key: age1xyz\n",
		"garbage": "AGE-SECRET-KEY-1NOTAKEY\n",
		"bech32":  "AGE-SECRET-KEY-PQ-1ABCDEFSECRETSECRET\n",
		"recip":   "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		_, _, err := LoadKey(p)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "NOTAKEY") || strings.Contains(err.Error(), "SECRETSECRET") || strings.Contains(err.Error(), "s[") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
	}
	if _, _, err := LoadKey(dir); err == nil {
		t.Error("a directory as key: no error")
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint([]string{"x", "y", "x"})
	if a != Fingerprint([]string{"y", "x"}) {
		t.Error("order or repetition changed the fingerprint")
	}
	if a == Fingerprint([]string{"x", "z"}) || Fingerprint([]string{"ab", "c"}) == Fingerprint([]string{"a", "bc"}) {
		t.Error("different lines, same fingerprint")
	}
}

func TestWriteFileLeavesNothingOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.age")
	if err := os.Mkdir(path, 0o700); err != nil { // rename over a directory fails
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("x")); err == nil {
		t.Fatal("no error")
	}
	left, _ := filepath.Glob(filepath.Join(dir, TempPattern("state.age")))
	if len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// A state too large to be read back is not written: Encode refuses it
// (ErrTooLarge) rather than replace a usable file by one no start can use.
func TestEncodeRefusesTooLarge(t *testing.T) {
	k, _ := newKey(t)
	doc := sampleDoc()
	doc.Certs[0].Cert.CertificatePEM = strings.Repeat("x", MaxFileSize)
	if _, err := Encode(doc, k); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode of a state over %d MiB: %v, want ErrTooLarge", MaxFileSize>>20, err)
	}
}
