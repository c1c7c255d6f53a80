package template

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// QuoteDotenv writes s as a value of a .env line that the env-file parser
// (go-envparse, as --env-file reads it) reads back as exactly s, byte for
// byte, whatever s holds: invalid UTF-8, control characters, NUL. Simple
// values stay bare; the rest are double-quoted, with `"` and `\` escaped,
// control characters and DEL written as JSON escapes (\n, \t, \u0001), and
// every other byte, those of multi-byte or invalid UTF-8 included, as it is
// (go-envparse copies bytes above 0x7f unchanged, where a JSON encoder
// would make invalid UTF-8 U+FFFD).
//
// The result is .env syntax, not shell: `$` and backquotes inside double
// quotes mean nothing to go-envparse, but a shell would expand them.
// (go-envparse reads at most 64 KiB a line.)
func QuoteDotenv(s string) string {
	if dotenvBare(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 || c == 0x7f {
				const hex = "0123456789abcdef"
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
				continue
			}
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// dotenvBare reports whether s reads back unquoted: not empty, and no blank
// (Unicode's too: go-envparse trims U+00A0 and U+2001 like a space), control
// character, quote, backslash, comment or expansion character (other bytes
// above 0x7f, invalid UTF-8 included, are taken as they are).
func dotenvBare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, _ := utf8.DecodeRuneInString(s[i:]); unicode.IsSpace(r) {
				return false
			}
			continue
		}
		if c <= ' ' || c == 0x7f || strings.IndexByte("\"'\\#$`=<>", c) >= 0 {
			return false
		}
	}
	return true
}
