package template

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// raw builds secret data from JSON texts.
func raw(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testSnapshot is a hand-made snapshot: no server needed.
func testSnapshot(t testing.TB) *fetch.Snapshot {
	t.Helper()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	dyn := must(fetch.DynamicSource("support-db", "readonly", "2h"))
	pki := must(fetch.PKISource("svc-mtls", fetch.IssueRequest{CommonName: "billing.svc", AltNames: []string{"b", "a"}}))
	return &fetch.Snapshot{
		Secrets: map[fetch.Source]*fetch.Secret{
			fetch.StaticSource("app/db", 0): {Path: "app/db", Version: 3, SecretType: "json",
				Data:      raw("password", `"pw1"`, "username", `"app"`, "port", `5432`, "api-key", `"k-1"`),
				Metadata:  map[string]any{"custom": map[string]any{"owner": "team-a"}},
				UpdatedAt: at, CreatedAt: at.Add(-time.Hour)},
			fetch.StaticSource("app/db", 2): {Path: "app/db", Version: 2, Data: raw("password", `"old"`)},
			fetch.StaticSource("app/cfg", 0): {Path: "app/cfg", Version: 1,
				Data: raw("nested", `{"a":{"b":"deep"},"list":[1,"two",true]}`, "ratio", `1.5`,
					"on", `true`, "blob", `"aGVsbG8="`, "json", `"{\"k\":[1,2]}"`, "html", `"<a&b>"`)},
		},
		Lists: map[fetch.Source][]fetch.ListEntry{
			fetch.ListSource("app/"): {{Path: "app/db"}, {Path: "app/cfg"}},
		},
		Leases: map[fetch.Source]*fetch.Lease{
			dyn: {LeaseID: "dyn_1", Renewable: true, LeaseDuration: 7200, ExpiresAt: at,
				Data: raw("username", `"v-ro"`, "password", `"lease-pw"`)},
		},
		Certs: map[fetch.Source]*fetch.Cert{
			pki: {SerialNumber: "3a:91", CertificatePEM: "CERT\n", PrivateKeyPEM: "KEY\n",
				CAChain: []string{"ISSUER\n", "ROOT"}, CAID: "ca1", ExpiresAt: at},
		},
	}
}

// render renders text as one template named app.tmpl against snap.
func render(t testing.TB, snap *fetch.Snapshot, text string) (string, []fetch.Source, error) {
	t.Helper()
	tm, err := parseTemplateText("app.tmpl", text, "{{", "}}")
	if err != nil {
		return "", nil, err
	}
	env := map[string]string{"HOME": "/home/test", "EMPTY": ""}
	s := &Set{
		opt: Options{LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		}},
		entries: []*tmplEntry{{spec: Spec{Src: "app.tmpl", Dst: Stdout, Mode: DefaultMode}, tmpl: tm}},
	}
	out, missing, err := s.Render(snap)
	if err != nil || len(missing) > 0 {
		return "", missing, err
	}
	return string(out[0].Data), nil, nil
}

