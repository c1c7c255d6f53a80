package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Kind is the kind of a secret reference or source.
type Kind int

// Kinds of references and sources.
const (
	Static  Kind = iota + 1 // scaivault://PATH
	Dynamic                 // scaivault+dynamic://ENGINE/ROLE
	PKI                     // scaivault+pki://ROLE?common_name=CN
	List                    // paths under a prefix (templates' `secrets`)
	ACME                    // scaivault+acme://ACCOUNT?domains=a,b
)

func (k Kind) String() string {
	switch k {
	case Static:
		return "static"
	case Dynamic:
		return "dynamic"
	case PKI:
		return "pki"
	case List:
		return "list"
	case ACME:
		return "acme"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Reference schemes.
const (
	SchemeStatic  = "scaivault"
	SchemeDynamic = "scaivault+dynamic"
	SchemePKI     = "scaivault+pki"
	SchemeACME    = "scaivault+acme"
)

// PKI fields a reference may pick with #FIELD.
const (
	FieldCertificate  = "certificate_pem"
	FieldPrivateKey   = "private_key_pem"
	FieldCAChain      = "ca_chain"
	FieldSerialNumber = "serial_number"
	FieldExpiresAt    = "expires_at"
)

var pkiFields = []string{FieldCertificate, FieldPrivateKey, FieldCAChain, FieldSerialNumber, FieldExpiresAt}

// Ref is a parsed secret reference (DESIGN.md, "Where values come from"):
//
//	scaivault://PATH[?version=N][#KEY]
//	scaivault+dynamic://ENGINE/ROLE[?ttl=2h][#KEY]
//	scaivault+pki://ROLE?common_name=CN[&alt_names=a,b][&ip_sans=..][&ttl=72h][#FIELD]
//	scaivault+acme://ACCOUNT?domains=a.example.com,b.example.com[&challenge=dns-01][#FIELD]
//
// each with an optional as=file in the query.
type Ref struct {
	Raw     string // the reference as written (never holds a secret value)
	Kind    Kind
	Path    string // Static: secret path; List: prefix
	Version int    // Static: 0 = current
	// Dynamic: TTL is canonical (ParseDuration(...).String()) or "" for the
	// role's default.
	Engine, Role, TTL string
	PKIRole           string       // PKI
	Issue             IssueRequest // PKI parameters, canonical (sorted names, canonical ttl)
	// ACME: the account's name, the domains (lower case, sorted,
	// deduplicated) and the challenge type ("" for the server's default).
	Account   string
	Domains   []string
	Challenge string
	Key       string // #KEY, or the PKI field; "" none
	AsFile    bool
}

// ParseRef parses s as a reference. isRef is false (with a nil error) when s
// is not a reference at all: it is then passed through untouched. A string
// whose scheme is scaivault or scaivault+WORD is a reference; when it is
// malformed (unknown scheme or query parameter, bad version or ttl, empty
// key, invalid path segment, missing common_name, unknown PKI field) the
// error says what is wrong. Schemes are matched in lower case only.
//
// The fragment (#KEY) and query values are percent-decoded; so are path
// segments, which must then match [A-Za-z0-9._-]+.
func ParseRef(s string) (ref Ref, isRef bool, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !isRefScheme(scheme) {
		return Ref{}, false, nil
	}
	ref, err = parseRef(scheme, rest)
	if err != nil {
		return Ref{}, true, fmt.Errorf("reference %q: %w", s, err)
	}
	ref.Raw = s
	return ref, true, nil
}

// isRefScheme reports whether scheme is scaivault or scaivault+WORD.
func isRefScheme(scheme string) bool {
	if scheme == SchemeStatic {
		return true
	}
	word, ok := strings.CutPrefix(scheme, SchemeStatic+"+")
	if !ok || word == "" {
		return false
	}
	for _, c := range word {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func parseRef(scheme, rest string) (Ref, error) {
	var ref Ref
	rest, frag, hasFrag := strings.Cut(rest, "#")
	if hasFrag {
		key, err := url.PathUnescape(frag)
		if err != nil {
			return ref, fmt.Errorf("bad escape in key %q", frag)
		}
		if key == "" {
			return ref, errors.New(`empty key after "#"`)
		}
		ref.Key = key
	}
	body, rawQuery, _ := strings.Cut(rest, "?")
	q, err := parseQuery(rawQuery)
	if err != nil {
		return ref, err
	}
	if as, ok := q.take("as"); ok {
		if as != "file" {
			return ref, fmt.Errorf("bad as=%q (want as=file)", as)
		}
		ref.AsFile = true
	}
	switch scheme {
	case SchemeStatic:
		err = parseStatic(&ref, body, q)
	case SchemeDynamic:
		err = parseDynamic(&ref, body, q)
	case SchemePKI:
		err = parsePKI(&ref, body, q)
	case SchemeACME:
		err = parseACME(&ref, body, q)
	default:
		return ref, fmt.Errorf("unknown scheme %q (want %s, %s, %s or %s)", scheme, SchemeStatic, SchemeDynamic, SchemePKI, SchemeACME)
	}
	if err != nil {
		return ref, err
	}
	return ref, q.rejectRest()
}

func parseStatic(ref *Ref, body string, q *query) error {
	ref.Kind = Static
	p, err := decodePath(body)
	if err != nil {
		return err
	}
	ref.Path = p
	if v, ok := q.take("version"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("bad version %q (want a positive integer)", v)
		}
		ref.Version = n
	}
	return nil
}

func parseDynamic(ref *Ref, body string, q *query) error {
	ref.Kind = Dynamic
	p, err := decodePath(body)
	if err != nil {
		return err
	}
	engine, role, ok := strings.Cut(p, "/")
	if !ok || strings.Contains(role, "/") {
		return fmt.Errorf("path %q: want ENGINE/ROLE", p)
	}
	ref.Engine, ref.Role = engine, role
	if v, ok := q.take("ttl"); ok {
		if ref.TTL, err = canonicalTTL(v); err != nil {
			return err
		}
	}
	return nil
}

func parsePKI(ref *Ref, body string, q *query) error {
	ref.Kind = PKI
	role, err := decodePath(body)
	if err != nil {
		return err
	}
	if strings.Contains(role, "/") {
		return fmt.Errorf("path %q: want a single ROLE", role)
	}
	ref.PKIRole = role
	var req IssueRequest
	req.CommonName, _ = q.take("common_name")
	if v, ok := q.take("alt_names"); ok {
		req.AltNames = strings.Split(v, ",")
	}
	if v, ok := q.take("ip_sans"); ok {
		req.IPSANs = strings.Split(v, ",")
	}
	req.TTL, _ = q.take("ttl")
	if ref.Issue, err = canonicalIssue(req); err != nil {
		return err
	}
	if ref.Key != "" && !slices.Contains(pkiFields, ref.Key) {
		return fmt.Errorf("unknown PKI field %q (want one of %s)", ref.Key, strings.Join(pkiFields, ", "))
	}
	return nil
}

// decodePath percent-decodes each segment of p on its own and validates it.
func decodePath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", fmt.Errorf("invalid path segment %q: bad escape", seg)
		}
		if err := validateSegment(dec); err != nil {
			return "", fmt.Errorf("invalid path segment %d %q: %v", i+1, dec, err)
		}
		segs[i] = dec
	}
	return strings.Join(segs, "/"), nil
}

