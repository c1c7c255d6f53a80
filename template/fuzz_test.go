package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// Any env file parses or fails with an error naming the file and line; what
// parses reads back the same through render's quoting.
func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{
		"A=1\nB='two'\nC=\"th\\\"ree\"\n", "export K = v # note\n", "K=scaivault://app/db#password\n",
		"K=scaivault://app/db # note\n", `K="scaivault://app/db#password"` + "\n", "K\n", "=v\n", "K=\"open\n",
		"K=\"\\u00e9\\ud83d\\ude00\"\n", "K=\xff\xfe\n", "# comment\n\n\r\nK=v\r\n", "K='a#b' #c\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseEnvFile("f.env", data)
		if err != nil {
			var cut *CutRefError
			if errors.As(err, &cut) {
				if !strings.HasPrefix(cut.Origin, "f.env:") || !strings.Contains(cut.Ref, "#") {
					t.Fatalf("cut reference error without its line or reference: %v", err)
				}
				return
			}
			if !strings.HasPrefix(err.Error(), "f.env:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range entries {
			n, err := strconv.Atoi(strings.TrimPrefix(e.origin, "f.env:"))
			if err != nil || n < 1 || n > lines {
				t.Fatalf("origin %q of %s: not a line of the file", e.origin, e.name)
			}
			if got, err := readBackDotenv(t, e.value); err != nil || got != e.value {
				t.Fatalf("%s=%q: quoted %s, read back %q, %v", e.name, e.value, QuoteDotenv(e.value), got, err)
			}
		}
	})
}

// An unquoted reference directly followed by "#" is refused, never cut;
// after a blank, "#" starts an ordinary comment.
func FuzzEnvFileCutReference(f *testing.F) {
	f.Add("scaivault://app/db", "password")
	f.Add("scaivault+dynamic://support-db/readonly?ttl=2h", "username")
	f.Add("scaivault+pki://svc?common_name=a.svc", "certificate_pem")
	f.Add("scaivault://app/db?version=2", " note")
	f.Fuzz(func(t *testing.T, ref, comment string) {
		if _, isRef, err := fetch.ParseRef(ref); !isRef || err != nil || !dotenvBare(ref) || strings.ContainsAny(comment, "\r\n") {
			return
		}
		entries, err := parseEnvFile("f.env", []byte("K="+ref+"#"+comment+"\n"))
		if !errors.Is(err, ErrCutReference) {
			t.Fatalf("K=%s#%s: entries %v, error %v; want the cut reference refused", ref, comment, entries, err)
		}
		entries, err = parseEnvFile("f.env", []byte("K="+ref+" #"+comment+"\n"))
		if err != nil || len(entries) != 1 || entries[0].value != ref {
			t.Fatalf("K=%s #%s: error %v; want the reference and a comment", ref, comment, err)
		}
	})
}

// render --format env's quoting reads back byte for byte, whatever the bytes.
func FuzzQuoteDotenv(f *testing.F) {
	for _, s := range []string{"", "plain", "x  ", "\xff\xfe", "a\nb\r\n", `"\`, "nul\x00", "ünï 😀", "#$`'<>=", "\xed\xa0\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if len(v) > 8<<10 {
			return // go-envparse reads lines of up to 64 KiB
		}
		got, err := readBackDotenv(t, string(v))
		if err != nil || got != string(v) {
			t.Fatalf("%q: quoted %s, read back %q, %v", v, QuoteDotenv(string(v)), got, err)
		}
	})
}

// A --template spec parses to what it says, or fails quoting itself.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"a.tmpl:/etc/a.conf", "a:b:0640", "a:b:640", "a:b:0o400", "a:-", "a:b:0", "a:b:4755", "a", ":b", "a:b:c:d", "a:b:-1", "a:b:+7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("error %v does not quote %q", err, s)
			}
			return
		}
		if sp.Src == "" || sp.Dst == "" || sp.Mode > 0o777 || sp.Mode != sp.Mode.Perm() {
			t.Fatalf("ParseSpec(%q) = %+v", s, sp)
		}
		again := sp.Src + ":" + sp.Dst
		if sp.Mode != 0 {
			again += ":" + strconv.FormatUint(uint64(sp.Mode), 8)
		}
		if sp2, err := ParseSpec(again); err != nil || !reflect.DeepEqual(sp2, sp) {
			t.Fatalf("ParseSpec(%q) = %+v, but %q gives %+v, %v", s, sp, again, sp2, err)
		}
	})
}

