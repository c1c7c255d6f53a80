package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