// canonicalTTL returns ttl as ParseDuration(ttl).String(); zero is an error.
func canonicalTTL(ttl string) (string, error) {
	d, err := ParseDuration(ttl)
	if err != nil || d <= 0 {
		return "", fmt.Errorf("bad ttl %q (want a positive duration such as 90s, 2h or 7d)", ttl)
	}
	return d.String(), nil
}

// canonicalIssue checks req and returns it with alt names and IP SANs
// sorted and deduplicated, IPs in their canonical form and the ttl canonical.
func canonicalIssue(req IssueRequest) (IssueRequest, error) {
	out := IssueRequest{CommonName: req.CommonName}
	if out.CommonName == "" {
		return out, errors.New("missing common_name")
	}
	for _, n := range req.AltNames {
		if n == "" {
			return out, errors.New("empty name in alt_names")
		}
		out.AltNames = append(out.AltNames, n)
	}
	for _, s := range req.IPSANs {
		ip := net.ParseIP(s)
		if ip == nil {
			return out, fmt.Errorf("bad IP address %q in ip_sans", s)
		}
		out.IPSANs = append(out.IPSANs, ip.String())
	}
	slices.Sort(out.AltNames)
	out.AltNames = slices.Compact(out.AltNames)
	slices.Sort(out.IPSANs)
	out.IPSANs = slices.Compact(out.IPSANs)
	if req.TTL != "" {
		ttl, err := canonicalTTL(req.TTL)
		if err != nil {
			return out, err
		}
		out.TTL = ttl
	}
	return out, nil
}

