package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
)

// valueString is the string form of a template value: a string as is, nil as
// "", numbers as written, anything else as it prints.
func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case json.Number:
		return x.String()
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// fnToLower implements {{ toLower S }}.
func fnToLower(s any) string { return strings.ToLower(valueString(s)) }

// fnToUpper implements {{ toUpper S }}.
func fnToUpper(s any) string { return strings.ToUpper(valueString(s)) }

// fnTitle implements {{ title S }} and {{ toTitle S }}: the first letter of
// each word in title case, the rest left as is. A word starts after
// anything but a letter, digit, mark, underscore or apostrophe.
func fnTitle(s any) string {
	str := valueString(s)
	var b strings.Builder
	b.Grow(len(str))
	prev := ' '
	for _, r := range str {
		inWord := unicode.IsLetter(prev) || unicode.IsDigit(prev) || unicode.IsMark(prev) ||
			prev == '_' || prev == '\'' || prev == '’'
		if !inWord {
			r = unicode.ToTitle(r)
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// fnTrim implements {{ trim S }} (spaces, as Sprig) and {{ trim CUTSET S }}
// (the characters of CUTSET, as consul-template).
func fnTrim(args ...any) (string, error) {
	switch len(args) {
	case 1:
		return strings.TrimSpace(valueString(args[0])), nil
	case 2:
		return strings.Trim(valueString(args[1]), valueString(args[0])), nil
	}
	return "", fmt.Errorf("want [CUTSET] STRING, got %d arguments", len(args))
}

// fnTrimSpace implements {{ trimSpace S }}.
func fnTrimSpace(s any) string { return strings.TrimSpace(valueString(s)) }

// fnTrimPrefix implements {{ trimPrefix PREFIX S }}.
func fnTrimPrefix(prefix string, s any) string { return strings.TrimPrefix(valueString(s), prefix) }

// fnTrimSuffix implements {{ trimSuffix SUFFIX S }}.
func fnTrimSuffix(suffix string, s any) string { return strings.TrimSuffix(valueString(s), suffix) }

// fnReplaceAll implements {{ replace OLD NEW S }} and {{ replaceAll OLD NEW S }}:
// every occurrence.
func fnReplaceAll(old, new string, s any) string {
	return strings.ReplaceAll(valueString(s), old, new)
}

// compileRegexp compiles a template's regular expression. Its error names
// what is wrong but never quotes the pattern, which may come from a secret.
func compileRegexp(re string) (*regexp.Regexp, error) {
	c, err := regexp.Compile(re)
	var se *syntax.Error
	if errors.As(err, &se) {
		return nil, fmt.Errorf("invalid regular expression: %s", se.Code)
	}
	if err != nil {
		return nil, errors.New("invalid regular expression")
	}
	return c, nil
}

// fnRegexMatch implements {{ regexMatch RE S }}.
func fnRegexMatch(re string, s any) (bool, error) {
	c, err := compileRegexp(re)
	if err != nil {
		return false, err
	}
	return c.MatchString(valueString(s)), nil
}

// fnRegexReplaceAll implements {{ regexReplaceAll RE REPL S }}; REPL may
// use $1 and ${name}.
func fnRegexReplaceAll(re, repl string, s any) (string, error) {
	c, err := compileRegexp(re)
	if err != nil {
		return "", err
	}
	return c.ReplaceAllString(valueString(s), repl), nil
}

// fnSplit implements {{ split SEP S }}: S trimmed of spaces, "" gives an
// empty list (consul-template).
func fnSplit(sep string, s any) []string {
	str := strings.TrimSpace(valueString(s))
	if str == "" {
		return []string{}
	}
	return strings.Split(str, sep)
}

// fnSplitToMap implements {{ splitToMap SEP KVSEP S }}: "a:1,b:2" with ","
// and ":" gives {a: 1, b: 2}; parts without KVSEP are left out.
func fnSplitToMap(sep, kvsep string, s any) map[string]string {
	out := map[string]string{}
	str := strings.TrimSpace(valueString(s))
	if str == "" {
		return out
	}
	for _, part := range strings.Split(str, sep) {
		if k, v, ok := strings.Cut(part, kvsep); ok {
			out[k] = v
		}
	}
	return out
}

// fnJoin implements {{ join SEP LIST }}: the elements' string forms.
func fnJoin(sep string, fnList any) (string, error) {
	items, err := valueList(fnList)
	if err != nil {
		return "", err
	}
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = valueString(it)
	}
	return strings.Join(parts, sep), nil
}

// fnContains implements {{ contains NEEDLE HAYSTACK }} as consul-template:
// substring of a string, element of a list. {{ .url | contains "https" }}.
func fnContains(needle, haystack any) bool { return fnIn(haystack, needle) }

// fnHasPrefix implements {{ hasPrefix PREFIX S }}.
func fnHasPrefix(prefix string, s any) bool { return strings.HasPrefix(valueString(s), prefix) }

// fnHasSuffix implements {{ hasSuffix SUFFIX S }}.
func fnHasSuffix(suffix string, s any) bool { return strings.HasSuffix(valueString(s), suffix) }

// fnIndent implements {{ indent N S }}: N spaces before every line that is
// not empty (consul-template; empty lines get no trailing spaces).
func fnIndent(n int, s any) (string, error) {
	if n < 0 {
		return "", errors.New("indent must not be negative")
	}
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	atStart := true
	for _, c := range []byte(valueString(s)) {
		if atStart && c != '\n' {
			b.WriteString(pad)
		}
		b.WriteByte(c)
		atStart = c == '\n'
	}
	return b.String(), nil
}

// fnNindent implements {{ nindent N S }}: a newline, then indent N S.
func fnNindent(n int, s any) (string, error) {
	out, err := fnIndent(n, s)
	return "\n" + out, err
}

// fnQuote implements {{ quote S... }} as Sprig: each argument but nil
// double-quoted with Go (and JSON-compatible for printable text) escapes,
// joined by spaces.
func fnQuote(args ...any) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if a != nil {
			parts = append(parts, strconv.Quote(valueString(a)))
		}
	}
	return strings.Join(parts, " ")
}

