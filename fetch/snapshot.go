package fetch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Snapshot is an immutable set of fetched things, keyed by Source. Never
// mutate a Snapshot (nor the secrets, leases and certificates it points to)
// after it is returned; Resolve, Merge and Without make new ones, sharing the
// unchanged entries. A nil *Snapshot is an empty one.
type Snapshot struct {
	Secrets map[Source]*Secret
	Leases  map[Source]*Lease
	Certs   map[Source]*Cert
	Lists   map[Source][]ListEntry
}

// Has reports whether src has been fetched into s.
func (s *Snapshot) Has(src Source) bool {
	if s == nil {
		return false
	}
	var ok bool
	switch src.Kind {
	case Static:
		_, ok = s.Secrets[src]
	case Dynamic:
		_, ok = s.Leases[src]
	case PKI, ACME:
		_, ok = s.Certs[src]
	case List:
		_, ok = s.Lists[src]
	}
	return ok
}

// Merge returns a new snapshot holding s's entries and other's; other wins
// where both hold a source. Either may be nil.
func (s *Snapshot) Merge(other *Snapshot) *Snapshot {
	out := s.clone()
	if other != nil {
		maps.Copy(out.Secrets, other.Secrets)
		maps.Copy(out.Leases, other.Leases)
		maps.Copy(out.Certs, other.Certs)
		maps.Copy(out.Lists, other.Lists)
	}
	return out
}

// Without returns a new snapshot holding s's entries but srcs: what a
// watcher drops before resolving those sources anew.
func (s *Snapshot) Without(srcs ...Source) *Snapshot {
	out := s.clone()
	for _, src := range srcs {
		delete(out.Secrets, src)
		delete(out.Leases, src)
		delete(out.Certs, src)
		delete(out.Lists, src)
	}
	return out
}

// clone returns a shallow copy with fresh, non-nil maps.
func (s *Snapshot) clone() *Snapshot {
	out := &Snapshot{
		Secrets: map[Source]*Secret{},
		Leases:  map[Source]*Lease{},
		Certs:   map[Source]*Cert{},
		Lists:   map[Source][]ListEntry{},
	}
	if s != nil {
		maps.Copy(out.Secrets, s.Secrets)
		maps.Copy(out.Leases, s.Leases)
		maps.Copy(out.Certs, s.Certs)
		maps.Copy(out.Lists, s.Lists)
	}
	return out
}

// Value is the string a reference injects (DESIGN.md, "Where values come
// from"):
//
//   - static and dynamic: #KEY picks one key of data; without a key, the
//     value of the only key, or the JSON encoding of data when it has
//     several. A JSON string is injected as is, any other JSON value as its
//     (compact) JSON encoding.
//   - PKI and ACME: #certificate_pem, #private_key_pem, #serial_number as issued;
//     #ca_chain the chain's PEMs, each ending in one newline, concatenated
//     (a valid PEM bundle, issuing CA first, root last); #expires_at in RFC
//     3339 (UTC). Without a field: the JSON object of those five fields,
//     with the same values.
//
// Errors name the source, the version read or lease id, and the key; when a
// key is missing they list the key names present, never a value.
func (s *Snapshot) Value(r Ref) (string, error) {
	src := r.Source()
	switch r.Kind {
	case Static:
		var sec *Secret
		if s != nil {
			sec = s.Secrets[src]
		}
		if sec == nil {
			return "", fmt.Errorf("secret %q: not resolved", src.String())
		}
		what := fmt.Sprintf("secret %q version %d", sec.Path, sec.Version)
		if sec.Path == "" {
			what = fmt.Sprintf("secret %q version %d", r.Path, sec.Version)
		}
		return pickData(what, sec.Data, r.Key)
	case Dynamic:
		var l *Lease
		if s != nil {
			l = s.Leases[src]
		}
		if l == nil {
			return "", fmt.Errorf("%s: not resolved", src.String())
		}
		return pickData(fmt.Sprintf("%s lease %s", src.String(), l.LeaseID), l.Data, r.Key)
	case PKI, ACME:
		var c *Cert
		if s != nil {
			c = s.Certs[src]
		}
		if c == nil {
			return "", fmt.Errorf("%s: not resolved", src.String())
		}
		return certValue(c, r.Key)
	}
	return "", fmt.Errorf("reference %q: a %s reference has no value", r.Raw, r.Kind)
}

// pickData applies the #KEY rules to data; what names the owner in errors.
func pickData(what string, data map[string]json.RawMessage, key string) (string, error) {
	if key != "" {
		raw, ok := data[key]
		if !ok {
			return "", fmt.Errorf("%s has no key %q (keys: %s)", what, key, keyList(data))
		}
		return jsonValue(raw)
	}
	switch len(data) {
	case 0:
		return "", fmt.Errorf("%s has no data", what)
	case 1:
		for _, raw := range data {
			return jsonValue(raw)
		}
	}
	return encodeJSON(data)
}

// keyList lists the key names of data, sorted, for error messages.
func keyList(data map[string]json.RawMessage) string {
	if len(data) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(data)), ", ")
}

// jsonValue injects a JSON string as is, anything else as compact JSON.
func jsonValue(raw json.RawMessage) (string, error) {
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '"' {
		var str string
		if err := json.Unmarshal(t, &str); err == nil {
			return str, nil
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		// Hide the decoder's message: it may quote the value.
		return "", fmt.Errorf("value is not valid JSON")
	}
	return buf.String(), nil
}

// encodeJSON encodes v as compact JSON without HTML escaping.
func encodeJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("encode value as JSON: value is not valid JSON")
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// certValue is the PKI field of c, or all of them as JSON.
func certValue(c *Cert, field string) (string, error) {
	fields := map[string]string{
		FieldCertificate:  c.CertificatePEM,
		FieldPrivateKey:   c.PrivateKeyPEM,
		FieldCAChain:      PEMBundle(c.CAChain),
		FieldSerialNumber: c.SerialNumber,
		FieldExpiresAt:    c.ExpiresAt.UTC().Format(time.RFC3339),
	}
	if field == "" {
		return encodeJSON(fields)
	}
	v, ok := fields[field]
	if !ok {
		return "", fmt.Errorf("certificate %s has no field %q (fields: %s)", c.SerialNumber, field, strings.Join(pkiFields, ", "))
	}
	return v, nil
}

// PEMBundle joins PEM blocks into one bundle: each block ends in exactly one
// newline, blocks follow one another in order.
func PEMBundle(pems []string) string {
	var b strings.Builder
	for _, p := range pems {
		p = strings.TrimRight(p, "\r\n")
		if p == "" {
			continue
		}
		b.WriteString(p)
		b.WriteByte('\n')
	}
	return b.String()
}

// Only returns a new snapshot holding s's entries for srcs alone. It never
// returns nil.
func (s *Snapshot) Only(srcs []Source) *Snapshot {
	out := (*Snapshot)(nil).clone()
	if s == nil {
		return out
	}
	for _, src := range srcs {
		if v, ok := s.Secrets[src]; ok {
			out.Secrets[src] = v
		}
		if v, ok := s.Leases[src]; ok {
			out.Leases[src] = v
		}
		if v, ok := s.Certs[src]; ok {
			out.Certs[src] = v
		}
		if v, ok := s.Lists[src]; ok {
			out.Lists[src] = v
		}
	}
	return out
}

// NewSnapshot returns an empty snapshot, ready to fill.
func NewSnapshot() *Snapshot { return (*Snapshot)(nil).clone() }
