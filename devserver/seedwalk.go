package devserver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// normalize checks a decoded document (JSON with UseNumber, or YAML) against
// the shape of t, field by field, so that an unknown field or a value of the
// wrong kind is reported with its path ("dynamic.pg.roles.app.ttl"). It
// returns the document made JSON-ready: YAML maps get string keys, times
// become RFC 3339 strings, and numbers given where a string is wanted become
// strings (YAML's `ttl: 3600` is a bare number of seconds).
func normalize(v any, t reflect.Type, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		return normalizeStruct(v, t, path)
	case reflect.Map:
		m, err := asMap(v, path)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			if out[k], err = normalize(e, t.Elem(), joinField(path, k)); err != nil {
				return nil, err
			}
		}
		return out, nil
	case reflect.Slice:
		s, ok := v.([]any)
		if !ok {
			return nil, kindError(path, "a list", v)
		}
		out := make([]any, len(s))
		for i, e := range s {
			var err error
			if out[i], err = normalize(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return nil, err
			}
		}
		return out, nil
	case reflect.Interface:
		return plainValue(v), nil
	}
	return normalizeScalar(v, t, path)
}

func normalizeStruct(v any, t reflect.Type, path string) (any, error) {
	m, err := asMap(v, path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		f, ok := fieldByJSONName(t, k)
		if !ok {
			return nil, fmt.Errorf("%s: unknown field", joinField(path, k))
		}
		if out[k], err = normalize(e, f.Type, joinField(path, k)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func normalizeScalar(v any, t reflect.Type, path string) (any, error) {
	switch t.Kind() {
	case reflect.String:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case int, int64, uint64, float64:
			return fmt.Sprint(x), nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		}
		return nil, kindError(path, "a string", v)
	case reflect.Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, kindError(path, "true or false", v)
	case reflect.Int:
		switch x := v.(type) {
		case json.Number:
			if n, err := strconv.Atoi(x.String()); err == nil {
				return n, nil
			}
		case int:
			return x, nil
		case int64:
			return x, nil
		}
		return nil, kindError(path, "an integer", v)
	}
	return nil, fmt.Errorf("%s: unsupported field type %s", path, t)
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func asMap(v any, path string) (map[string]any, error) {
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[fmt.Sprint(k)] = e
		}
		return out, nil
	}
	return nil, kindError(path, "an object", v)
}

// plainValue makes a free-form value (secret data, metadata) JSON-ready.
func plainValue(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = plainValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindError(path, want string, got any) error {
	if path == "" {
		path = "document"
	}
	return fmt.Errorf("%s: want %s, got %s", path, want, jsonKind(got))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string, time.Time:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
