package template

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// universe resolves sources from a fixed snapshot, counting calls, as
// fetch.Resolver.Resolve would from a server.
type universe struct {
	all   *fetch.Snapshot
	mu    sync.Mutex
	calls [][]fetch.Source
}

func (u *universe) resolve(_ context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
	u.mu.Lock()
	u.calls = append(u.calls, srcs)
	u.mu.Unlock()
	add := &fetch.Snapshot{Secrets: map[fetch.Source]*fetch.Secret{}, Leases: map[fetch.Source]*fetch.Lease{},
		Certs: map[fetch.Source]*fetch.Cert{}, Lists: map[fetch.Source][]fetch.ListEntry{}}
	for _, src := range srcs {
		if !u.all.Has(src) {
			return nil, fmt.Errorf("read secret %q: %w", src.Path, fetch.ErrNotFound)
		}
		switch src.Kind {
		case fetch.Static:
			add.Secrets[src] = u.all.Secrets[src]
		case fetch.Dynamic:
			add.Leases[src] = u.all.Leases[src]
		case fetch.PKI:
			add.Certs[src] = u.all.Certs[src]
		case fetch.List:
			add.Lists[src] = u.all.Lists[src]
		}
	}
	return have.Merge(add), nil
}

// writeTemplates writes name/text pairs into dir and returns specs that
// render each to dir/out/NAME.
func writeTemplates(t *testing.T, dir string, kv ...string) []Spec {
	t.Helper()
	var specs []Spec
	for i := 0; i < len(kv); i += 2 {
		src := filepath.Join(dir, kv[i])
		if err := os.WriteFile(src, []byte(kv[i+1]), 0o600); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, Spec{Src: src, Dst: filepath.Join(dir, "out", strings.TrimSuffix(kv[i], ".tmpl"))})
	}
	return specs
}

func TestParseErrorLocation(t *testing.T) {
	tests := []struct{ text, want string }{
		{"a\nb {{ foo }}", "template app.tmpl:2:6: function \"foo\" not defined"},
		{"x {{ .a } }}", "template app.tmpl:1:9: unexpected \"}\" in operand"},
		{"{{ if }}", "template app.tmpl:1:4: missing value for if"},
		{"\n\n  {{ \"abc }}", "template app.tmpl:3:6: unterminated quoted string"},
		{"{{ $x }}", "template app.tmpl:1:4: undefined variable \"$x\""},
		{"ok\n{{ end }}", "template app.tmpl:2:4: unexpected {{end}}"},
		{"{{ range .x }}", "template app.tmpl:1: unexpected EOF"},
	}
	for _, tt := range tests {
		_, err := parseTemplateText("app.tmpl", tt.text, "{{", "}}")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v\nwant %s", tt.text, err, tt.want)
		}
	}
}

func TestParseNamesFileAndRejectsDuplicates(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "bad.tmpl", "line 1\n{{ nosuchfunc }}\n")
	_, err := Parse(specs, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "template "+specs[0].Src+":2:4: function \"nosuchfunc\" not defined") {
		t.Errorf("Parse: %v", err)
	}
	_, err = Parse([]Spec{{Src: filepath.Join(dir, "missing.tmpl"), Dst: "x"}}, Options{})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.tmpl") {
		t.Errorf("Parse of a missing file: %v", err)
	}
	specs = writeTemplates(t, dir, "a.tmpl", "a", "b.tmpl", "b")
	specs[1].Dst = specs[0].Dst + "/."
	if _, err = Parse(specs, Options{}); err == nil || !strings.Contains(err.Error(), "both write") {
		t.Errorf("Parse of two specs with one DST: %v", err)
	}
}

