package template

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
)

// index replaces the builtin {{ index ITEM KEY... }}: the same, except that
// a missing map key is an error naming the secret and the key (the builtin
// gives "<no value>"); {{ index .Data "api-key" }} is how keys that are not
// identifiers are read.
func (st *renderState) index(item any, indexes ...any) (any, error) {
	st.lastData = nil
	v := reflect.ValueOf(item)
	if !v.IsValid() {
		return nil, errors.New("index of nil")
	}
	for _, ix := range indexes {
		v = indirectValue(v)
		if !v.IsValid() {
			return nil, errors.New("index of nil")
		}
		var err error
		switch v.Kind() {
		case reflect.Map:
			v, err = st.mapIndex(v, ix)
		case reflect.Slice, reflect.Array, reflect.String:
			v, err = seqIndex(v, ix)
		default:
			err = fmt.Errorf("can't index item of type %s", v.Type())
		}
		if err != nil {
			return nil, err
		}
	}
	if !v.IsValid() {
		return nil, nil
	}
	return v.Interface(), nil
}

func indirectValue(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}

func (st *renderState) mapIndex(m reflect.Value, ix any) (reflect.Value, error) {
	kt := m.Type().Key()
	k := reflect.ValueOf(ix)
	switch {
	case !k.IsValid():
		return reflect.Value{}, errors.New("index of map with nil")
	case k.Type().AssignableTo(kt):
	case k.Type().ConvertibleTo(kt) && k.Kind() == kt.Kind():
		k = k.Convert(kt)
	default:
		return reflect.Value{}, fmt.Errorf("map key of type %s, want %s", k.Type(), kt)
	}
	r := m.MapIndex(k)
	if r.IsValid() {
		return r, nil
	}
	if st.lax {
		return reflect.Zero(m.Type().Elem()), nil
	}
	if ref := st.owners[m.Pointer()]; ref != nil && m.Type() == reflect.TypeOf(jsonObject(nil)) {
		return reflect.Value{}, &missingKeyError{key: fmt.Sprint(ix), owner: ref.desc}
	}
	return reflect.Value{}, &missingKeyError{key: fmt.Sprint(ix)}
}

func seqIndex(s reflect.Value, ix any) (reflect.Value, error) {
	i, err := valueInt(ix)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("index of %s: %w", s.Kind(), err)
	}
	if i < 0 || i >= int64(s.Len()) {
		return reflect.Value{}, fmt.Errorf("index out of range: %d", i)
	}
	return s.Index(int(i)), nil
}

// missingKeyError is a map key a template asked for and did not find. It
// names the key and, when known, the secret or lease: never a value.
type missingKeyError struct {
	key   string
	owner string // `secret "app/db" version 3`, or ""
}

func (e *missingKeyError) Error() string {
	if e.owner == "" {
		return fmt.Sprintf("no key %q in map", e.key)
	}
	return fmt.Sprintf("no key %q in %s", e.key, e.owner)
}

// scratchPad is consul-template's per-render scratch pad: {{ scratch.Set "k" 1 }}.
// It behaves as consul-template's, but for Get of an unset key ("" rather
// than nil, which prints "<no value>").
type scratchPad struct {
	values map[string]any
}

// scratchFunc implements {{ scratch }}: one pad per render of a template.
func (st *renderState) scratchFunc() *scratchPad {
	if st.pad == nil {
		st.pad = &scratchPad{values: map[string]any{}}
	}
	return st.pad
}

// Key reports whether k is set.
func (s *scratchPad) Key(k string) bool { _, ok := s.values[k]; return ok }

// Get returns the value of k, "" when unset.
func (s *scratchPad) Get(k string) any {
	if v, ok := s.values[k]; ok {
		return v
	}
	return ""
}

// Set sets k and prints nothing.
func (s *scratchPad) Set(k string, v any) string { s.values[k] = v; return "" }

// SetX sets k unless it is set.
func (s *scratchPad) SetX(k string, v any) string {
	if _, ok := s.values[k]; !ok {
		s.values[k] = v
	}
	return ""
}

// MapSet sets key mk of the map at k (made when unset); a value of k that
// is not a map is an error.
func (s *scratchPad) MapSet(k, mk string, v any) (string, error) { return s.mapSet(k, mk, v, true) }

// MapSetX sets key mk of the map at k unless it is set.
func (s *scratchPad) MapSetX(k, mk string, v any) (string, error) { return s.mapSet(k, mk, v, false) }

func (s *scratchPad) mapSet(k, mk string, v any, override bool) (string, error) {
	cur, ok := s.values[k]
	if !ok {
		cur = map[string]any{}
		s.values[k] = cur
	}
	m, ok := scratchMap(cur)
	if !ok {
		return "", fmt.Errorf("scratch %q is not a map", k)
	}
	if _, set := m[mk]; override || !set {
		m[mk] = v
	}
	return "", nil
}

// MapValues returns the values of the map at k, ordered by key; an empty
// list when k is unset or not a map (as consul-template).
func (s *scratchPad) MapValues(k string) []any {
	m, ok := scratchMap(s.values[k])
	if !ok {
		return []any{}
	}
	ks := make([]string, 0, len(m))
	for mk := range m {
		ks = append(ks, mk)
	}
	sort.Strings(ks)
	out := make([]any, len(ks))
	for i, mk := range ks {
		out[i] = m[mk]
	}
	return out
}

// scratchMap is v as the map a scratch key holds: one MapSet made, one
// Set from dict, or a secret's .Data.
func scratchMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case jsonObject:
		return m, true
	}
	return nil, false
}
