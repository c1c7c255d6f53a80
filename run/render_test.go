package run

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-envparse"
)

// render's env output reads back as an --env-file, whatever the value.
func TestQuoteDotenvRoundTrip(t *testing.T) {
	values := []string{
		"plain", "", "with space", "multi\nline\r\n", `back\slash`, `"quoted"`, "it's",
		"$HOME and ${X}", "`tick`", "#hash", "a=b", "<scaivault://app/db#password v3>",
		"tab\there", "ünï 😀", "ctl\x01\x1f",
		"\xff\xfe bytes", "bare\xff", "\xc3 half", "del\x7f", "nul\x00", "  both  ",
	}
	var kvs [][2]string
	for i, v := range values {
		kvs = append(kvs, [2]string{"V" + string(rune('A'+i)), v})
	}
	var b strings.Builder
	if err := writeDotenv(&b, kvs); err != nil {
		t.Fatal(err)
	}
	got, err := envparse.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parse back: %v\n%s", err, b.String())
	}
	for _, kv := range kvs {
		if got[kv[0]] != kv[1] {
			t.Errorf("%s: wrote %q, read back %q", kv[0], kv[1], got[kv[0]])
		}
	}
}