// query is a decoded query string whose parameters are taken one by one;
// what remains is unknown.
type query struct {
	vals  map[string]string
	order []string
}

func parseQuery(raw string) (*query, error) {
	q := &query{vals: map[string]string{}}
	if raw == "" {
		return q, nil
	}
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		dk, err1 := url.PathUnescape(k)
		dv, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad escape in query parameter %q", kv)
		}
		if dk == "" {
			return nil, fmt.Errorf("empty query parameter name in %q", kv)
		}
		if _, dup := q.vals[dk]; dup {
			return nil, fmt.Errorf("duplicate query parameter %q", dk)
		}
		q.vals[dk] = dv
		q.order = append(q.order, dk)
	}
	return q, nil
}

func (q *query) take(k string) (string, bool) {
	v, ok := q.vals[k]
	delete(q.vals, k)
	return v, ok
}

func (q *query) rejectRest() error {
	for _, k := range q.order {
		if _, ok := q.vals[k]; ok {
			return fmt.Errorf("unknown query parameter %q", k)
		}
	}
	return nil
}

// Source identifies one thing fetched: a static secret (Path, Version), a
// lease (Engine, Role, TTL), a certificate (PKIRole and canonical Params), an
// ACME certificate (Account and canonical Params), a list (Path is the
// prefix). It is comparable and serves as a map key; as=file and #KEY do
// not count, so references differing only by those share one.
type Source struct {
	Kind              Kind
	Path              string
	Version           int
	Engine, Role, TTL string
	PKIRole           string
	Account           string // ACME: the account's name
	// Params: PKI, the canonical query (common_name, alt_names, ip_sans,
	// ttl); ACME, the canonical domains and challenge (acmeParams).
	Params string
}

// Source returns what r is read from.
func (r Ref) Source() Source {
	switch r.Kind {
	case Static:
		return StaticSource(r.Path, r.Version)
	case Dynamic:
		return Source{Kind: Dynamic, Engine: r.Engine, Role: r.Role, TTL: r.TTL}
	case PKI:
		return Source{Kind: PKI, PKIRole: r.PKIRole, Params: encodeIssue(r.Issue)}
	case List:
		return ListSource(r.Path)
	case ACME:
		return Source{Kind: ACME, Account: r.Account, Params: encodeACME(r.Domains, r.Challenge)}
	}
	return Source{}
}

// StaticSource is the source of a static secret; version 0 is the current one.
func StaticSource(path string, version int) Source {
	return Source{Kind: Static, Path: path, Version: version}
}

