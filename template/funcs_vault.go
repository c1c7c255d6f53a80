package template

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// secretValue is what {{ secret }} returns.
type secretValue struct {
	Path       string
	Version    int
	SecretType string
	Metadata   jsonObject
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Rotation   *fetch.Rotation

	ref *dataRef
	st  *renderState
}

// Data is the secret's data. A method, not a field, so that the state knows
// which secret a missing key was looked up in.
func (s *secretValue) Data() any { return s.st.data(s.ref) }

// leaseValue is what {{ dynamic }} returns.
type leaseValue struct {
	LeaseID       string
	Engine, Role  string
	LeaseDuration int64
	Renewable     bool
	IssuedAt      time.Time
	ExpiresAt     time.Time
	MaxExpiresAt  time.Time

	ref *dataRef
	st  *renderState
}

// Data is the credential: every key comes from this one lease.
func (l *leaseValue) Data() any { return l.st.data(l.ref) }

// certValue is what {{ pkiCert }} returns.
type certValue struct {
	Cert    string   // certificate_pem
	Key     string   // private_key_pem
	CA      string   // the CA chain, issuing CA first, as one PEM bundle
	CAChain []string // ca_chain
	Serial  string   // serial_number
	CAID    string
	IssuedAt,
	ExpiresAt time.Time
}

// certData is the .Data of a pkiCert result: consul-template's fields.
type certData struct{ Cert, Key, CA string }

// Data gives consul-template's .Data.Cert, .Data.Key and .Data.CA, the same
// values as .Cert, .Key and .CA.
func (c *certValue) Data() certData { return certData{Cert: c.Cert, Key: c.Key, CA: c.CA} }

// placeholderMap is the .Data of a source not fetched yet: any key of it,
// at any depth, is another placeholderMap (under missingkey=zero), so that
// a discovery run gets past `.Data.a.b` to the next secret.
type placeholderMap map[string]placeholderMap

// data returns the map of ref, remembering it as the last one reached.
func (st *renderState) data(ref *dataRef) any {
	if ref == nil {
		return placeholderMap(nil)
	}
	st.lastData = ref
	return ref.data
}

// own registers the data map of a view for error messages.
func (st *renderState) own(desc string, data jsonObject) *dataRef {
	ref := &dataRef{desc: desc, data: data}
	st.owners[reflect.ValueOf(data).Pointer()] = ref
	return ref
}

// secret implements {{ secret PATH ["version=N"] }}, and consul-template's
// {{ secret "PATH?version=N" }} for the same.
func (st *renderState) secret(path string, opts ...string) (*secretValue, error) {
	st.lastData = nil
	if base, query, ok := strings.Cut(path, "?"); ok {
		q, err := url.ParseQuery(query)
		if err != nil || len(q) != 1 || len(q["version"]) != 1 {
			return nil, fmt.Errorf("%q: a path's query may only be version=N", path)
		}
		path, opts = base, append(opts[:len(opts):len(opts)], "version="+q.Get("version"))
	}
	o, err := parseFuncOptions(opts, "version")
	if err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	if err := fetch.ValidatePath(path); err != nil {
		return nil, err
	}
	version := 0
	if v, ok := o["version"]; ok {
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			return nil, fmt.Errorf("%q: bad version %q (want a positive integer)", path, v)
		}
	}
	src := fetch.StaticSource(path, version)
	if v, ok := st.secrets[src]; ok {
		return v, nil
	}
	var sec *fetch.Secret
	if st.snap != nil {
		sec = st.snap.Secrets[src]
	}
	if sec == nil {
		st.miss(src)
		return &secretValue{Path: path, Version: version, st: st}, nil
	}
	st.use(src)
	v, err := st.newSecretValue(path, sec)
	if err != nil {
		return nil, err
	}
	st.secrets[src] = v
	return v, nil
}