func TestFuncs(t *testing.T) {
	snap := testSnapshot(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, []byte("from file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, text, want string }{
		{"secret", `{{ with secret "app/db" }}{{ .Path }} v{{ .Version }} {{ .SecretType }} {{ .Data.username }} {{ .Data.port }} {{ .Metadata.custom.owner }} {{ .UpdatedAt.Unix }} {{ .CreatedAt.Unix }}{{ end }}`,
			"app/db v3 json app 5432 team-a 1795608000 1795604400"},
		{"secret version", `{{ (secret "app/db" "version=2").Data.password }}`, "old"},
		{"secret ?version", `{{ with secret "app/db?version=2" }}{{ .Data.password }} {{ .Path }} {{ .Version }}{{ end }}`, "old app/db 2"},
		{"secret nested JSON prints as JSON", `{{ (secret "app/cfg").Data.nested }} {{ (secret "app/cfg").Data.nested.list }} {{ (secret "app/cfg").Data.nested.a.b }}`,
			`{"a":{"b":"deep"},"list":[1,"two",true]} [1,"two",true] deep`},
		{"secret data as JSON", `{{ (secret "app/db").Data }}`, `{"api-key":"k-1","password":"pw1","port":5432,"username":"app"}`},
		{"index dash key", `{{ index (secret "app/db").Data "api-key" }}`, "k-1"},
		{"secrets", `{{ range secrets "app/" }}{{ . }},{{ end }}{{ range secrets "app" }}{{ (secret (print "app/" .)).Version }},{{ end }}`, "cfg,db,1,3,"},
		{"dynamic", `{{ with dynamic "support-db" "readonly" "ttl=120m" }}{{ .LeaseID }} {{ .Data.username }} {{ .Renewable }} {{ .LeaseDuration }} {{ .ExpiresAt.Unix }}{{ end }}`,
			"dyn_1 v-ro true 7200 1795608000"},
		{"pkiCert", `{{ with pkiCert "svc-mtls" "common_name=billing.svc" "alt_names=a,b" }}{{ .Cert }}{{ .Key }}{{ .CA }}{{ len .CAChain }} {{ .Serial }} {{ .CAID }}{{ end }}`,
			"CERT\nKEY\nISSUER\nROOT\n2 3a:91 ca1"},
		{"pkiCert .Data", `{{ with pkiCert "svc-mtls" "common_name=billing.svc" "alt_names=a,b" }}{{ .Data.Cert }}{{ .Data.Key }}{{ .Data.CA }}{{ eq .Data.CA .CA }}{{ end }}`,
			"CERT\nKEY\nISSUER\nROOT\ntrue"},
		{"env", `{{ env "HOME" }}|{{ env "NOPE" }}|{{ envOrDefault "EMPTY" "d" }}|{{ envOrDefault "NOPE" "d" }}|{{ envOrDefault "HOME" "d" }}|{{ mustEnv "HOME" }}`, "/home/test|||d|/home/test|/home/test"},
		{"file", `{{ file "` + file + `" }}`, "from file\n"},
		{"toJSON", `{{ toJSON (secret "app/cfg").Data.html }} {{ toUnescapedJSON (secret "app/cfg").Data.html }} {{ toJSON (dict "n" (secret "app/db").Data.port) }}`,
			`"\u003ca\u0026b\u003e" "<a&b>" {"n":5432}`},
		{"toJSONPretty", `{{ toJSONPretty (dict "a" 1) }}|{{ toUnescapedJSONPretty (list "<") }}`, "{\n  \"a\": 1\n}|[\n  \"<\"\n]"},
		{"toYAML", `{{ toYAML (secret "app/cfg").Data.nested }}`, "a:\n  b: deep\nlist:\n  - 1\n  - two\n  - true"},
		{"toTOML", `{{ toTOML (secret "app/db").Data }}|{{ toTOML (secret "app/cfg").Data.nested }}`,
			"api-key = \"k-1\"\npassword = \"pw1\"\nport = 5432\nusername = \"app\"|list = [1, \"two\", true]\n\n[a]\n  b = \"deep\""},
		{"parseJSON", `{{ with parseJSON (secret "app/cfg").Data.json }}{{ .k }} {{ index .k 1 }}{{ end }}{{ parseJSON "" }}`, "[1,2] 2{}"},
		{"parseYAML", `{{ with parseYAML "a: 1\nb: [x, y]" }}{{ .a }} {{ index .b 1 }}{{ end }}`, "1 y"},
		{"base64", `{{ base64Decode (secret "app/cfg").Data.blob }} {{ base64Encode "hello" }} {{ base64Decode "aGVsbG8" }} {{ base64URLEncode "hi??>" }} {{ base64URLDecode "aGk_Pz4=" }} {{ base64URLDecode "aGk_Pz4" }}`,
			"hello aGVsbG8= hello aGk_Pz4= hi??> hi??>"},
		{"hashes", `{{ sha256Hex "abc" }} {{ md5sum "abc" }} {{ hmacSHA256Hex "msg" "key" }}`,
			"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 900150983cd24fb0d6963f7d28e17f72 2d93cbc1be167bcb1637a4a23cbff01a7878f0c50ee833954ea5221bb1b8c628"},
		{"case", `{{ toLower "AbC" }} {{ toUpper "AbC" }} {{ title "hello wORLD don't-stop" }} {{ toTitle "éa b" }}`, "abc ABC Hello WORLD Don't-Stop Éa B"},
		{"trim", `[{{ trim "  x  " }}][{{ trim "xy" "xyaxy" }}][{{ trimSpace "\n a \t" }}][{{ trimPrefix "ab" "abc" }}][{{ trimSuffix "bc" "abc" }}]`, "[x][a][a][c][a]"},
		{"replace", `{{ replace "a" "b" "aXa" }} {{ "aXa" | replaceAll "a" "c" }} {{ regexReplaceAll "(\\d+)" "<$1>" "a1b22" }} {{ regexMatch "^a\\d$" "a1" }}`, "bXb cXc a<1>b<22> true"},
		{"split join", `{{ range split "," "a,b,c" }}[{{ . }}]{{ end }} {{ len (split "," "  ") }} {{ join "-" (list "a" 1 true) }} {{ "x,y" | split "," | join "+" }}`, "[a][b][c] 0 a-1-true x+y"},
		{"splitToMap", `{{ with splitToMap "," ":" "a:1,b:2,c" }}{{ .a }}{{ .b }} {{ len . }}{{ end }}`, "12 2"},
		{"contains", `{{ contains "b" "abc" }} {{ contains "z" "abc" }} {{ contains "b" (list "a" "b") }} {{ hasPrefix "ab" "abc" }} {{ hasSuffix "bc" "abc" }} {{ hasSuffix "x" "abc" }}`, "true false true true true false"},
		{"indent", "{{ indent 2 \"a\\n\\nb\" }}|{{ nindent 4 \"x\" }}", "  a\n\n  b|\n    x"},
		{"quote", `{{ quote "a\"b" }} {{ squote "it" }} {{ quote "x" 1 }} {{ repeat 3 "ab" }}`, `"a\"b" 'it' "x" "1" ababab`},
		{"parse numbers", `{{ parseBool "true" }} {{ parseInt "-42" }} {{ parseUint "42" }} {{ parseFloat "1.5" }} {{ parseInt "" }} {{ parseInt (secret "app/db").Data.port }}`, "true -42 42 1.5 0 5432"},
		{"default", `{{ default "d" "" }} {{ default "d" "v" }} {{ "" | default "p" }} {{ default 1 0 }} {{ coalesce "" 0 "c" }} {{ empty "" }} {{ empty (list) }} {{ empty 1 }} {{ required "need it" "ok" }}`,
			"d v p 1 c true true false ok"},
		{"lists", `{{ list 1 "a" }} {{ with dict "b" 2 "a" 1 }}{{ keys . }} {{ .a }}{{ end }} {{ sortAlpha (list "b" "a" "c") }} {{ first (list 1 2) }} {{ last (list 1 2) }}`,
			"[1 a] [a b] 1 [a b c] 1 2"},
		{"in", `{{ in (list 1 2) 2 }} {{ in (list "a") "b" }} {{ in "abc" "bc" }} {{ containsAll (list "a" "b") (list "a" "b" "c") }} {{ containsAny (list "x" "a") (list "a") }} {{ containsNone (list "x") (list "a") }} {{ containsNotAll (list "a" "x") (list "a") }}`,
			"true false true true true true true"},
		{"in json numbers", `{{ in (secret "app/cfg").Data.nested.list 1 }} {{ in (secret "app/cfg").Data.nested.list "two" }}`, "true true"},
		{"loop", `{{ range loop 3 }}{{ . }}{{ end }} {{ range loop 5 7 }}{{ . }}{{ end }}`, "012 56"},
		{"hasKey get", `{{ hasKey (secret "app/db").Data "port" }} {{ hasKey (secret "app/db").Data "x" }} [{{ get (secret "app/db").Data "x" }}] {{ get (secret "app/db").Data "username" }}`,
			"true false [] app"},
		{"mergeMap", `{{ $a := dict "x" 1 "n" (dict "p" 1) }}{{ $b := dict "x" 2 "y" 3 "n" (dict "p" 2 "q" 3) }}{{ toJSON (mergeMap $a $b) }} {{ toJSON (mergeMapWithOverride $a $b) }} {{ toJSON $a }}`,
			`{"n":{"p":1,"q":3},"x":1,"y":3} {"n":{"p":2,"q":3},"x":2,"y":3} {"n":{"p":1},"x":1}`},
		{"explodeMap", `{{ toJSON (explodeMap (dict "a/b" 1 "a/c" 2 "d" 3)) }}`, `{"a":{"b":1,"c":2},"d":3}`},
		{"math", `{{ add 1 2 }} {{ sub 7 2 }} {{ 7 | subtract 2 }} {{ multiply 3 4 }} {{ 10 | divide 4 }} {{ 10.0 | divide 4 }} {{ 10 | modulo 4 }} {{ minimum 3 5 }} {{ maximum 3 5 }} {{ add (secret "app/db").Data.port 1 }} {{ add "1.5" 1 }}`,
			"3 5 5 12 2 2.5 2 3 5 5433 2.5"},
		{"executeTemplate", `{{ define "x" }}<{{ . }}>{{ end }}{{ executeTemplate "x" "a" | toUpper }}`, "<A>"},
		{"scratch", `{{ scratch.Set "k" 1 }}{{ scratch.SetX "k" 2 }}{{ scratch.Get "k" }} {{ scratch.Key "k" }} {{ scratch.Key "z" }}{{ scratch.MapSet "m" "b" 2 }}{{ scratch.MapSet "m" "a" 1 }}{{ scratch.MapSetX "m" "a" 9 }} {{ scratch.MapValues "m" }}`,
			"1 true false [1 2]"},
		{"scratch MapValues of no map", `{{ scratch.Set "s" "x" }}{{ scratch.MapValues "s" }} {{ scratch.MapValues "unset" }} {{ len (scratch.MapValues "s") }} {{ scratch.Set "d" (dict "b" 2 "a" 1) }}{{ scratch.MapValues "d" }}`,
			"[] [] 0 [1 2]"},
		{"builtins", `{{ len (secret "app/db").Data.password }} {{ printf "%05d" 42 }} {{ if and true (not false) }}y{{ end }} {{ slice "abc" 1 }}`, "3 00042 y bc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing, err := render(t, snap, tt.text)
			if err != nil || len(missing) > 0 {
				t.Fatalf("render: %v (missing %v)", err, missing)
			}
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestFuncsEveryNameTested(t *testing.T) {
	// TestFuncs and the golden files between them call every function; this
	// keeps the list in funcs.go and the documentation honest.
	for name := range parseFuncs() {
		name = strings.TrimPrefix(name, "sprig_")
		if !strings.Contains(funcsDoc, " "+name) {
			t.Errorf("function %s is not in the list of funcs.go", name)
		}
	}
}

// funcsDoc is the list of functions documented at the top of funcs.go.
var funcsDoc = func() string {
	b, err := os.ReadFile("funcs.go")
	if err != nil {
		panic(err)
	}
	return strings.ReplaceAll(string(b), "\t", " ")
}()

func TestFuncErrors(t *testing.T) {
	snap := testSnapshot(t)
	tests := []struct{ name, text, want string }{
		{"unknown option", `{{ secret "app/db" "verison=2" }}`, `template app.tmpl:1:4: at <secret "app/db" "verison=2">: error calling secret: "app/db": unknown option "verison" (want version=...)`},
		{"bad version", `{{ secret "app/db" "version=x" }}`, `bad version "x" (want a positive integer)`},
		{"bad ?version", `{{ secret "app/db?version=x" }}`, `"app/db": bad version "x" (want a positive integer)`},
		{"query other than version", `{{ secret "app/db?ns=a" }}`, `"app/db?ns=a": a path's query may only be version=N`},
		{"version twice", `{{ secret "app/db?version=2" "version=3" }}`, `option "version" given twice`},
		{"option twice", `{{ dynamic "support-db" "readonly" "ttl=1h" "ttl=2h" }}`, `option "ttl" given twice`},
		{"not an option", `{{ pkiCert "svc-mtls" "billing.svc" }}`, `option "billing.svc" is not KEY=VALUE`},
		{"pki without common_name", `{{ pkiCert "svc-mtls" "ttl=1h" }}`, `missing common_name`},
		{"pki role as a Vault path", `{{ pkiCert "pki/issue/svc-mtls" "common_name=a" }}`, `role "pki/issue/svc-mtls": a ScaiVault PKI role is a name, not a Vault path (pkiCert "svc-mtls" "common_name=...")`},
		{"bad path", `{{ secret "app//db" }}`, `secret path "app//db"`},
		{"bad ttl", `{{ dynamic "support-db" "readonly" "ttl=soon" }}`, `bad ttl "soon"`},
		{"mustEnv", `{{ mustEnv "EMPTY" }}`, `environment variable EMPTY is unset or empty`},
		{"required", `{{ required "db password needed" "" }}`, `error calling required: db password needed`},
		{"first of empty", `{{ first (list) }}`, `empty list`},
		{"parseInt hides its input", `{{ parseInt (secret "app/db").Data.username }}`, `error calling parseInt: not an integer: invalid syntax`},
		{"parseJSON hides its input", `{{ parseJSON (secret "app/db").Data.password }}`, `invalid JSON at byte 1`},
		{"regexMatch hides its pattern", `{{ regexMatch (printf "%s(" (secret "app/db").Data.password) "x" }}`, `invalid regular expression: missing closing )`},
		{"regexReplaceAll hides its pattern", `{{ regexReplaceAll (printf "[%s" (secret "app/db").Data.password) "" "x" }}`, `invalid regular expression: missing closing ]`},
		{"division by zero", `{{ divide 0 1 }}`, `division by zero`},
		{"not a number", `{{ add (list) 1 }}`, `not a number: []interface {}`},
		{"index out of range", `{{ index (list 1) 3 }}`, `index out of range: 3`},
		{"executeTemplate unknown", `{{ executeTemplate "nope" }}`, `no template "nope" defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := render(t, snap, tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			for _, v := range []string{"pw1", "lease-pw", "KEY\n"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error holds the secret value %q: %v", v, err)
				}
			}
		})
	}
}

func TestFileErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.txt")
	_, _, err := render(t, nil, `{{ file "`+path+`" }}`)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want it to name %s and match fs.ErrNotExist", err, path)
	}
}
