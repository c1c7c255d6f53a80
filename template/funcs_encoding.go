package template

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// jsonObject is a decoded JSON object. It prints as compact JSON, so that
// {{ .Data.nested }} gives JSON rather than Go's map syntax (as an env
// reference injects any non-string value as its JSON encoding).
type jsonObject map[string]any

// jsonArray is a decoded JSON array; it prints as compact JSON.
type jsonArray []any

func (o jsonObject) String() string { return jsonText(map[string]any(o)) }
func (a jsonArray) String() string  { return jsonText([]any(a)) }

// jsonText is v as compact JSON without HTML escaping.
func jsonText(v any) string {
	s, err := fnToUnescapedJSON(v)
	if err != nil {
		return "<not JSON>"
	}
	return s
}

// decodeSecretData decodes the data of a secret or lease. The error names the
// key, never the value.
func decodeSecretData(raw map[string]json.RawMessage) (jsonObject, error) {
	out := make(jsonObject, len(raw))
	for k, r := range raw {
		v, err := decodeJSONValue(r)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// decodeJSONValue decodes one JSON value: numbers as json.Number, objects as
// jsonObject, arrays as jsonArray. The error gives the offset only.
func decodeJSONValue(b []byte) (any, error) {
	if v, ok := decodeScalar(b); ok {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the value")
		}
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid JSON at byte %d", se.Offset)
		}
		return nil, errors.New("invalid JSON")
	}
	return fromJSON(v), nil
}

// decodeScalar decodes, without a decoder, the JSON values most secret
// data holds: strings without escapes, numbers, true, false and null.
func decodeScalar(b []byte) (any, bool) {
	switch {
	case len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"':
		s := b[1 : len(b)-1]
		for _, c := range s {
			if c == '\\' || c == '"' || c < 0x20 {
				return nil, false
			}
		}
		if !utf8.Valid(s) {
			return nil, false
		}
		return string(s), true
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		if json.Valid(b) {
			return json.Number(b), true
		}
	case string(b) == "true":
		return true, true
	case string(b) == "false":
		return false, true
	case string(b) == "null":
		return nil, true
	}
	return nil, false
}

// fromJSON turns decoded maps and slices into jsonObject and jsonArray.
func fromJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return jsonObjectOf(x)
	case []any:
		out := make(jsonArray, len(x))
		for i, e := range x {
			out[i] = fromJSON(e)
		}
		return out
	}
	return v
}

// jsonObjectOf converts m (nil: empty) into a jsonObject, deeply.
func jsonObjectOf(m map[string]any) jsonObject {
	out := make(jsonObject, len(m))
	for k, v := range m {
		out[k] = fromJSON(v)
	}
	return out
}

// fnToJSON implements {{ toJSON V }}: compact JSON, HTML characters escaped
// (as encoding/json and consul-template do).
func fnToJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// fnToJSONPretty implements {{ toJSONPretty V }}: indented by two spaces.
func fnToJSONPretty(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return string(b), err
}

// fnToUnescapedJSON implements {{ toUnescapedJSON V }}: toJSON without
// escaping <, > and &.
func fnToUnescapedJSON(v any) (string, error) { return encodeJSONText(v, "") }

// fnToUnescapedJSONPretty implements {{ toUnescapedJSONPretty V }}.
func fnToUnescapedJSONPretty(v any) (string, error) { return encodeJSONText(v, "  ") }