func (st *renderState) newSecretValue(path string, sec *fetch.Secret) (*secretValue, error) {
	desc := fmt.Sprintf("secret %q version %d", path, sec.Version)
	data, err := decodeSecretData(sec.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	v := &secretValue{
		Path: path, Version: sec.Version, SecretType: sec.SecretType,
		Metadata:  jsonObjectOf(sec.Metadata),
		CreatedAt: sec.CreatedAt, UpdatedAt: sec.UpdatedAt, Rotation: sec.Rotation,
		ref: st.own(desc, data), st: st,
	}
	if sec.Path != "" {
		v.Path = sec.Path
	}
	return v, nil
}

// secretList implements {{ secrets PREFIX }} as consul-template does for
// Vault's list: PREFIX is a folder ("app" and "app/" are the same, "" is
// the top), and the names are relative to it, one level deep, sorted: the
// secret "app/db" is "db", and everything under "app/users/" is one
// "users/" (list that folder for what is in it). It reads the list API
// (all pages) for the folder.
func (st *renderState) secretList(prefix string) ([]string, error) {
	st.lastData = nil
	folder := strings.Trim(strings.TrimSpace(prefix), "/")
	if folder != "" {
		if err := fetch.ValidatePath(folder); err != nil {
			return nil, err
		}
		folder += "/"
	}
	src := fetch.ListSource(folder)
	var entries []fetch.ListEntry
	ok := false
	if st.snap != nil {
		entries, ok = st.snap.Lists[src]
	}
	if !ok {
		st.miss(src)
		return []string{}, nil
	}
	st.use(src)
	return folderNames(folder, entries), nil
}

// folderNames lists the names directly in folder, sorted: the path of a
// secret in it without the folder, and the name of each subfolder with
// its "/", once.
func folderNames(folder string, entries []fetch.ListEntry) []string {
	names := []string{}
	seen := map[string]bool{}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Path, folder)
		if !ok || name == "" {
			continue
		}
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[:i+1]
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// dynamic implements {{ dynamic ENGINE ROLE ["ttl=2h"] }}.
func (st *renderState) dynamic(engine, role string, opts ...string) (*leaseValue, error) {
	st.lastData = nil
	o, err := parseFuncOptions(opts, "ttl")
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", engine, role, err)
	}
	src, err := fetch.DynamicSource(engine, role, o["ttl"])
	if err != nil {
		return nil, err
	}
	if v, ok := st.leases[src]; ok {
		return v, nil
	}
	var l *fetch.Lease
	if st.snap != nil {
		l = st.snap.Leases[src]
	}
	if l == nil {
		st.miss(src)
		return &leaseValue{Engine: engine, Role: role, st: st}, nil
	}
	st.use(src)
	desc := fmt.Sprintf("dynamic %q lease %s", engine+"/"+role, l.LeaseID)
	data, err := decodeSecretData(l.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	v := &leaseValue{
		LeaseID: l.LeaseID, Engine: engine, Role: role,
		LeaseDuration: l.LeaseDuration, Renewable: l.Renewable,
		IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, MaxExpiresAt: l.MaxExpiresAt,
		ref: st.own(desc, data), st: st,
	}
	st.leases[src] = v
	return v, nil
}

// pkiCert implements {{ pkiCert ROLE "common_name=CN" ... }}.
func (st *renderState) pkiCert(role string, opts ...string) (*certValue, error) {
	st.lastData = nil
	if i := strings.LastIndexByte(role, '/'); i >= 0 {
		// consul-template's form: pkiCert "pki/issue/web" ...
		return nil, fmt.Errorf("role %q: a ScaiVault PKI role is a name, not a Vault path (pkiCert %q \"common_name=...\")", role, role[i+1:])
	}
	o, err := parseFuncOptions(opts, "common_name", "alt_names", "ip_sans", "ttl")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	req := fetch.IssueRequest{CommonName: o["common_name"], TTL: o["ttl"]}
	if v, ok := o["alt_names"]; ok {
		req.AltNames = strings.Split(v, ",")
	}
	if v, ok := o["ip_sans"]; ok {
		req.IPSANs = strings.Split(v, ",")
	}
	src, err := fetch.PKISource(role, req)
	if err != nil {
		return nil, err
	}
	return st.certFor(src), nil
}

// certFor is the certificate of src (PKI or ACME) as templates see it,
// one value per source and render; a placeholder, and src missed, when
// the snapshot lacks it.
func (st *renderState) certFor(src fetch.Source) *certValue {
	if v, ok := st.certs[src]; ok {
		return v
	}
	var c *fetch.Cert
	if st.snap != nil {
		c = st.snap.Certs[src]
	}
	if c == nil {
		st.miss(src)
		return &certValue{}
	}
	st.use(src)
	v := &certValue{
		Cert: c.CertificatePEM, Key: c.PrivateKeyPEM, CA: fetch.PEMBundle(c.CAChain),
		CAChain: append([]string(nil), c.CAChain...), Serial: c.SerialNumber, CAID: c.CAID,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
	}
	st.certs[src] = v
	return v
}

// parseFuncOptions parses KEY=VALUE arguments; only the allowed keys, each once.
func parseFuncOptions(opts []string, allowed ...string) (map[string]string, error) {
	out := make(map[string]string, len(opts))
	for _, opt := range opts {
		k, v, ok := strings.Cut(opt, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("option %q is not KEY=VALUE (want %s)", opt, optionsWanted(allowed))
		}
		if !hasString(allowed, k) {
			return nil, fmt.Errorf("unknown option %q (want %s)", k, optionsWanted(allowed))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("option %q given twice", k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

func optionsWanted(allowed []string) string {
	parts := make([]string, len(allowed))
	for i, a := range allowed {
		parts[i] = a + "=..."
	}
	return strings.Join(parts, ", ")
}

func hasString(fnList []string, s string) bool {
	for _, x := range fnList {
		if x == s {
			return true
		}
	}
	return false
}

// env implements {{ env NAME }}: "" when unset.
func (st *renderState) env(name string) string {
	v, _ := st.lookupEnv(name)
	return v
}

// envOrDefault implements {{ envOrDefault NAME DEFAULT }}: DEFAULT when
// NAME is unset; a variable set to "" gives "" (as consul-template; for a
// default on empty too: {{ or (env "NAME") "DEFAULT" }}).
func (st *renderState) envOrDefault(name, def string) string {
	if v, ok := st.lookupEnv(name); ok {
		return v
	}
	return def
}

// mustEnv implements {{ mustEnv NAME }}: an error when unset or empty.
func (st *renderState) mustEnv(name string) (string, error) {
	if v, _ := st.lookupEnv(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("environment variable %s is unset or empty", name)
}

// readFile implements {{ file PATH }}: a local file's content, read on
// every render (relative paths from the working directory), at most 16
// MiB; with --user, only what the user could not have redirected (see
// Dirs.readFile). The error names the file. A read that blocks (a FIFO, a hung mount) ends with an
// error when st.interrupt is closed; the blocked read is abandoned (the
// process is stopping).
func (st *renderState) readFile(path string) (string, error) {
	if st.interrupt == nil {
		b, err := st.dirs.readFile(path)
		return string(b), err
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := st.dirs.readFile(path)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return string(r.b), r.err
	case <-st.interrupt:
		return "", fmt.Errorf("read %s: interrupted", path)
	}
}
