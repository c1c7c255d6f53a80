package template

import (
	"strings"
	"testing"
)

// Our functions' errors name their arguments; when a template takes one
// from a secret, the value is redacted, the template's own text is not.
func TestFuncErrorsHideArgumentValues(t *testing.T) {
	snap := testSnapshot(t)
	const p = `{{ $p := (secret "app/db").Data.password }}`
	tests := []struct{ name, text, want string }{
		{"required message is a value", `{{ required (secret "app/db").Data.password nil }}`, `error calling required: <redacted>`},
		{"required message holds a value", `{{ required (printf "no host for %s" (secret "app/db").Data.password) "" }}`, `error calling required: no host for <redacted>`},
		{"required literal stays", `{{ required "app needs pw1-free text" (get (secret "app/db").Data "host") }}`, `error calling required: app needs pw1-free text`},
		{"explodeMap key is a value", p + `{{ explodeMap (dict $p 1 (printf "%s/x" $p) 2) }}`, `key "<redacted>/x": "<redacted>" already holds a value`},
		{"explodeMap key holds a value", p + `{{ explodeMap (dict (printf "a/%s" $p) 2 (printf "a/%s/c" $p) 1) }}`, `key "a/<redacted>/c": "<redacted>" already holds a value`},
		{"mustEnv name", p + `{{ mustEnv $p }}`, `environment variable <redacted> is unset`},
		{"secret option", p + `{{ secret "app/db" $p }}`, `"app/db": option "<redacted>" is not KEY=VALUE`},
		{"file path", p + `{{ file $p }}`, `open <redacted>: `},
		{"quoted forms", `{{ $p := (secret "app/cfg").Data.html }}{{ explodeMap (dict $p 1 (printf "%s/x" $p) 2) }}`, `key "<redacted>/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := render(t, snap, tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			msg := strings.ReplaceAll(err.Error(), "pw1-free", "")
			for _, v := range []string{"pw1", "<a&b>", `\u003ca\u0026b\u003e`} {
				if strings.Contains(msg, v) {
					t.Errorf("error holds the secret value %q: %v", v, err)
				}
			}
		})
	}
}
