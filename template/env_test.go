package template

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

const envFixtures = "../testdata/env/"

// testSnap holds every secret the env tests read.
func envTestSnap() *fetch.Snapshot {
	sec := func(path string, version int, data map[string]any) *fetch.Secret {
		raw := map[string]json.RawMessage{}
		for k, v := range data {
			b, _ := json.Marshal(v)
			raw[k] = b
		}
		return &fetch.Secret{Path: path, Version: version, Data: raw}
	}
	dyn, _ := fetch.DynamicSource("e", "r", "2h")
	return &fetch.Snapshot{
		Secrets: map[fetch.Source]*fetch.Secret{
			fetch.StaticSource("app/db", 0):  sec("app/db", 3, map[string]any{"username": "app", "password": "pw1"}),
			fetch.StaticSource("app/db", 2):  sec("app/db", 2, map[string]any{"username": "app", "password": "pw0"}),
			fetch.StaticSource("app/one", 0): sec("app/one", 2, map[string]any{"value": "s3cr3t"}),
			fetch.StaticSource("app/tls", 0): sec("app/tls", 1, map[string]any{"key": "KEYPEM", "cert": "CERTPEM"}),
			fetch.StaticSource("app/imp", 0): sec("app/imp", 5, map[string]any{"shared": "from-import", "port": 1}),
			fetch.StaticSource("app/names", 0): sec("app/names", 1, map[string]any{
				"db-pass": "n1", "9lives": "n2", "Mixed.Case": "n3", "ok_1": "n4"}),
			fetch.StaticSource("app/clash", 0): sec("app/clash", 1, map[string]any{"db-pass": "c1", "db_pass": "c2"}),
			fetch.StaticSource("app/upper", 0): sec("app/upper", 1, map[string]any{"DB_PASS": "u1"}),
			fetch.StaticSource("app/bin", 0):   sec("app/bin", 1, map[string]any{"v": "a\x00b"}),
		},
		Leases: map[fetch.Source]*fetch.Lease{dyn: {LeaseID: "dyn_1", Data: map[string]json.RawMessage{
			"username": json.RawMessage(`"v-r"`), "password": json.RawMessage(`"p-r"`)}}},
	}
}

func buildEnv(t *testing.T, spec EnvSpec, files *FileDir) ([]EnvVar, error) {
	t.Helper()
	p, err := PlanEnv(spec)
	if err != nil {
		t.Fatalf("PlanEnv: %v", err)
	}
	return p.Build(envTestSnap(), files)
}

func envVarMap(vars []EnvVar) map[string]EnvVar {
	m := map[string]EnvVar{}
	for _, v := range vars {
		m[v.Name] = v
	}
	return m
}

func TestBuildPrecedence(t *testing.T) {
	inh := []string{"SHARED=inherited", "PORT=1", "HOME=/root", "DB=scaivault://app/db#password"}
	base, over := envFixtures+"base.env", envFixtures+"override.env"
	tests := []struct {
		name string
		spec EnvSpec
		want map[string]string
	}{
		{"inherited", EnvSpec{Inherited: inh},
			map[string]string{"SHARED": "inherited", "PORT": "1", "HOME": "/root", "DB": "pw1"}},
		{"import beats inherited", EnvSpec{Inherited: inh, Imports: []string{"app/imp"}, Upcase: true},
			map[string]string{"SHARED": "from-import", "PORT": "1", "HOME": "/root"}},
		{"file beats import", EnvSpec{Inherited: inh, Imports: []string{"app/imp"}, Upcase: true, EnvFiles: []string{base}},
			map[string]string{"SHARED": "from-base", "PORT": "8080", "DB_USER": "app", "DB_PASS": "pw1",
				"LOG_LEVEL": "debug", "NOTE": "s3cr3t"}},
		{"later file wins", EnvSpec{Inherited: inh, EnvFiles: []string{base, over}},
			map[string]string{"SHARED": "from-override", "PORT": "9090", "DB_USER": "app"}},
		{"later file wins, reversed", EnvSpec{Inherited: inh, EnvFiles: []string{over, base}},
			map[string]string{"SHARED": "from-base", "PORT": "8080"}},
		{"flags beat files", EnvSpec{Inherited: inh, EnvFiles: []string{base, over},
			Env: []string{"SHARED=flag1", "SHARED=flag2", "DB_PASS=scaivault://app/db?version=2#password", "EMPTY="}},
			map[string]string{"SHARED": "flag2", "PORT": "9090", "DB_PASS": "pw0", "EMPTY": ""}},
		{"lowercase import", EnvSpec{Inherited: inh, Imports: []string{"app/imp"}, Prefix: "x-"},
			map[string]string{"SHARED": "inherited", "x_shared": "from-import", "x_port": "1"}},
		{"pristine", EnvSpec{Env: []string{"A=b"}}, map[string]string{"A": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := newTestFileDir(t)
			vars, err := buildEnv(t, tt.spec, files)
			if err != nil {
				t.Fatal(err)
			}
			got := envVarMap(vars)
			for name, want := range tt.want {
				if v, ok := got[name]; !ok || v.Value != want {
					t.Errorf("%s = %q (present %v), want %q", name, v.Value, ok, want)
				}
			}
			if tt.name == "pristine" && len(vars) != 1 {
				t.Errorf("pristine: %d variables, want 1", len(vars))
			}
			if !slices.IsSortedFunc(vars, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) }) {
				t.Error("variables not sorted by name")
			}
		})
	}
}