// DynamicSource is the source of a lease; ttl "" is the role's default, any
// other ttl is canonicalised so that "2h" and "120m" are one source.
func DynamicSource(engine, role, ttl string) (Source, error) {
	for _, seg := range []string{engine, role} {
		if err := validateSegment(seg); err != nil {
			return Source{}, fmt.Errorf("dynamic %s/%s: %v", engine, role, err)
		}
	}
	src := Source{Kind: Dynamic, Engine: engine, Role: role}
	if ttl != "" {
		c, err := canonicalTTL(ttl)
		if err != nil {
			return Source{}, fmt.Errorf("dynamic %s/%s: %w", engine, role, err)
		}
		src.TTL = c
	}
	return src, nil
}

// PKISource is the source of a certificate: the role and the canonical
// parameters (sorted, deduplicated alt names and IP SANs, canonical ttl).
func PKISource(role string, req IssueRequest) (Source, error) {
	if err := validateSegment(role); err != nil {
		return Source{}, fmt.Errorf("pki role %q: %v", role, err)
	}
	c, err := canonicalIssue(req)
	if err != nil {
		return Source{}, fmt.Errorf("pki %s: %w", role, err)
	}
	return Source{Kind: PKI, PKIRole: role, Params: encodeIssue(c)}, nil
}

// ListSource is the source of the paths under prefix.
func ListSource(prefix string) Source { return Source{Kind: List, Path: prefix} }

// encodeIssue encodes a canonical IssueRequest as Source.Params.
func encodeIssue(req IssueRequest) string {
	v := url.Values{}
	v.Set("common_name", req.CommonName)
	if len(req.AltNames) > 0 {
		v.Set("alt_names", strings.Join(req.AltNames, ","))
	}
	if len(req.IPSANs) > 0 {
		v.Set("ip_sans", strings.Join(req.IPSANs, ","))
	}
	if req.TTL != "" {
		v.Set("ttl", req.TTL)
	}
	return v.Encode()
}

// IssueRequest returns the request that issues a PKI source's certificate.
func (s Source) IssueRequest() IssueRequest {
	v, _ := url.ParseQuery(s.Params)
	req := IssueRequest{CommonName: v.Get("common_name"), TTL: v.Get("ttl")}
	if a := v.Get("alt_names"); a != "" {
		req.AltNames = strings.Split(a, ",")
	}
	if a := v.Get("ip_sans"); a != "" {
		req.IPSANs = strings.Split(a, ",")
	}
	return req
}

// String names the source for logs and errors: `app/db`, `app/db version 3`,
// `dynamic support-db/readonly ttl=2h0m0s`,
// `pki svc-mtls common_name=a.svc alt_names=b,c ttl=72h0m0s`, `list app/`,
// `acme letsencrypt domains=a.example.com,b.example.com challenge=dns-01`.
func (s Source) String() string {
	switch s.Kind {
	case Static:
		if s.Version > 0 {
			return fmt.Sprintf("%s version %d", s.Path, s.Version)
		}
		return s.Path
	case Dynamic:
		if s.TTL != "" {
			return fmt.Sprintf("dynamic %s/%s ttl=%s", s.Engine, s.Role, s.TTL)
		}
		return fmt.Sprintf("dynamic %s/%s", s.Engine, s.Role)
	case PKI:
		req := s.IssueRequest()
		var b strings.Builder
		fmt.Fprintf(&b, "pki %s common_name=%s", s.PKIRole, req.CommonName)
		if len(req.AltNames) > 0 {
			b.WriteString(" alt_names=" + strings.Join(req.AltNames, ","))
		}
		if len(req.IPSANs) > 0 {
			b.WriteString(" ip_sans=" + strings.Join(req.IPSANs, ","))
		}
		if req.TTL != "" {
			b.WriteString(" ttl=" + req.TTL)
		}
		return b.String()
	case List:
		return "list " + s.Path
	case ACME:
		domains, challenge := s.ACMEOrder()
		str := fmt.Sprintf("acme %s domains=%s", s.Account, strings.Join(domains, ","))
		if challenge != "" {
			str += " challenge=" + challenge
		}
		return str
	}
	return "unknown source"
}