func encodeJSONText(v any, prefix string) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", prefix)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// fnToYAML implements {{ toYAML V }}: YAML indented by two spaces, without
// the final newline.
func fnToYAML(v any) (string, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(yamlReady(v)); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// fnToTOML implements {{ toTOML MAP }}: TOML as consul-template writes it
// (the same library, BurntSushi/toml: tables indented by two spaces),
// without the final newline. JSON numbers are TOML numbers (an integer
// beyond int64 becomes a float); a null is left out, TOML having none.
func fnToTOML(v any) (string, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(tomlReady(v)); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}

// tomlReady copies the maps and lists of v as plain Go maps and slices
// (the encoder takes json.Number as a number itself).
func tomlReady(v any) any {
	switch x := v.(type) {
	case jsonObject:
		return tomlReady(map[string]any(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = tomlReady(e)
		}
		return out
	case jsonArray:
		return tomlReady([]any(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = tomlReady(e)
		}
		return out
	}
	return v
}

// yamlReady copies the maps and lists of v with every json.Number made a
// YAML number written as in the JSON (yaml.v3 would quote it as a string).
func yamlReady(v any) any {
	switch x := v.(type) {
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(x.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: x.String()}
	case jsonObject:
		return yamlReady(map[string]any(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = yamlReady(e)
		}
		return out
	case jsonArray:
		return yamlReady([]any(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = yamlReady(e)
		}
		return out
	}
	return v
}

// fnParseJSON implements {{ parseJSON S }}: "" gives an empty object. The
// error gives the offset, never the text.
func fnParseJSON(s any) (any, error) {
	str := valueString(s)
	if strings.TrimSpace(str) == "" {
		return jsonObject{}, nil
	}
	return decodeJSONValue([]byte(str))
}

var yamlLineRE = lazyRegexp(`\bline (\d+)\b`)

// fnParseYAML implements {{ parseYAML S }}: "" gives an empty object. The
// error gives the line, never the text.
func fnParseYAML(s any) (any, error) {
	str := valueString(s)
	if strings.TrimSpace(str) == "" {
		return jsonObject{}, nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(str), &v); err != nil {
		if m := yamlLineRE().FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("invalid YAML at line %s", m[1])
		}
		return nil, errors.New("invalid YAML")
	}
	return fromJSON(v), nil
}

// fnBase64Encode implements {{ base64Encode S }} (standard alphabet, padded).
func fnBase64Encode(s any) string {
	return base64.StdEncoding.EncodeToString([]byte(valueString(s)))
}

// fnBase64Decode implements {{ base64Decode S }}; padding may be left out.
func fnBase64Decode(s any) (string, error) {
	return decodeBase64Text(valueString(s), base64.StdEncoding, base64.RawStdEncoding)
}

// fnBase64URLEncode implements {{ base64URLEncode S }} (URL alphabet, padded).
func fnBase64URLEncode(s any) string {
	return base64.URLEncoding.EncodeToString([]byte(valueString(s)))
}

// fnBase64URLDecode implements {{ base64URLDecode S }}; padding may be left out.
func fnBase64URLDecode(s any) (string, error) {
	return decodeBase64Text(valueString(s), base64.URLEncoding, base64.RawURLEncoding)
}

func decodeBase64Text(s string, padded, raw *base64.Encoding) (string, error) {
	b, err := padded.DecodeString(s)
	if err != nil && !strings.Contains(s, "=") {
		if rb, rerr := raw.DecodeString(s); rerr == nil {
			return string(rb), nil
		}
	}
	if err != nil {
		// CorruptInputError gives a byte offset only.
		return "", err
	}
	return string(b), nil
}

// fnSha256Hex implements {{ sha256Hex S }}.
func fnSha256Hex(s any) string {
	sum := sha256.Sum256([]byte(valueString(s)))
	return hex.EncodeToString(sum[:])
}

// fnMd5sum implements {{ md5sum S }}.
func fnMd5sum(s any) string {
	sum := md5.Sum([]byte(valueString(s)))
	return hex.EncodeToString(sum[:])
}

// fnHmacSHA256Hex implements {{ hmacSHA256Hex MESSAGE KEY }}.
func fnHmacSHA256Hex(message, key any) string {
	h := hmac.New(sha256.New, []byte(valueString(key)))
	h.Write([]byte(valueString(message)))
	return hex.EncodeToString(h.Sum(nil))
}