func newTestFileDir(t *testing.T) *FileDir {
	t.Helper()
	d, _, err := newFileDir(fakeGetenv(map[string]string{"XDG_RUNTIME_DIR": t.TempDir()}), "/nonexistent", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildOriginsMaskFiles(t *testing.T) {
	files := newTestFileDir(t)
	spec := EnvSpec{
		Inherited: []string{"LIT=plain"},
		Imports:   []string{"app/one"},
		Upcase:    true,
		EnvFiles:  []string{envFixtures + "base.env"},
		Env:       []string{"DYN=scaivault+dynamic://e/r?ttl=120m#username", "CERT=scaivault://app/tls?as=file#cert"},
	}
	vars, err := buildEnv(t, spec, files)
	if err != nil {
		t.Fatal(err)
	}
	m := envVarMap(vars)
	key, cert := filepath.Join(files.Path(), "TLS_KEY"), filepath.Join(files.Path(), "CERT")
	tests := []struct {
		name, value, origin, mask string
		version                   int
	}{
		{"LIT", "plain", "environment", "plain", 0},
		{"VALUE", "s3cr3t", "--secret app/one", "<scaivault://app/one#value v2>", 2},
		{"DB_PASS", "pw1", envFixtures + "base.env:3", "<scaivault://app/db#password v3>", 3},
		{"LOG_LEVEL", "debug", envFixtures + "base.env:4", "debug", 0},
		{"TLS_KEY", key, envFixtures + "base.env:9", "<scaivault://app/tls?as=file#key v1>", 1},
		{"DYN", "v-r", "--env", "<scaivault+dynamic://e/r?ttl=120m#username>", 0},
		{"CERT", cert, "--env", "<scaivault://app/tls?as=file#cert v1>", 1},
	}
	for _, tt := range tests {
		v := m[tt.name]
		if v.Value != tt.value || v.Origin != tt.origin || Mask(v) != tt.mask || v.Version != tt.version {
			t.Errorf("%s = %+v (mask %q); want value %q origin %q mask %q version %d",
				tt.name, v, Mask(v), tt.value, tt.origin, tt.mask, tt.version)
		}
	}
	if m["TLS_KEY"].File != key || !m["TLS_KEY"].FileChanged || readTestFile(t, key) != "KEYPEM" || readTestFile(t, cert) != "CERTPEM" {
		t.Errorf("as=file: %+v", m["TLS_KEY"])
	}
	checkFileMode(t, key, 0o600)

	// A second build leaves the files alone.
	p, _ := PlanEnv(spec)
	vars2, err := p.Build(envTestSnap(), files)
	if err != nil || envVarMap(vars2)["TLS_KEY"].FileChanged {
		t.Errorf("second build: changed %v, %v", envVarMap(vars2)["TLS_KEY"].FileChanged, err)
	}
	if !reflect.DeepEqual(Environ(vars), Environ(vars2)) {
		t.Error("second build: another environment")
	}
	if _, err := p.Build(envTestSnap(), nil); err == nil ||
		!strings.Contains(err.Error(), envFixtures+"base.env:9 TLS_KEY: as=file needs the private file directory") {
		t.Errorf("as=file without a directory: %v", err)
	}
	if !p.NeedsFiles() {
		t.Error("NeedsFiles false")
	}
}

func TestImportName(t *testing.T) {
	tests := []struct {
		prefix, key string
		upcase      bool
		want        string
	}{
		{"", "password", false, "password"},
		{"", "password", true, "PASSWORD"},
		{"DB_", "pass", false, "DB_pass"},
		{"db-", "pass", true, "DB_PASS"},
		{"", "db-pass", false, "db_pass"},
		{"", "Mixed.Case", true, "MIXED_CASE"},
		{"", "9lives", false, "_9lives"},
		{"1", "x", false, "_1x"},
		{"", "héllo wörld", false, "h_llo_w_rld"},
		{"", "a/b:c", true, "A_B_C"},
		{"", "", false, ""},
	}
	for _, tt := range tests {
		if got := ImportName(tt.prefix, tt.key, tt.upcase); got != tt.want {
			t.Errorf("ImportName(%q, %q, %v) = %q, want %q", tt.prefix, tt.key, tt.upcase, got, tt.want)
		}
	}
}

func TestImports(t *testing.T) {
	vars, err := buildEnv(t, EnvSpec{Imports: []string{"app/names", "app/names"}, Prefix: "p.", Upcase: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"P_9LIVES=n2", "P_DB_PASS=n1", "P_MIXED_CASE=n3", "P_OK_1=n4"}
	if got := Environ(vars); !reflect.DeepEqual(got, want) {
		t.Errorf("Environ = %q, want %q", got, want)
	}
	if m := envVarMap(vars); m["P_DB_PASS"].Ref.Raw != "scaivault://app/names#db-pass" {
		t.Errorf("import ref %q", m["P_DB_PASS"].Ref.Raw)
	}

	collisions := []struct {
		spec EnvSpec
		want string
	}{
		{EnvSpec{Imports: []string{"app/clash"}},
			`--secret: key "db-pass" of "app/clash" and key "db_pass" of "app/clash" both make variable db_pass`},
		{EnvSpec{Imports: []string{"app/names", "app/upper"}, Upcase: true},
			`--secret: key "db-pass" of "app/names" and key "DB_PASS" of "app/upper" both make variable DB_PASS`},
		{EnvSpec{Imports: []string{"app/missing"}}, `--secret app/missing: secret "app/missing": not resolved`},
	}
	for _, c := range collisions {
		_, err := buildEnv(t, c.spec, nil)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: error %v, want %s", c.spec.Imports, err, c.want)
		}
	}
	// An import that --env overrides is no collision.
	if _, err := buildEnv(t, EnvSpec{Imports: []string{"app/names", "app/upper"}, Upcase: true, Env: []string{"DB_PASS=x"}}, nil); err == nil {
		t.Error("collision hidden by an --env override: want an error all the same")
	}
}

func TestCredentials(t *testing.T) {
	inh := []string{"SCAIVAULT_TOKEN=tok", "SCAIKEY_CLIENT_SECRET=cs", "SCAIKEY_CLIENT_ID=id",
		"SCAIVAULT_TOKEN_FILE=/run/tok", "SCAIVAULT_BASE_URL=http://x", "PATH=/bin", "noequals", "=C:"}
	vars, err := buildEnv(t, EnvSpec{Inherited: inh}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "SCAIVAULT_BASE_URL=http://x", "SCAIVAULT_TOKEN_FILE=/run/tok"}
	if got := Environ(vars); !reflect.DeepEqual(got, want) {
		t.Errorf("stripped: %q, want %q", got, want)
	}
	vars, err = buildEnv(t, EnvSpec{Inherited: inh, KeepCredentials: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"PATH=/bin", "SCAIKEY_CLIENT_ID=id", "SCAIKEY_CLIENT_SECRET=cs",
		"SCAIVAULT_BASE_URL=http://x", "SCAIVAULT_TOKEN=tok", "SCAIVAULT_TOKEN_FILE=/run/tok"}
	if got := Environ(vars); !reflect.DeepEqual(got, want) {
		t.Errorf("kept: %q, want %q", got, want)
	}
	// Set explicitly for the child: kept.
	vars, err = buildEnv(t, EnvSpec{Inherited: inh, Env: []string{"SCAIVAULT_TOKEN=scaivault://app/one"}}, nil)
	if err != nil || envVarMap(vars)["SCAIVAULT_TOKEN"].Value != "s3cr3t" {
		t.Errorf("explicit SCAIVAULT_TOKEN: %v, %v", envVarMap(vars)["SCAIVAULT_TOKEN"], err)
	}
}

func TestPristineEnviron(t *testing.T) {
	vars, err := buildEnv(t, EnvSpec{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := Environ(vars); got == nil || len(got) != 0 {
		t.Errorf("Environ = %#v, want an empty non-nil slice", got)
	}
}

func TestPlanEnvErrors(t *testing.T) {
	tests := []struct {
		spec EnvSpec
		want string
	}{
		{EnvSpec{EnvFiles: []string{envFixtures + "bad.env"}}, envFixtures + "bad.env:2: missing ="},
		{EnvSpec{EnvFiles: []string{envFixtures + "unmatched.env"}}, envFixtures + `unmatched.env:1: unmatched "`},
		{EnvSpec{EnvFiles: []string{envFixtures + "badref.env"}},
			envFixtures + `badref.env:3 DB_PASS: reference "scaivault://app/db?versoin=1": unknown query parameter "versoin"`},
		{EnvSpec{EnvFiles: []string{envFixtures + "none.env"}}, "env file: open " + envFixtures + "none.env: no such file or directory"},
		{EnvSpec{Env: []string{"DB_PASS=scaivault://app/db#"}}, `--env DB_PASS: reference "scaivault://app/db#": empty key after "#"`},
		{EnvSpec{Inherited: []string{"DB_PASS=scaivault+pki://svc"}}, `environment DB_PASS: reference "scaivault+pki://svc": missing common_name`},
		{EnvSpec{Env: []string{"A=1", "s3cret-NOPE"}}, `--env argument 2: want NAME=VALUE; it has no "=" (not shown: it may hold a secret)`},
		{EnvSpec{Env: []string{"A B=1"}}, `--env "A B": invalid character ' ' in variable name`},
		{EnvSpec{Env: []string{"=1"}}, `--env "": empty variable name`},
		{EnvSpec{Imports: []string{"app//x"}}, `--secret "app//x": secret path "app//x": segment 2: empty segment`},
		{EnvSpec{Env: []string{"A=scaivault://x?as=disk", "B=scaivault://y?version=0"}},
			"--env A: reference \"scaivault://x?as=disk\": bad as=\"disk\" (want as=file)\n" +
				`--env B: reference "scaivault://y?version=0": bad version "0" (want a positive integer)`},
	}
	for _, tt := range tests {
		_, err := PlanEnv(tt.spec)
		if err == nil || err.Error() != tt.want {
			t.Errorf("PlanEnv(%+v):\n got error %v\nwant error %s", tt.spec, err, tt.want)
		}
	}
}

func TestCutReference(t *testing.T) {
	_, err := PlanEnv(EnvSpec{EnvFiles: []string{envFixtures + "cut.env"}})
	want := envFixtures + `cut.env:3 DB_PASSWORD: unquoted "#" cuts the reference: in an env file it starts a comment; quote it: DB_PASSWORD="scaivault://app/db#password"`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	var cut *CutRefError
	if !errors.As(err, &cut) || !errors.Is(err, ErrCutReference) {
		t.Fatalf("error %T is no CutRefError", err)
	}
	if h := cut.Hint(); h != `in an env file, quote a reference with #KEY: DB_PASSWORD="scaivault://app/db#password"` {
		t.Errorf("hint %q", h)
	}

	dir := t.TempDir()
	for _, line := range []string{
		"K=scaivault://app/db #note", "K=scaivault://app/db    # note", `K="scaivault://app/db"#note`,
		"K=not-a-ref#x", "K=scaivault://app/db",
	} {
		f := filepath.Join(dir, "ok.env")
		if err := os.WriteFile(f, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := PlanEnv(EnvSpec{EnvFiles: []string{f}})
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if refs := p.Refs(); strings.HasPrefix(line, "K=scaivault") && (len(refs) != 1 || refs[0].Key != "") {
			t.Errorf("%q: refs %+v", line, refs)
		}
	}
	for _, line := range []string{"export K=scaivault://app/db#password # note", "K = scaivault+dynamic://e/r#username"} {
		f := filepath.Join(dir, "cut.env")
		if err := os.WriteFile(f, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := PlanEnv(EnvSpec{EnvFiles: []string{f}}); !errors.Is(err, ErrCutReference) {
			t.Errorf("%q: error %v, want a cut reference", line, err)
		}
	}
}

func TestSourcesRefs(t *testing.T) {
	p, err := PlanEnv(EnvSpec{
		Inherited: []string{"Z=scaivault://app/one", "A=scaivault://app/db#username", "B=scaivault://app/db?as=file#password",
			"GONE=scaivault://app/gone"},
		Imports: []string{"app/imp"},
		Env: []string{"GONE=literal", "C=scaivault+dynamic://e/r?ttl=2h#username", "D=scaivault+dynamic://e/r?ttl=120m#password",
			"E=scaivault+pki://svc?common_name=a&ttl=1h#certificate_pem", "F=scaivault+pki://svc?ttl=60m&common_name=a#ca_chain"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dyn, _ := fetch.DynamicSource("e", "r", "2h")
	pki, _ := fetch.PKISource("svc", fetch.IssueRequest{CommonName: "a", TTL: "1h"})
	want := []fetch.Source{fetch.StaticSource("app/imp", 0), fetch.StaticSource("app/db", 0), fetch.StaticSource("app/one", 0), dyn, pki}
	if got := p.Sources(); !reflect.DeepEqual(got, want) {
		t.Errorf("Sources = %v, want %v", got, want)
	}
	var raws []string
	for _, r := range p.Refs() {
		raws = append(raws, r.Raw)
	}
	wantRaws := []string{"scaivault://app/db#username", "scaivault://app/db?as=file#password", "scaivault://app/one",
		"scaivault+dynamic://e/r?ttl=2h#username", "scaivault+dynamic://e/r?ttl=120m#password",
		"scaivault+pki://svc?common_name=a&ttl=1h#certificate_pem", "scaivault+pki://svc?ttl=60m&common_name=a#ca_chain"}
	if !reflect.DeepEqual(raws, wantRaws) {
		t.Errorf("Refs = %q, want %q", raws, wantRaws)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		spec EnvSpec
		want string
	}{
		{EnvSpec{Env: []string{"X=scaivault://app/db#nope"}},
			`--env X: secret "app/db" version 3 has no key "nope" (keys: password, username)`},
		{EnvSpec{Env: []string{"X=scaivault://app/bin"}},
			"--env X: the value holds a NUL byte, which an environment variable cannot (use as=file)"},
		{EnvSpec{Env: []string{"A/B=scaivault://app/one?as=file", "A_B=scaivault://app/one?as=file"}},
			"--env A_B: as=file: variables A/B and A_B would share file A_B"},
		{EnvSpec{Inherited: []string{"Y=scaivault://app/none"}, Env: []string{"X=scaivault://app/db#nope"}},
			"--env X: secret \"app/db\" version 3 has no key \"nope\" (keys: password, username)\n" +
				`environment Y: secret "app/none": not resolved`},
	}
	for _, tt := range tests {
		_, err := buildEnv(t, tt.spec, newTestFileDir(t))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Build(%+v):\n got error %v\nwant error %s", tt.spec, err, tt.want)
		}
		for _, secret := range []string{"pw1", "app\"", "a\x00b"} {
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error holds a value: %v", err)
			}
		}
	}
	// as=file takes values an environment variable cannot hold.
	vars, err := buildEnv(t, EnvSpec{Env: []string{"X=scaivault://app/bin?as=file"}}, newTestFileDir(t))
	if err != nil || readTestFile(t, vars[0].File) != "a\x00b" {
		t.Errorf("as=file with a NUL byte: %v", err)
	}
}

// A Build that fails writes no as=file file: a change that cannot be
// applied leaves every file as it was.
func TestBuildFailureWritesNoFile(t *testing.T) {
	files := newTestFileDir(t)
	_, err := buildEnv(t, EnvSpec{Env: []string{
		"A_KEY=scaivault://app/tls?as=file#key",
		"B_BAD=scaivault://app/tls?as=file#nokey",
	}}, files)
	if err == nil {
		t.Fatal("Build succeeded with a missing key")
	}
	checkDirHolds(t, files.Path())
	// The same spec without the bad variable writes the file.
	vars, err := buildEnv(t, EnvSpec{Env: []string{"A_KEY=scaivault://app/tls?as=file#key"}}, files)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(vars[0].File); string(got) != "KEYPEM" || !vars[0].FileChanged {
		t.Errorf("file %q holds %q, changed=%v", vars[0].File, got, vars[0].FileChanged)
	}
}

// UsersBySource says for every source what UsersOf says of it, imports
// first, and has a key for every source the plan needs.
func TestUsersBySource(t *testing.T) {
	p, err := PlanEnv(EnvSpec{
		Inherited: []string{"B=scaivault://app/db#password", "A=scaivault://app/db#username", "C=plain"},
		Imports:   []string{"app/db", "app/other"},
		Env:       []string{"D=scaivault+dynamic://support-db/readonly#username", "E=scaivault+dynamic://support-db/readonly#password", "B=scaivault://app/x#k"},
	})
	if err != nil {
		t.Fatal(err)
	}
	all := p.UsersBySource()
	srcs := p.Sources()
	if len(all) != len(srcs) {
		t.Errorf("%d sources with users, %d sources", len(all), len(srcs))
	}
	for _, src := range srcs {
		if got, want := all[src], p.UsersOf(src); !slices.Equal(got, want) {
			t.Errorf("%v: UsersBySource %q, UsersOf %q", src, got, want)
		}
	}
	if got := all[fetch.StaticSource("app/db", 0)]; len(got) != 2 || got[0] != "--secret app/db" {
		t.Errorf("app/db: %q, want the import, then variable A (B is overridden by --env)", got)
	}
}