// --template-delims gives two delimiters a template can use, or an error
// quoting the value.
func FuzzParseDelims(f *testing.F) {
	for _, s := range []string{"[[:]]", "<%:%>", "<<:>>", "<::>", "::", ":", "a:", ":b", "{ :}", "((:))", "{{:}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDelims(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("error %v does not quote %q", err, s)
			}
			return
		}
		left, right := d[0], d[1]
		if left == "" || right == "" || strings.ContainsAny(left+right, " \t\r\n") || left+":"+right != s {
			t.Fatalf("ParseDelims(%q) = %q", s, d)
		}
		// No panic, whatever the delimiters; "plain" text renders as is.
		if tm, err := parseTemplateText("d.tmpl", "plain", left, right); err == nil {
			var b strings.Builder
			if err := tm.Execute(&b, nil); err != nil || (!strings.Contains("plain", left) && b.String() != "plain") {
				t.Fatalf("delimiters %q: plain text gave %q, %v", d, b.String(), err)
			}
		}
		_, _ = parseTemplateText("d.tmpl", left+` "ok" `+right, left, right)
	})
}

// errorTemplates call functions whose errors name an argument, with
// arguments taken from the secret value $v.
var errorTemplates = []string{
	`{{ required $v nil }}`,
	`{{ required (printf "no host for %s!" $v) "" }}`,
	`{{ explodeMap (dict $v 1 (printf "%s/x" $v) 2) }}`,
	`{{ explodeMap (dict (printf "a/%s" $v) 2 (printf "a/%s/c" $v) 1) }}`,
	`{{ mustEnv $v }}`,
	`{{ secret "fz/s" $v }}`,
	`{{ dynamic "support-db" "readonly" (printf "ttl=%s" $v) }}`,
	`{{ file $v }}`,
	`{{ parseInt $v }}`,
	`{{ parseJSON $v }}`,
	`{{ index (dict "k" 1) $v }}`,
	`{{ index (secret "fz/s").Data $v }}`,
	`{{ executeTemplate $v }}`,
	`{{ regexMatch $v "x" }}`,
	`{{ base64Decode $v }}`,
	`{{ add $v 1 }}`,
	`{{ range $v }}{{ end }}`,
	`{{ scratch.MapSet $v "a" 1 }}{{ scratch.Set $v 1 }}{{ scratch.MapSet $v "a" 1 }}`,
	`{{ secret (printf "fz/s?%s" $v) }}`,
	`{{ secret (printf "fz/s?version=%s" $v) }}`,
	`{{ secrets $v }}`,
	`{{ pkiCert (printf "pki/issue/%s" $v) "common_name=x" }}`,
	`{{ sprig_regexReplaceAll $v "x" "y" }}`,
	`{{ sprig_add $v 1 }}`,
	`{{ toTOML (dict "k" (list $v (dict "a" 1))) }}{{ toTOML $v }}`,
}

// No template error holds a secret value, whatever the value and however
// the template passes it to a failing function.
func FuzzTemplateErrorHidesValue(f *testing.F) {
	for _, s := range []string{"pw-secret", "a/b/c", `quo"te`, "\xff\xfenot-utf8", "12345", `{"a":1}`, "ttl=1h", "app/db", "[(", "ctl\x01\x7f"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, value string, which uint8) {
		text := `{{ $v := (secret "fz/s").Data.v }}` + errorTemplates[int(which)%len(errorTemplates)]
		b, _ := json.Marshal(value)
		var v string
		if json.Unmarshal(b, &v) != nil {
			t.Fatalf("value %q does not survive JSON", value)
		}
		if len(v) < 4 || strings.Contains(text, v) || strings.Contains("<redacted>", v) {
			return // too short to tell, or the template's own text
		}
		renderWith := func(val string) error {
			vb, _ := json.Marshal(val)
			snap := testSnapshot(t)
			snap.Secrets[fetch.StaticSource("fz/s", 0)] = &fetch.Secret{Path: "fz/s", Version: 1, Data: raw("v", string(vb))}
			_, _, err := render(t, snap, text)
			return err
		}
		err := renderWith(v)
		if err == nil {
			return
		}
		// Text every error of this template holds (its messages, paths)
		// is no leak: the same error for another value holds it too.
		if canary := renderWith("\x00canary\x00"); canary != nil && strings.Contains(canary.Error(), v) {
			return
		}
		q := strconv.Quote(v)
		for _, form := range []string{v, q[1 : len(q)-1], string(b[1 : len(b)-1])} {
			if len(form) >= 4 && strings.Contains(err.Error(), form) {
				t.Fatalf("template %s: error holds the secret value %q (as %q): %v", text, v, form, err)
			}
		}
	})
}

