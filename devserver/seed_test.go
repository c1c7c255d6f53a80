package devserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// designSeed is the seed of DESIGN.md, as written there.
const designSeed = `{
  "root_token": "dev-root",
  "clients": [{"client_id": "app", "client_secret": "app-secret", "token_ttl": "1h",
               "policies": ["app-read"]}],
  "policies": {"app-read": [{"path_pattern": "app/**", "permissions": ["read", "list"]}]},
  "secrets": {"app/db": {"data": {"password": "pw1", "username": "app"}, "secret_type": "json"}},
  "dynamic": {"support-db": {"kind": "random",
                              "roles": {"readonly": {"ttl": "1h", "max_ttl": "24h", "renewable": true}}},
              "pg": {"kind": "postgres", "connection_url": "postgres://postgres@127.0.0.1:5432/postgres",
                     "roles": {"app": {"ttl": "1h", "max_ttl": "4h",
                                       "creation_statements": ["CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"]}}}},
  "pki": {"roles": {"svc-mtls": {"allowed_domains": ["svc.cluster.local", "localhost"],
                                  "allow_subdomains": true, "allow_ip_sans": true,
                                  "max_ttl": "720h", "key_type": "ec", "key_bits": 256}}}
}`

const designSeedYAML = `
root_token: dev-root
clients:
  - client_id: app
    client_secret: app-secret
    token_ttl: 1h
    policies: [app-read]
policies:
  app-read:
    - path_pattern: "app/**"
      permissions: [read, list]
secrets:
  app/db:
    data: {password: pw1, username: app, port: 5432, at: 2026-01-02T03:04:05Z}
    metadata: {tags: [critical]}
    rotation: {policy_id: rp_quarterly, interval: 90d, next_rotation_in: 72h}
dynamic:
  support-db:
    kind: random
    roles:
      readonly: {ttl: 3600, max_ttl: 24h, renewable: true}
pki:
  roles:
    svc-mtls: {allowed_domains: [svc.cluster.local, localhost], allow_subdomains: true, max_ttl: 720h}
`

