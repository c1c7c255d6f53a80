package fetch

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	max := time.Duration(math.MaxInt64)
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90s", 90 * time.Second, ""},
		{"90", 90 * time.Second, ""},
		{"007", 7 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1h30m15s", 90*time.Minute + 15*time.Second, ""},
		{"1d1h30m", 25*time.Hour + 30*time.Minute, ""},
		{"0d12h", 12 * time.Hour, ""},
		{" 3600 ", time.Hour, ""},
		{"0", 0, ""},
		{"90d", 90 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"9223372036", 9223372036 * time.Second, ""},
		{"106751d", 106751 * 24 * time.Hour, ""},
		{"106751d23h47m16.854775807s", max, ""},
		// Past what a time.Duration holds: these used to wrap around.
		{"9223372037", 0, "out of range"},
		{"99999999999", 0, "out of range"},
		{"99999999999999999999", 0, "out of range"},
		{"106751d24h", 0, "out of range"},
		{"106751d23h47m16.854775808s", 0, "out of range"},
		{"106752d", 0, "out of range"},
		{"99999999999999999999d", 0, "out of range"},
		{"2562048h", 0, "invalid duration"},
		{"", 0, "empty duration"},
		{"-5", 0, "negative duration"},
		{"-90", 0, "negative duration"},
		{"-1h30m", 0, "negative duration"},
		{"90.5", 0, "invalid duration"}, // bare seconds are whole seconds
		{"1e3", 0, "invalid duration"},
		{"1h 30m", 0, "invalid duration"},
		{"1h2d", 0, "invalid duration"}, // days come first
		{"-1h", 0, "negative duration"},
		{"1d-1h", 0, "negative duration"},
		{"-1d", 0, "invalid duration"},
		{"1.5d", 0, "invalid duration"},
		{"d", 0, "invalid duration"},
		{"1dd", 0, "invalid duration"},
		{"5x", 0, "invalid duration"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.in):
			t.Errorf("ParseDuration(%q): error %q does not quote the input", tt.in, err)
		}
	}
}

// FuzzParseDuration: no panic; a parsed duration is never negative (no
// wrap-around), its String form parses back to it, and a bare number of
// seconds is exactly that many seconds.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "1h30m", "3600", "90d", "1d12h", "0", "-5", "9223372036",
		"9223372037", "99999999999", "106751d24h", "106751d23h47m16.854775807s", "1d-1h", " 7d ",
		"90", "-90", "-1h30m", "1h30m15s", "0d12h", "1d1h30m", "90.5", "1e3", "+90", "-0", "1h2d", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Errorf("ParseDuration(%q) = %v with error %v", s, d, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative (wrapped around)", s, d)
		}
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, but its String %q parses to %v, %v", s, d, d.String(), back, err)
		}
		trimmed := strings.TrimSpace(s)
		if trimmed != "" && strings.Trim(trimmed, "0123456789") == "" {
			n := int64(0)
			for _, c := range trimmed {
				n = n*10 + int64(c-'0') // fits: ParseDuration accepted it
			}
			if d != time.Duration(n)*time.Second || d/time.Second != time.Duration(n) {
				t.Errorf("ParseDuration(%q) = %v, want %d seconds", s, d, n)
			}
		}
	})
}