func TestDelims(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "d.tmpl", `[[ (secret "app/db").Data.username ]] {{ not an action }}`)
	specs[0].Dst = Stdout
	set, err := Parse(specs, Options{Delims: [2]string{"[[", "]]"}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := set.Render(testSnapshot(t))
	if err != nil || string(out[0].Data) != "app {{ not an action }}" {
		t.Fatalf("render: %v, %v", out, err)
	}
	for in, want := range map[string][2]string{"[[:]]": {"[[", "]]"}, "<%:%>": {"<%", "%>"}, "<<:>>": {"<<", ">>"}, "(:::)": {"(:", ":)"}} {
		if got, err := ParseDelims(in); err != nil || got != want {
			t.Errorf("ParseDelims(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "[[", ":]]", "[[:", "a::b", "[ [:] ]"} {
		if _, err := ParseDelims(in); err == nil {
			t.Errorf("ParseDelims(%q): no error", in)
		}
	}
}

func TestParseSpec(t *testing.T) {
	good := map[string]Spec{
		"a.tmpl:/etc/a.conf":      {Src: "a.tmpl", Dst: "/etc/a.conf", Mode: 0}, // keep DST's, or 0600
		"a.tmpl:/etc/a.conf:0644": {Src: "a.tmpl", Dst: "/etc/a.conf", Mode: 0o644},
		"a.tmpl:out:640":          {Src: "a.tmpl", Dst: "out", Mode: 0o640},
		"a.tmpl:-":                {Src: "a.tmpl", Dst: "-", Mode: 0},
		"a:b:0o400":               {Src: "a", Dst: "b", Mode: 0o400},
	}
	for in, want := range good {
		if got, err := ParseSpec(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseSpec(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"a.tmpl", ":b", "a:", "a:b:c:d", "a:b:0999", "a:b:4755", "a:b:0", "a:b:"} {
		_, err := ParseSpec(in)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseSpec(%q): error %v should quote the value", in, err)
		}
	}
}

func TestMissingKeyError(t *testing.T) {
	snap := testSnapshot(t)
	tests := []struct{ text, want string }{
		{"x\n{{ with secret \"app/db\" }}{{ .Data.nokey }}{{ end }}",
			`template app.tmpl:2:35: at <.Data.nokey>: no key "nokey" in secret "app/db" version 3`},
		{`{{ (secret "app/db").Data.nokey }}`, `template app.tmpl:1:12: at <"app/db">: no key "nokey" in secret "app/db" version 3`},
		{`{{ $s := secret "app/db" }}{{ $s.Data.nokey }}`, `template app.tmpl:1:33: at <$s.Data.nokey>: no key "nokey" in secret "app/db" version 3`},
		{`{{ index (secret "app/db").Data "nokey" }}`, `no key "nokey" in secret "app/db" version 3`},
		{`{{ (dynamic "support-db" "readonly" "ttl=2h").Data.nokey }}`, `no key "nokey" in dynamic "support-db/readonly" lease dyn_1`},
		{`{{ (secret "app/cfg").Data.nested.a.nokey }}`, `no key "nokey" in secret "app/cfg" version 1`},
		{`{{ (dict "a" 1).nokey }}`, `: no key "nokey" in map`},
		{`{{ (secret "app/db").Metadata.nokey }}`, `no key "nokey" in map`},
	}
	for _, tt := range tests {
		_, _, err := render(t, snap, tt.text)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\nerror %v\nwant  %s", tt.text, err, tt.want)
			continue
		}
		for _, v := range []string{"pw1", "k-1", "5432", "lease-pw", "v-ro"} {
			if strings.Contains(err.Error(), v) {
				t.Errorf("%s: error holds a value: %v", tt.text, err)
			}
		}
	}
}

func TestErrorsHoldNoValue(t *testing.T) {
	// text/template prints the value at hand in some messages; none may
	// reach the caller.
	snap := testSnapshot(t)
	for _, text := range []string{
		`{{ range (secret "app/db").Data.password }}{{ end }}`,
		`{{ range $k, $v := (secret "app/db").Data.username }}{{ end }}`,
		`{{ eq (secret "app/cfg").Data.nested 1 }}`,
		`{{ with $x := (secret "app/cfg").Data.nested }}{{ range $a, $b := $x.a.b }}{{ end }}{{ end }}`,
		`{{ (secret "app/db").Data.password.x }}`,
		`{{ executeTemplate "x" }}{{ define "x" }}{{ range (secret "app/db").Data.password }}{{ end }}{{ end }}`,
	} {
		_, _, err := render(t, snap, text)
		if err == nil {
			t.Errorf("%s: no error", text)
			continue
		}
		for _, v := range []string{"pw1", "app", "deep"} {
			if strings.Contains(strings.ReplaceAll(err.Error(), "app.tmpl", ""), v) && !strings.Contains(text, v) {
				t.Errorf("%s: error holds %q: %v", text, v, err)
			}
		}
	}
}

func TestRenderReportsMissing(t *testing.T) {
	snap := testSnapshot(t)
	// Strict execution stops at the first placeholder; the lenient run must
	// still find every secret and list in one pass, past required, pipes and
	// nested keys of data that is not there yet. Leases and certificates
	// wait for the pass in which no secret is missing: their arguments may
	// come from a placeholder, and asking creates something on the server.
	text := `{{ required "a" (secret "new/a").Data.x }}
{{ (secret "new/b").Data.x.y.z | toUpper | base64Decode }}
{{ with secret "new/c" }}{{ .Data.k }}{{ end }}
{{ (secret "app/db").Data.username }}
{{ index (secret "new/d").Data "k" "j" }}
{{ (dynamic "e" "r").Data.user }}
{{ (pkiCert "svc" "common_name=x.svc").Cert | len }}
{{ range secrets "new/" }}{{ . }}{{ end }}`
	_, missing, err := render(t, snap, text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`secret "new/a"`, `secret "new/b"`, `secret "new/c"`, `secret "new/d"`, "list"}
	if len(missing) != len(want) {
		t.Fatalf("missing %v, want %d sources", missing, len(want))
	}
	for i, src := range missing {
		if i < 4 && src.Path != strings.Trim(strings.TrimPrefix(want[i], "secret "), `"`) {
			t.Errorf("missing[%d] = %v, want %s", i, src, want[i])
		}
	}
	if missing[4].Kind != fetch.List {
		t.Errorf("missing = %v", missing)
	}
	// With every secret there, the lease and the certificate are found.
	_, missing, err = render(t, snap, `{{ (dynamic "e" "r").Data.user }}{{ (secret "app/db").Data.username }}
{{ (pkiCert "svc" "common_name=x.svc").Cert | len }}`)
	if err != nil || len(missing) != 2 || missing[0].Kind != fetch.Dynamic || missing[1].Kind != fetch.PKI {
		t.Errorf("missing %v, %v; want the lease and the certificate", missing, err)
	}
}

// A certificate whose common name comes from a secret not read yet is
// issued once, for the real name: never for the placeholder's.
func TestRenderAllIssuesNoPlaceholderCertificate(t *testing.T) {
	all := testSnapshot(t)
	host := fetch.StaticSource("app/host", 0)
	all.Secrets[host] = &fetch.Secret{Version: 1, Data: raw("cn", `"billing.svc"`)}
	u := &universe{all: all}
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "c.tmpl",
		`{{ (pkiCert "svc-mtls" (printf "common_name=%s" (secret "app/host").Data.cn) "alt_names=b,a").Cert | len }}`)
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := set.RenderAll(context.Background(), u.resolve, nil); err != nil {
		t.Fatal(err)
	}
	for _, call := range u.calls {
		for _, src := range call {
			if src.Kind == fetch.PKI && !strings.Contains(src.String(), "billing.svc") {
				t.Errorf("asked for %v", src)
			}
		}
	}
}

func TestRenderAllDependentDiscovery(t *testing.T) {
	all := testSnapshot(t)
	all.Lists[fetch.ListSource("users/")] = []fetch.ListEntry{{Path: "users/bob"}, {Path: "users/alice"}}
	all.Secrets[fetch.StaticSource("users/alice", 0)] = &fetch.Secret{Path: "users/alice", Version: 1, Data: raw("role", `"admin"`)}
	all.Secrets[fetch.StaticSource("users/bob", 0)] = &fetch.Secret{Path: "users/bob", Version: 1, Data: raw("role", `"viewer"`)}
	u := &universe{all: all}
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "users.tmpl",
		`{{ range secrets "users/" }}{{ with secret (print "users/" .) }}{{ .Path }}={{ .Data.role }};{{ end }}{{ end }}`)
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, snap, err := set.RenderAll(context.Background(), u.resolve, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out[0].Data); got != "users/alice=admin;users/bob=viewer;" {
		t.Errorf("output %q", got)
	}
	if passes := len(u.calls) + 1; passes > 3 {
		t.Errorf("%d passes, want at most 3", passes)
	}
	if len(out[0].Used) != 3 || out[0].Used[0] != fetch.ListSource("users/") || !snap.Has(fetch.StaticSource("users/bob", 0)) {
		t.Errorf("used %v", out[0].Used)
	}
}

func TestRenderAllNamesTemplateOfResolveError(t *testing.T) {
	u := &universe{all: testSnapshot(t)}
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "ok.tmpl", `{{ (secret "app/db").Data.username }}`,
		"gone.tmpl", `{{ (secret "app/gone").Data.x }}`)
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, snap, err := set.RenderAll(context.Background(), u.resolve, nil)
	want := "template " + specs[1].Src + `: read secret "app/gone": not found`
	if err == nil || err.Error() != want || !errors.Is(err, fetch.ErrNotFound) {
		t.Fatalf("error %v\nwant  %s", err, want)
	}
	if !snap.Has(fetch.StaticSource("app/db", 0)) {
		t.Errorf("the snapshot resolved before the error is lost")
	}
}

// A source named by a secret's value that cannot be resolved: the error
// names the template and what failed, with the value redacted.
func TestRenderAllResolveErrorHidesValue(t *testing.T) {
	u := &universe{all: testSnapshot(t)}
	dir := t.TempDir()
	for _, text := range []string{
		`{{ with secret (secret "app/db").Data.password }}{{ .Data }}{{ end }}`,
		// The strict run stops at the first placeholder; the value is read
		// by the lenient run only.
		// (app/db is there from the start, app/cfg is not).
		`{{ (secret "app/cfg").Data.html }}{{ with secret (secret "app/db").Data.password }}{{ .Data }}{{ end }}`,
	} {
		specs := writeTemplates(t, dir, "path.tmpl", text)
		set, err := Parse(specs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		have := u.all.Only([]fetch.Source{fetch.StaticSource("app/db", 0)})
		_, _, err = set.RenderAll(context.Background(), u.resolve, have)
		want := "template " + specs[0].Src + `: read secret "<redacted>": not found`
		if err == nil || err.Error() != want || !errors.Is(err, fetch.ErrNotFound) {
			t.Errorf("%s: error %v\nwant  %s", text, err, want)
		}
	}
}

func TestRenderAllBoundsPasses(t *testing.T) {
	// A chain of secrets each naming the next needs one pass per link.
	all := &fetch.Snapshot{Secrets: map[fetch.Source]*fetch.Secret{}}
	for i := 0; i < 2*MaxPasses; i++ {
		all.Secrets[fetch.StaticSource(fmt.Sprintf("c/%d", i), 0)] = &fetch.Secret{Version: 1,
			Data: raw("next", fmt.Sprintf(`"c/%d"`, i+1))}
	}
	u := &universe{all: all}
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "chain.tmpl",
		`{{ $p := "c/0" }}{{ range loop 15 }}{{ $p = (secret $p).Data.next }}{{ end }}{{ $p }}`)
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = set.RenderAll(context.Background(), u.resolve, nil)
	if err == nil || !strings.Contains(err.Error(), "still missing after 10 passes") {
		t.Fatalf("error %v", err)
	}
	if len(u.calls) != MaxPasses-1 {
		t.Errorf("%d resolves, want %d", len(u.calls), MaxPasses-1)
	}
}

func TestRenderConcurrently(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", `{{ (secret "app/db").Data.username }}{{ scratch.Set "k" 1 }}`)
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap := testSnapshot(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				out, _, err := set.Render(snap)
				if err != nil || string(out[0].Data) != "app" {
					t.Errorf("render: %v %v", out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