// Any template text parses or fails with an error naming the file; a
// consul-template or Sprig function that is not offered is named with its
// reason.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{
		`{{ key "service/redis/maxconns" }}`, `{{ range service "web" }}{{ .Address }}{{ end }}`,
		`{{ tree "config" | explode | toJSON }}`, `{{ timestamp "2006-01-02" }}`, `{{ "x" | writeToFile "/f" "" "" "0644" }}`,
		`{{ plugin "echo" }}`, `{{ sprig_now }}`, `{{ sprig_b64enc "a" }}`, `{{ sprig_trim " a " }}`, `{{ sprig_ }}`,
		"a\n{{ with secret \"app/db\" }}\n{{ .Data.x | nosuch }}{{ end }}", `{{ define "x" }}{{ caLeaf "p" }}{{ end }}`, "{{", "}}{{",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		_, err := parseTemplateText("f.tmpl", text, "{{", "}}")
		if err == nil {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "template f.tmpl") {
			t.Fatalf("error does not name the template: %v", err)
		}
		if _, rest, ok := strings.Cut(msg, `: function "`); ok {
			name, tail, _ := strings.Cut(rest, `" not defined`)
			if why := refusedFunc(name); why != "" && tail != ": "+why {
				t.Fatalf("function %q: error %v, want the reason %q", name, err, why)
			}
		}
	})
}

// secrets PREFIX lists one folder, whatever the prefix: the names are
// relative to it, one level deep (a subfolder once, with its "/"), sorted,
// and every path in the folder has its name.
func FuzzSecretsFolder(f *testing.F) {
	f.Add("app/", "app/db\napp/users/alice\napp/users/bob\napps/x\napp")
	f.Add("app", "app/db\napp/a/b/c")
	f.Add("", "a\nb/c\nb/d")
	f.Add(" /app/users// ", "app/users/x")
	f.Add("app//x", "app/x")
	f.Fuzz(func(t *testing.T, prefix, paths string) {
		text := `{{ range secrets ` + strconv.Quote(prefix) + ` }}{{ . }}` + "\x00" + `{{ end }}`
		_, missing, err := render(t, nil, text)
		if err != nil || len(missing) != 1 {
			return // a bad path (or a prefix text/template cannot hold)
		}
		folder := missing[0].Path
		if missing[0].Kind != fetch.List || (folder != "" && (!strings.HasSuffix(folder, "/") || fetch.ValidatePath(strings.TrimSuffix(folder, "/")) != nil)) {
			t.Fatalf("secrets %q lists %v", prefix, missing[0])
		}
		var entries []fetch.ListEntry
		for _, p := range strings.Split(paths, "\n") {
			if strings.HasPrefix(p, folder) && fetch.ValidatePath(p) == nil {
				entries = append(entries, fetch.ListEntry{Path: p})
			}
		}
		snap := &fetch.Snapshot{Lists: map[fetch.Source][]fetch.ListEntry{missing[0]: entries}}
		out, missing, err := render(t, snap, text)
		if err != nil || len(missing) > 0 {
			t.Fatalf("secrets %q: %v, missing %v", prefix, err, missing)
		}
		names := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
		if out == "" {
			names = nil
		}
		if !sort.StringsAreSorted(names) {
			t.Fatalf("names %q are not sorted", names)
		}
		for i, n := range names {
			if n == "" || strings.HasPrefix(n, "/") || strings.Contains(strings.TrimSuffix(n, "/"), "/") || (i > 0 && names[i-1] == n) {
				t.Fatalf("secrets %q: bad name %q in %q", prefix, n, names)
			}
		}
		for _, e := range entries {
			rest := strings.TrimPrefix(e.Path, folder)
			name := rest
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				name = rest[:i+1]
			}
			if !slices.Contains(names, name) {
				t.Fatalf("secrets %q: %s has no name in %q", prefix, e.Path, names)
			}
		}
	})
}

// secret "PATH?version=N" is secret PATH "version=N" (N as a URL query
// reads it), or an error.
func FuzzSecretVersionQuery(f *testing.F) {
	f.Add("app/db", "2")
	f.Add("app/db", "x")
	f.Add("app//db", "1")
	f.Add("app/db", "1&ns=x")
	f.Add("app/db", "%32")
	f.Fuzz(func(t *testing.T, path, version string) {
		v, err := url.ParseQuery("version=" + version)
		if err != nil {
			return
		}
		q := `{{ (secret ` + strconv.Quote(path+"?version="+version) + `).Version }}`
		o := `{{ (secret ` + strconv.Quote(path) + " " + strconv.Quote("version="+v.Get("version")) + `).Version }}`
		_, qm, qerr := render(t, nil, q)
		if qerr != nil {
			return // the query form refuses more (other parameters, a second "?")
		}
		_, om, oerr := render(t, nil, o)
		if oerr != nil || len(qm) != len(om) || (len(qm) == 1 && qm[0] != om[0]) {
			t.Fatalf("%s: missing %v; %s: missing %v, %v", q, qm, o, om, oerr)
		}
	})
}