func TestParseDesignSeed(t *testing.T) {
	for name, text := range map[string]string{"seed.json": designSeed, "seed.yaml": designSeedYAML, "s.yml": designSeedYAML} {
		s, err := ParseSeed([]byte(text), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.RootToken != "dev-root" || len(s.Clients) != 1 || s.Secrets["app/db"].Data["password"] != "pw1" ||
			s.Dynamic["support-db"].Kind != "random" || !s.PKI.Roles["svc-mtls"].AllowSubdomains {
			t.Fatalf("%s: parsed %+v", name, s)
		}
	}
	s, _ := ParseSeed([]byte(designSeedYAML), "seed.yaml")
	if s.Dynamic["support-db"].Roles["readonly"].TTL != "3600" || s.Secrets["app/db"].Data["at"] != "2026-01-02T03:04:05Z" {
		t.Fatalf("yaml conversions: %+v %+v", s.Dynamic["support-db"].Roles["readonly"], s.Secrets["app/db"].Data)
	}
	// The YAML seed serves.
	h := newHarness(t, s)
	sec := h.read("app/db", "dev-root")
	if sec.Rotation == nil || sec.Rotation.PolicyID != "rp_quarterly" || string(sec.Data["port"]) != "5432" {
		t.Fatalf("served %+v", sec)
	}
}

func TestParseSeedErrors(t *testing.T) {
	pg := `"kind":"postgres","connection_url":"postgres://postgres@127.0.0.1:5432/postgres"`
	cases := []struct{ name, text, want string }{
		{"seed.json", `{"dynamic":{"pg":{` + pg + `,"roles":{"app":{"ttl":"1x"}}}}}`,
			`seed.json: dynamic.pg.roles.app.ttl: invalid duration "1x"`},
		{"seed.yaml", "dynamic:\n  pg:\n    kind: postgres\n    connection_url: postgres://p@h/db\n    roles:\n      app: {ttl: 1x}\n",
			`seed.yaml: dynamic.pg.roles.app.ttl: invalid duration "1x"`},
		{"seed.json", `{"clients":[{"client_id":"a","client_secret":"b","tokn_ttl":"1h"}]}`,
			"seed.json: clients[0].tokn_ttl: unknown field"},
		{"seed.yml", "clients:\n  - client_id: a\n    secret: b\n", "seed.yml: clients[0].secret: unknown field"},
		{"seed.json", `{"dynamic":{"x":{"kind":"mysql"}}}`, `seed.json: dynamic.x.kind: unknown engine kind "mysql"`},
		{"seed.json", `{"dynamic":{"x":{"roles":{}}}}`, "seed.json: dynamic.x.kind: required"},
		{"seed.json", `{"dynamic":{"x":{"kind":"postgres"}}}`, "seed.json: dynamic.x.connection_url: required"},
		{"seed.json", `{"clients":{}}`, "seed.json: clients: want a list, got an object"},
		{"seed.json", `{"pki":{"roles":{"r":{"allow_subdomains":"yes"}}}}`, "seed.json: pki.roles.r.allow_subdomains: want true or false"},
		{"seed.json", "{\n  \"root_token\": x\n}", "seed.json: line 2, column"},
		{"seed.yaml", "a: [", "seed.yaml: yaml:"},
		{"seed.json", ``, "seed.json: empty document"},
		{"seed.json", `{"clients":[{"client_id":"root","client_secret":"b"}]}`,
			`seed.json: clients[0].client_id: "root" is the root token's identity`},
		{"seed.json", `{"clients":[{"client_id":"a","client_secret":"b","policies":["nope"]}]}`,
			`seed.json: clients[0].policies[0]: unknown policy "nope"`},
		{"seed.json", `{"policies":{"p":[{"path_pattern":"a/**","permissions":["rede"]}]}}`,
			`seed.json: policies.p[0].permissions[0]: unknown permission "rede"`},
		{"seed.json", `{"policies":{"p":[{"path_pattern":"a/b**","permissions":["read"]}]}}`,
			`seed.json: policies.p[0].path_pattern:`},
		{"seed.json", `{"secrets":{"a//b":{"data":{}}}}`, "seed.json: secrets.a//b: secret path"},
		{"seed.json", `{"secrets":{"a":{}}}`, "seed.json: secrets.a.data: required"},
		{"seed.json", `{"secrets":{"a":{"data":{"k":"v"},"secret_type":"text"}}}`, `seed.json: secrets.a.data: secret_type "text"`},
		{"seed.json", `{"secrets":{"a":{"data":{},"rotation":{"policy_id":"p","interval":"9q"}}}}`,
			`seed.json: secrets.a.rotation.interval: invalid duration`},
		{"seed.json", `{"pki":{"roles":{"r":{"key_type":"ec","key_bits":1024}}}}`, "seed.json: pki.roles.r.key_bits:"},
		{"seed.json", `{"pki":{"roles":{"r":{"key_type":"dsa"}}}}`, `seed.json: pki.roles.r.key_type: unknown key type "dsa"`},
		{"seed.json", `{"dynamic":{"r":{"kind":"random","roles":{"x":{"ttl":"2h","max_ttl":"1h"}}}}}`,
			"seed.json: dynamic.r.roles.x.ttl: 2h0m0s is longer than max_ttl"},
		{"seed.json", `{"dynamic":{"r":{"kind":"random","roles":{"x":{"creation_statements":["x"]}}}}}`,
			"seed.json: dynamic.r.roles.x: statements are only for kind postgres"},
	}
	for _, tc := range cases {
		_, err := ParseSeed([]byte(tc.text), tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s:\n got %v\nwant %s", tc.name, tc.text, err, tc.want)
		}
	}
}

func TestLoadSeedAndNewErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.json")
	if err := os.WriteFile(p, []byte(`{"root_token":"r","dynamic":{"x":{"kind":"nope"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSeed(p); err == nil || !strings.Contains(err.Error(), p+": dynamic.x.kind") {
		t.Fatalf("LoadSeed: %v", err)
	}
	if _, err := LoadSeed(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("missing seed loaded")
	}
	// New validates a seed built in Go.
	_, err := New(Options{Seed: &Seed{Dynamic: map[string]SeedEngine{"e": {Kind: "vault"}}}})
	if err == nil || !strings.Contains(err.Error(), "seed: dynamic.e.kind") {
		t.Fatalf("New: %v", err)
	}
}

func TestDefaultSeed(t *testing.T) {
	h := newHarness(t, nil)
	if h.s.RootToken() != "dev-root" {
		t.Fatalf("root token %q", h.s.RootToken())
	}
	app := h.token("app", "app-secret")
	db := h.read("app/db", app)
	if str(t, db.Data["username"]) == "" || str(t, db.Data["password"]) == "" {
		t.Fatalf("app/db %+v", db)
	}
	if k := h.read("app/api-key", app); k.SecretType != "text" {
		t.Fatalf("app/api-key %+v", k)
	}
	if c := h.read("app/config", app); len(c.Data) < 3 {
		t.Fatalf("app/config %+v", c)
	}
	var l fetch.Lease
	h.do("POST", "/v1/dynamic/support-db/creds/readonly", app, nil).want(t, 200).decode(t, &l)
	if !l.Renewable || l.LeaseDuration != 3600 || !l.MaxExpiresAt.Equal(l.IssuedAt.Add(24*3600e9)) {
		t.Fatalf("lease %+v", l)
	}
	var c fetch.Cert
	h.do("POST", "/v1/pki/issue/svc-mtls", app, map[string]any{"common_name": "api.svc.cluster.local",
		"alt_names": []string{"localhost"}, "ip_sans": []string{"127.0.0.1"}}).want(t, 200).decode(t, &c)
	verify(t, &c, h.clock.Now(), "localhost")
}
