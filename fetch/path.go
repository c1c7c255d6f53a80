package fetch

import (
	"fmt"
	"net/url"
	"strings"
)

// ValidatePath checks a secret path against scaivault-api.md: segments of
// [A-Za-z0-9._-]+ joined by "/", none "." or "..", no leading or trailing
// slash. The error names the offending segment.
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("empty secret path")
	}
	for i, seg := range strings.Split(p, "/") {
		if err := validateSegment(seg); err != nil {
			return fmt.Errorf("secret path %q: segment %d: %v", p, i+1, err)
		}
	}
	return nil
}

func validateSegment(seg string) error {
	switch seg {
	case "":
		return fmt.Errorf("empty segment")
	case ".", "..":
		return fmt.Errorf("%q is not allowed", seg)
	}
	for _, c := range seg {
		if !isSegmentChar(c) {
			return fmt.Errorf("character %q is not allowed (want [A-Za-z0-9._-])", c)
		}
	}
	return nil
}

func isSegmentChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// EscapePath percent-encodes each segment of a path on its own; the slashes stay.
func EscapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
