package template

// consul-template offers the whole of Sprig under sprig_NAME. Here every
// function we have under a Sprig name is there as sprig_NAME too: the same
// function where ours behaves as Sprig's, else a Sprig-shaped one (split's
// map, indent's every line, regexReplaceAll's argument order, add of any
// number of arguments, keys of several maps). What differs from Sprig even
// so is what differs everywhere here: an empty list has no first or last
// (an error, where Sprig gives nil and prints "<no value>"), a bad regular
// expression is an error (Sprig's regexMatch says false), an odd number of
// dict arguments is an error, numbers that are not integers add as floats
// (Sprig truncates them). A sprig_NAME not listed here fails at parse time
// (refusedFunc says why and what to use).

import (
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	texttemplate "text/template"
)

// sprigSame maps the Sprig names whose function here is Sprig's to the name
// of that function.
var sprigSame = map[string]string{
	"trim": "trimSpace", "trimPrefix": "trimPrefix", "trimSuffix": "trimSuffix",
	"title": "title", "repeat": "repeat", "replace": "replace",
	"contains": "contains", "hasPrefix": "hasPrefix", "hasSuffix": "hasSuffix",
	"quote": "quote", "squote": "squote", "join": "join", "sortAlpha": "sortAlpha",
	"list": "list", "dict": "dict", "get": "get", "hasKey": "hasKey",
	"first": "first", "last": "last", "sub": "sub", "env": "env", "regexMatch": "regexMatch",
}

// addSprigAliases adds sprigSame's aliases to m, each the function m holds
// under our name (bound, lax or wrapped as that one is).
func addSprigAliases(m texttemplate.FuncMap) {
	for sprig, ours := range sprigSame {
		m["sprig_"+sprig] = m[ours]
	}
}

// sprigEmpty is Sprig's empty: a secret's number (json.Number) is the
// string it was written as, as Vault's client gives consul-template, so
// 0 is not empty (our empty says it is).
func sprigEmpty(v any) bool {
	if n, ok := v.(json.Number); ok {
		return n == ""
	}
	return valueEmpty(v)
}

// fnSprigDefault, fnSprigEmpty and fnSprigCoalesce are Sprig's default,
// empty and coalesce (see sprigEmpty).
func fnSprigDefault(def any, given ...any) any {
	if len(given) == 0 || sprigEmpty(given[0]) {
		return def
	}
	return given[0]
}

func fnSprigEmpty(v any) bool { return sprigEmpty(v) }

func fnSprigCoalesce(vs ...any) any {
	for _, v := range vs {
		if !sprigEmpty(v) {
			return v
		}
	}
	return nil
}

// fnSprigSplit implements {{ sprig_split SEP S }}: Sprig's split, a map of
// "_0", "_1", ... to the parts (consul-template's split gives a list).
func fnSprigSplit(sep string, s any) map[string]string {
	parts := strings.Split(valueString(s), sep)
	out := make(map[string]string, len(parts))
	for i, p := range parts {
		out["_"+strconv.Itoa(i)] = p
	}
	return out
}

// fnSprigIndent implements {{ sprig_indent N S }}: N spaces before every
// line, empty ones included (our indent, consul-template's, skips those).
func fnSprigIndent(n int, s any) (string, error) {
	if n < 0 {
		return "", errors.New("indent must not be negative")
	}
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(valueString(s), "\n", "\n"+pad), nil
}

// fnSprigNindent implements {{ sprig_nindent N S }}: a newline, then
// sprig_indent N S.
func fnSprigNindent(n int, s any) (string, error) {
	out, err := fnSprigIndent(n, s)
	return "\n" + out, err
}

// fnSprigRegexReplaceAll implements {{ sprig_regexReplaceAll RE S REPL }}:
// Sprig's argument order (consul-template's and ours is RE REPL S).
func fnSprigRegexReplaceAll(re string, s any, repl string) (string, error) {
	return fnRegexReplaceAll(re, repl, s)
}

// fnSprigAdd implements {{ sprig_add N... }}: the sum of any number of
// numbers, 0 for none.
func fnSprigAdd(vs ...any) (any, error) {
	var sum any = int64(0)
	for _, v := range vs {
		var err error
		if sum, err = arith(sum, v, '+'); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// fnSprigKeys implements {{ sprig_keys MAP... }}: the keys of every map, in
// order (Sprig's are in no order; a key of two maps is there twice, as in
// Sprig).
func fnSprigKeys(ms ...any) ([]string, error) {
	out := []string{}
	for _, m := range ms {
		ks, err := fnKeys(m)
		if err != nil {
			return nil, err
		}
		out = append(out, ks...)
	}
	sort.Strings(out)
	return out, nil
}
