package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// --wait MIN[:MAX] gives 0 <= MIN <= MAX, MAX 4*MIN when left out, or an
// error naming the flag and quoting the value.
func FuzzParseWait(f *testing.F) {
	for _, s := range []string{"0", "5s", "5s:30s", "1m:10s", "-1s", "1s:", ":1s", "1h:1h", "1.5s", "2562047h", "1000000h", "0:0", "5", "1s:2s:3s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := parseWait(s)
		if d, perr := time.ParseDuration(s); perr == nil && d >= 0 && err != nil {
			t.Fatalf("parseWait(%q): %v; want MIN %v", s, err, d)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("--wait %q: ", s)) {
				t.Fatalf("error %v does not name --wait and quote %q", err, s)
			}
			return
		}
		if lo < 0 || hi < lo {
			t.Fatalf("parseWait(%q) = %v, %v", s, lo, hi)
		}
		if !strings.Contains(s, ":") && hi != 4*lo && (lo <= math.MaxInt64/4 || hi != math.MaxInt64) {
			t.Fatalf("parseWait(%q) = %v, %v; want MAX 4*MIN (or the longest duration)", s, lo, hi)
		}
	})
}
