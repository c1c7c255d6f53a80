package template

import (
	"testing"
)

// readBackDotenv parses one NAME=QuoteDotenv(value) line as --env-file does.
func readBackDotenv(t testing.TB, value string) (string, error) {
	t.Helper()
	line := "V=" + QuoteDotenv(value) + "\n"
	entries, err := parseEnvFile("render.env", []byte(line))
	if err != nil {
		return "", err
	}
	if len(entries) != 1 || entries[0].name != "V" {
		t.Fatalf("line %q read back as %d entries", line, len(entries))
	}
	return entries[0].value, nil
}

func TestQuoteDotenvReadsBackExactly(t *testing.T) {
	for _, v := range []string{
		"plain", "", " ", "x  ", "  x", "a#b", "a #b", "\xff\xfe", "bare\xff", "\xc3", "\xc3 half",
		"del\x7f", "nul\x00", "\x01\x1f", "\b\f\n\r\t", `"\`, `\u0041`, "ünï 😀", "\xed\xa0\x80",
		"scaivault://app/db#password", "'single'", "$X `y`", "=", "#",
	} {
		got, err := readBackDotenv(t, v)
		if err != nil || got != v {
			t.Errorf("%q: wrote %s, read back %q, %v", v, QuoteDotenv(v), got, err)
		}
	}
}
