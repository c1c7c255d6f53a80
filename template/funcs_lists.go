package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// valueEmpty is Sprig's notion of empty: nil, false, zero, "", and empty
// lists and maps. A json.Number is empty when it is zero.
func valueEmpty(v any) bool {
	if v == nil {
		return true
	}
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		return err == nil && f == 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() == 0
	case reflect.Interface, reflect.Pointer:
		return rv.IsNil()
	}
	return rv.IsZero()
}

// fnDefault implements {{ default DEFAULT V }}: V unless empty.
// {{ .port | default 8080 }}. A missing key is still an error before default
// sees it: use get for optional keys.
func fnDefault(def any, given ...any) any {
	if len(given) == 0 || valueEmpty(given[0]) {
		return def
	}
	return given[0]
}

// fnCoalesce implements {{ coalesce V... }}: the first V not empty, else "".
func fnCoalesce(vs ...any) any {
	for _, v := range vs {
		if !valueEmpty(v) {
			return v
		}
	}
	return ""
}

// fnEmpty implements {{ empty V }}.
func fnEmpty(v any) bool { return valueEmpty(v) }

// fnRequired implements {{ required MESSAGE V }}: V, or an error with
// MESSAGE when V is nil or "".
func fnRequired(msg string, v any) (any, error) {
	if v == nil {
		return nil, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, errors.New(msg)
	}
	return v, nil
}

// fnList implements {{ list V... }}.
func fnList(vs ...any) []any { return append([]any{}, vs...) }

// fnDict implements {{ dict KEY VALUE ... }}.
func fnDict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("want KEY VALUE pairs, got %d arguments", len(kv))
	}
	out := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out[valueString(kv[i])] = kv[i+1]
	}
	return out, nil
}

// valueMap returns m as a map[string]any (a copy when converted).
func valueMap(m any) (map[string]any, error) {
	switch x := m.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return x, nil
	case jsonObject:
		return x, nil
	}
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return nil, fmt.Errorf("want a map with string keys, got %s", v.Type())
	}
	out := make(map[string]any, v.Len())
	for it := v.MapRange(); it.Next(); {
		out[it.Key().String()] = it.Value().Interface()
	}
	return out, nil
}

// fnKeys implements {{ keys MAP }}: the keys, sorted.
func fnKeys(m any) ([]string, error) {
	sm, err := valueMap(m)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(sm))
	for k := range sm {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// fnSortAlpha implements {{ sortAlpha LIST }}: the string forms, sorted.
func fnSortAlpha(l any) ([]string, error) {
	items, err := valueList(l)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = valueString(it)
	}
	sort.Strings(out)
	return out, nil
}

// fnFirst implements {{ first LIST }}; an empty list is an error, not
// "<no value>".
func fnFirst(l any) (any, error) {
	items, err := valueList(l)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errors.New("empty list")
	}
	return items[0], nil
}

// fnLast implements {{ last LIST }}; an empty list is an error.
func fnLast(l any) (any, error) {
	items, err := valueList(l)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, errors.New("empty list")
	}
	return items[len(items)-1], nil
}

// fnIn implements {{ in LIST V }}: V is an element of LIST, or a substring
// when LIST is a string.
func fnIn(l, v any) bool {
	if s, ok := l.(string); ok {
		return strings.Contains(s, valueString(v))
	}
	items, err := valueList(l)
	if err != nil {
		return false
	}
	for _, it := range items {
		if equalValues(it, v) {
			return true
		}
	}
	return false
}

// equalValues compares template values: numbers by value whatever their
// type, strings by content.
func equalValues(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	na, aok := valueNumber(a)
	nb, bok := valueNumber(b)
	if aok == nil && bok == nil {
		return compareNumbers(na, nb) == 0
	}
	return valueIsString(a) && valueIsString(b) && valueString(a) == valueString(b)
}

func valueIsString(v any) bool {
	return v != nil && reflect.ValueOf(v).Kind() == reflect.String
}

// containsEvery builds containsAll (want true: every V is in LIST) and
// containsNone (want false: no V is in LIST), as consul-template:
// {{ if .tags | containsAll $want }}.
func containsEvery(want bool) func(vs, l any) (bool, error) {
	return func(vs, l any) (bool, error) {
		items, err := valueList(vs)
		if err != nil {
			return false, err
		}
		for _, v := range items {
			if fnIn(l, v) != want {
				return false, nil
			}
		}
		return true, nil
	}
}

