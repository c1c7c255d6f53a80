package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	texttemplate "text/template"
)

// renderError is a template error rewritten from text/template's: located
// as `template FILE:LINE:COL: ...` (columns count bytes from 1) and free of
// secret values. err is the cause a function returned, when its message
// could be kept as it was.
type renderError struct {
	msg string
	err error
}

func (e *renderError) Error() string { return e.msg }
func (e *renderError) Unwrap() error { return e.err }

// lazyRegexp compiles expr on first use: these are for error messages,
// which most runs never build, and compiling them all at every start
// showed in its init time.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

var (
	// "template: NAME:LINE: MESSAGE" (text/template/parse).
	parseMsgRE = lazyRegexp(`(?s)^template: (.*?):(\d+): (.*)$`)
	// "template: NAME:LINE:COL: executing "TMPL" at <CONTEXT>: MESSAGE".
	execMsgRE = lazyRegexp(`(?s)^template: (.*?):(\d+):(\d+): executing ("(?:[^"\\]|\\.)*") at <(.*?)>: (.*)$`)
	// "template: NAME: MESSAGE", for errors without a node.
	execNoNodeRE = lazyRegexp(`(?s)^template: (.*?): (.*)$`)
	// text/template's missing key, wherever it ends a message.
	missingKeyRE = lazyRegexp(`(?:map has no entry for key|nil data; no entry for key) ("(?:[^"\\]|\\.)*")$`)
	callRE       = lazyRegexp(`^error calling ([A-Za-z0-9_]+): `)
	quotedRE     = lazyRegexp(`"(?:[^"\\]|\\.)*"`)
	angledRE     = lazyRegexp(`<([^<>]+)>`)
	// "unexpected {{end}}", "missing value for if", "... in {{range}}".
	wordRE = lazyRegexp(`^(?:unexpected \{\{(\w+)\}\}|missing value for (\w+))`)
)

// templateParseError rewrites a parse error as `template FILE:LINE:COL: MESSAGE`.
// text/template gives the line only; the column is that of the token the
// message names, found on that line, and left out when not found.
func templateParseError(name, text, left string, err error) error {
	m := parseMsgRE().FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("template %s: %s", name, strings.TrimPrefix(err.Error(), "template: "))
	}
	line, _ := strconv.Atoi(m[2])
	msg := m[3]
	col := guessColumn(text, line, left, msg)
	if f := undefinedRE().FindStringSubmatch(msg); f != nil {
		// A consul-template or Sprig function we do not offer: say why.
		if why := refusedFunc(f[1]); why != "" {
			msg += ": " + why
		}
	}
	if col > 0 {
		return &renderError{msg: fmt.Sprintf("template %s:%d:%d: %s", name, line, col, msg)}
	}
	return &renderError{msg: fmt.Sprintf("template %s:%d: %s", name, line, msg)}
}

// undefinedRE is text/template's parse error for a function it does not know.
var undefinedRE = lazyRegexp(`^function "([^"]+)" not defined$`)

// guessColumn finds, on line (from 1) of text, the token a parse error
// message names; 0 when it cannot tell.
func guessColumn(text string, line int, left, msg string) int {
	lines := strings.Split(text, "\n")
	if line < 1 || line > len(lines) {
		return 0
	}
	l := lines[line-1]
	tok := errorToken(msg, left)
	if tok == "" {
		return 0
	}
	start := strings.Index(l, left)
	if start < 0 || strings.HasPrefix(tok, left) {
		start = 0
	}
	if i := strings.Index(l[start:], tok); i >= 0 {
		return start + i + 1
	}
	if i := strings.Index(l, tok); i >= 0 {
		return i + 1
	}
	return 0
}