// fnSquote implements {{ squote S... }} as Sprig: each argument but nil in
// single quotes, unescaped, joined by spaces.
func fnSquote(args ...any) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if a != nil {
			parts = append(parts, "'"+valueString(a)+"'")
		}
	}
	return strings.Join(parts, " ")
}

// maxRepeat bounds the output of repeat.
const maxRepeat = 1 << 24

// fnRepeat implements {{ repeat N S }}.
func fnRepeat(n int, s any) (string, error) {
	str := valueString(s)
	if n < 0 || (len(str) > 0 && n > maxRepeat/len(str)) {
		return "", fmt.Errorf("bad count %d", n)
	}
	return strings.Repeat(str, n), nil
}

// strconvReason is the reason of a strconv error without the input, which may
// be a secret: "not an integer: invalid syntax".
func strconvReason(what string, err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return fmt.Errorf("not %s: %w", what, ne.Err)
	}
	return fmt.Errorf("not %s", what)
}

// fnParseBool implements {{ parseBool S }}: "" is false.
func fnParseBool(s any) (bool, error) {
	str := strings.TrimSpace(valueString(s))
	if str == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(str)
	if err != nil {
		return false, strconvReason("a boolean", err)
	}
	return b, nil
}

// fnParseInt implements {{ parseInt S }} (base 10): "" is 0.
func fnParseInt(s any) (int64, error) {
	str := strings.TrimSpace(valueString(s))
	if str == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return 0, strconvReason("an integer", err)
	}
	return n, nil
}

// fnParseUint implements {{ parseUint S }} (base 10): "" is 0.
func fnParseUint(s any) (uint64, error) {
	str := strings.TrimSpace(valueString(s))
	if str == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		return 0, strconvReason("an unsigned integer", err)
	}
	return n, nil
}

// fnParseFloat implements {{ parseFloat S }}: "" is 0.
func fnParseFloat(s any) (float64, error) {
	str := strings.TrimSpace(valueString(s))
	if str == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, strconvReason("a number", err)
	}
	return f, nil
}

// valueList returns the elements of a slice or array (nil: none).
func valueList(fnList any) ([]any, error) {
	switch x := fnList.(type) {
	case nil:
		return nil, nil
	case []any:
		return x, nil
	case jsonArray:
		return x, nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	}
	v := reflect.ValueOf(fnList)
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return nil, fmt.Errorf("want a list, got %s", v.Type())
	}
	out := make([]any, v.Len())
	for i := range out {
		out[i] = v.Index(i).Interface()
	}
	return out, nil
}