var (
	fnContainsAll  = containsEvery(true)
	fnContainsNone = containsEvery(false)
)

// fnContainsAny implements {{ containsAny VALUES LIST }}: some V is in LIST.
func fnContainsAny(vs, l any) (bool, error) {
	none, err := fnContainsNone(vs, l)
	return !none && err == nil, err
}

// fnContainsNotAll implements {{ containsNotAll VALUES LIST }}: some V is
// not in LIST.
func fnContainsNotAll(vs, l any) (bool, error) {
	all, err := fnContainsAll(vs, l)
	return !all && err == nil, err
}

// maxLoop bounds the length of loop's list.
const maxLoop = 1 << 20

// fnLoop implements {{ loop N }} (0..N-1) and {{ loop START STOP }}
// (START..STOP-1).
func fnLoop(args ...any) ([]int64, error) {
	var start, stop int64
	var err error
	switch len(args) {
	case 1:
		stop, err = valueInt(args[0])
	case 2:
		if start, err = valueInt(args[0]); err == nil {
			stop, err = valueInt(args[1])
		}
	default:
		return nil, fmt.Errorf("want [START] STOP, got %d arguments", len(args))
	}
	if err != nil {
		return nil, err
	}
	if stop-start > maxLoop {
		return nil, fmt.Errorf("more than %d iterations", maxLoop)
	}
	out := []int64{}
	for i := start; i < stop; i++ {
		out = append(out, i)
	}
	return out, nil
}

// fnHasKey implements {{ hasKey MAP KEY }}.
func fnHasKey(m any, key string) bool {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return false
	}
	return v.MapIndex(reflect.ValueOf(key).Convert(v.Type().Key())).IsValid()
}

// fnGet implements {{ get MAP KEY }}: the value, or "" when KEY is missing
// (for optional keys; .MAP.KEY and index fail instead).
func fnGet(m any, key string) any {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return ""
	}
	r := v.MapIndex(reflect.ValueOf(key).Convert(v.Type().Key()))
	if !r.IsValid() {
		return ""
	}
	return r.Interface()
}

// fnMergeMap implements {{ mergeMap DST SRC }}: DST with the keys of SRC it
// lacks, deeply (consul-template). Neither argument is modified.
func fnMergeMap(dst, src any) (map[string]any, error) { return mergeMaps(dst, src, false) }

// fnMergeMapWithOverride implements {{ mergeMapWithOverride DST SRC }}: as
// mergeMap, but SRC's values win.
func fnMergeMapWithOverride(dst, src any) (map[string]any, error) { return mergeMaps(dst, src, true) }

func mergeMaps(dst, src any, override bool) (map[string]any, error) {
	d, err := valueMap(dst)
	if err != nil {
		return nil, err
	}
	s, err := valueMap(src)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(d)+len(s))
	for k, v := range d {
		out[k] = v
	}
	for k, sv := range s {
		dv, ok := out[k]
		if !ok {
			out[k] = sv
			continue
		}
		dm, derr := valueMap(dv)
		sm, serr := valueMap(sv)
		switch {
		case derr == nil && serr == nil && dv != nil && sv != nil:
			if out[k], err = mergeMaps(dm, sm, override); err != nil {
				return nil, err
			}
		case override:
			out[k] = sv
		}
	}
	return out, nil
}

// fnExplodeMap implements {{ explodeMap MAP }}: keys "a/b/c" become nested
// maps.
func fnExplodeMap(m any) (map[string]any, error) {
	sm, err := valueMap(m)
	if err != nil {
		return nil, err
	}
	ks, _ := fnKeys(sm)
	out := map[string]any{}
	for _, k := range ks {
		if err := explodeKey(out, k, sm[k]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func explodeKey(m map[string]any, key string, v any) error {
	parts := strings.Split(key, "/")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p]
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		nm, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("key %q: %q already holds a value", key, p)
		}
		m = nm
	}
	if leaf := parts[len(parts)-1]; leaf != "" {
		if _, isMap := m[leaf].(map[string]any); isMap {
			return fmt.Errorf("key %q: %q already holds a map", key, leaf)
		}
		m[leaf] = v
	}
	return nil
}