// errorToken picks the token a parse error is about.
func errorToken(msg, left string) string {
	switch {
	case strings.HasPrefix(msg, "unclosed action"):
		return left
	case strings.HasPrefix(msg, "unterminated quoted string"):
		return `"`
	case strings.HasPrefix(msg, "unterminated raw quoted string"):
		return "`"
	case strings.HasPrefix(msg, "unterminated character constant"):
		return "'"
	}
	if q := quotedRE().FindString(msg); q != "" {
		if s, err := strconv.Unquote(q); err == nil && s != "" {
			return s
		}
	}
	if strings.HasPrefix(msg, "unexpected ") {
		if a := angledRE().FindStringSubmatch(msg); a != nil {
			return a[1]
		}
	}
	if w := wordRE().FindStringSubmatch(msg); w != nil {
		return w[1] + w[2]
	}
	if i := strings.Index(msg, "bad character U+"); i >= 0 {
		if q := strings.IndexByte(msg[i:], '\''); q >= 0 {
			if r, _, _, err := strconv.UnquoteChar(msg[i+q+1:], '\''); err == nil {
				return string(r)
			}
		}
	}
	return ""
}

// templateExecError rewrites an execution error of template name: located, a
// missing key named with its secret, and no secret value in it.
func templateExecError(name string, err error, st *renderState) error {
	var ee texttemplate.ExecError
	if !errors.As(err, &ee) {
		return fmt.Errorf("template %s: %v", name, st.redact(err.Error()))
	}
	full := ee.Err.Error()
	m := execMsgRE().FindStringSubmatch(full)
	if m == nil {
		if n := execNoNodeRE().FindStringSubmatch(full); n != nil {
			return &renderError{msg: fmt.Sprintf("template %s: %s", n[1], st.redact(n[2]))}
		}
		return &renderError{msg: fmt.Sprintf("template %s: %s", name, st.redact(full))}
	}
	file, line, context, rest := m[1], m[2], m[5], m[6]
	col, _ := strconv.Atoi(m[3])
	where := fmt.Sprintf("template %s:%s:%d: ", file, line, col+1)
	if tmpl, _ := strconv.Unquote(m[4]); tmpl != "" && tmpl != file {
		where += fmt.Sprintf("executing %q ", tmpl)
	}
	msg, cause := st.describe(context, rest, errors.Unwrap(ee.Err))
	return &renderError{msg: fmt.Sprintf("%sat <%s>: %s", where, context, msg), err: cause}
}

// describe turns text/template's message into ours; cause survives only
// when the message is kept as the function gave it.
func (st *renderState) describe(context, rest string, cause error) (string, error) {
	if k := missingKeyRE().FindStringSubmatch(rest); k != nil {
		key, _ := strconv.Unquote(k[1])
		mk := &missingKeyError{key: key}
		// The .Data last handed out, if no function ran since, is the map
		// whose key is missing when the failing node reads .Data, or is not
		// a field or variable at all: text/template then shows an argument of
		// the call whose result was indexed, as in (secret "a").Data.key.
		direct := !strings.HasPrefix(context, "$") && !strings.HasPrefix(context, ".")
		if st.lastData != nil && (strings.Contains(context, ".Data") || direct) {
			mk.owner = st.lastData.desc
		}
		return mk.Error(), nil
	}
	if c := callRE().FindStringSubmatch(rest); c != nil && trustedFunc(c[1]) {
		// Our messages name the arguments (a key, an option, required's
		// message), and a template may take those from a secret: they are
		// redacted like any other, and the cause, whose text is not, is
		// kept only when there was nothing to redact.
		// Literals of the failing action are the template's own text, not
		// values ({{ required "app/db needs a host" .x }} with a secret
		// "app"): they stay.
		if red := st.redact(rest, literals(context)...); red != rest {
			return red, nil
		}
		return rest, cause
	}
	return st.redact(withoutValues(rest)), nil
}

// literals returns the double-quoted string literals of a template action,
// unquoted and in their Go-quoted form (as %q prints them).
func literals(action string) []string {
	var out []string
	for _, q := range quotedRE().FindAllString(action, -1) {
		if s, err := strconv.Unquote(q); err == nil && s != "" {
			out = append(out, s, q[1:len(q)-1])
		}
	}
	return out
}

// trustedFunc reports whether the errors of function name are ours, which
// never hold a value. Builtins and executeTemplate (which nests other
// messages) are not.
func trustedFunc(name string) bool {
	if name == "executeTemplate" {
		return false
	}
	_, ok := parseFuncs()[name]
	return ok
}

// leakyPrefixes are text/template messages that print the value at hand.
var leakyPrefixes = []struct{ prefix, say string }{
	{"range can't iterate over ", "range can't iterate over this value"},
	{"if/with can't use ", "if/with can't use this value"},
	{"range over send-only channel ", "range over a send-only channel"},
	{"can't use ", "can't iterate over this value with two variables"},
	{"error calling eq: non-comparable", "error calling eq: non-comparable values"},
	{"error calling ne: non-comparable", "error calling ne: non-comparable values"},
}

func withoutValues(msg string) string {
	for _, l := range leakyPrefixes {
		if strings.HasPrefix(msg, l.prefix) {
			return l.say
		}
	}
	return msg
}

// redact replaces, in a message, every value the template read that is at
// least 3 bytes long (shorter ones would only mangle the message), in its
// plain, JSON-escaped and Go-quoted (%q) forms, except where it lies within
// one of keep (text of the template itself). Overlapping values are
// replaced as one.
func (st *renderState) redact(msg string, keep ...string) string {
	vals := st.secretStrings()
	if len(vals) == 0 {
		return msg
	}
	kept := occurrences(msg, keep)
	var cut [][2]int
	for _, span := range occurrences(msg, vals) {
		if !slices.ContainsFunc(kept, func(k [2]int) bool { return k[0] <= span[0] && span[1] <= k[1] }) {
			cut = append(cut, span)
		}
	}
	if len(cut) == 0 {
		return msg
	}
	slices.SortFunc(cut, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	at := 0
	for i := 0; i < len(cut); {
		start, end := cut[i][0], cut[i][1]
		for i++; i < len(cut) && cut[i][0] < end; i++ {
			end = max(end, cut[i][1])
		}
		b.WriteString(msg[at:start])
		b.WriteString("<redacted>")
		at = end
	}
	b.WriteString(msg[at:])
	return b.String()
}

// occurrences returns the [start, end) spans of every occurrence of each
// of subs in s, overlapping ones included.
func occurrences(s string, subs []string) [][2]int {
	var out [][2]int
	for _, sub := range subs {
		if sub == "" {
			continue
		}
		for i := 0; ; {
			j := strings.Index(s[i:], sub)
			if j < 0 {
				break
			}
			out = append(out, [2]int{i + j, i + j + len(sub)})
			i += j + 1
		}
	}
	return out
}

// secretStrings lists the values the template read.
func (st *renderState) secretStrings() []string {
	seen := map[string]bool{}
	keep := func(s string) {
		if len(s) >= 3 {
			seen[s] = true
			if b, err := json.Marshal(s); err == nil {
				seen[string(b[1:len(b)-1])] = true
			}
			q := strconv.Quote(s)
			seen[q[1:len(q)-1]] = true
		}
	}
	for _, v := range st.secrets {
		walkStrings(map[string]any(v.ref.data), keep)
	}
	for _, v := range st.leases {
		walkStrings(map[string]any(v.ref.data), keep)
	}
	for _, v := range st.certs {
		keep(v.Key)
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	return out
}

// walkStrings calls fn with every string and number in v, and with the
// JSON text of every object and array.
func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case json.Number:
		fn(x.String())
	case map[string]any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	case jsonObject:
		fn(x.String())
		walkStrings(map[string]any(x), fn)
	case jsonArray:
		fn(x.String())
		for _, e := range x {
			walkStrings(e, fn)
		}
	}
}
