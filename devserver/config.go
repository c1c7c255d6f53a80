package devserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sort"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// config is a validated Seed with parsed durations. It never changes after
// New, so it is read without a lock.
type config struct {
	rootToken string
	clients   map[string]*clientConfig
	secrets   []secretSeed // in path order
	engines   map[string]*engineConfig
	pkiRoles  map[string]*pkiRoleConfig
	acme      map[string]*acmeAccountConfig // by name
	acmeByID  map[string]*acmeAccountConfig
}

type clientConfig struct {
	id, secret string
	tokenTTL   time.Duration
	rules      []rule
}

type secretSeed struct {
	path        string
	secretType  string
	data        map[string]json.RawMessage
	metadata    map[string]any
	maxVersions int
	policy      *policySeed
}

type policySeed struct {
	id       string
	interval time.Duration
	nextIn   time.Duration
	nextAt   time.Time // wins over nextIn when set
}

type engineConfig struct {
	name, kind string
	connURL    string
	roles      map[string]*roleConfig
}

type roleConfig struct {
	name                 string
	ttl, maxTTL          time.Duration
	renewable            bool
	create, revoke, renw []string
}

type pkiRoleConfig struct {
	name               string
	domains            []string
	subdomains, ipSANs bool
	anyName            bool
	ttl, maxTTL        time.Duration
	keyType            string
	keyBits            int
}

// seedChecker collects the first validation error, prefixed with the file
// name and the field.
type seedChecker struct {
	name string
	err  error
}

func (c *seedChecker) fail(field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %s: %s", c.name, field, fmt.Sprintf(format, args...))
	}
}

// duration parses a seed duration; "" gives def. Zero is refused.
func (c *seedChecker) duration(field, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := fetch.ParseDuration(s)
	if err != nil {
		c.fail(field, "%v", err)
		return def
	}
	if d == 0 {
		c.fail(field, "must be positive")
		return def
	}
	return d
}

func (c *seedChecker) segment(field, s string) {
	if s == "" {
		c.fail(field, "empty name")
		return
	}
	for _, r := range s {
		if !isSegChar(r) {
			c.fail(field, "name %q: character %q is not allowed (want [A-Za-z0-9._-])", s, r)
			return
		}
	}
	if s == "." || s == ".." {
		c.fail(field, "name %q is not allowed", s)
	}
}

// compileSeed validates a seed; name prefixes every error.
func compileSeed(s *Seed, name string) (*config, error) {
	c := &seedChecker{name: name}
	cfg := &config{rootToken: s.RootToken}
	rules := compilePolicies(c, s.Policies)
	cfg.clients = compileClients(c, s.Clients, rules)
	cfg.secrets = compileSecrets(c, s.Secrets)
	cfg.engines = compileEngines(c, s.Dynamic)
	cfg.pkiRoles = compilePKIRoles(c, s.PKI.Roles)
	cfg.acme, cfg.acmeByID = compileACME(c, s.ACME.Accounts)
	if c.err != nil {
		return nil, c.err
	}
	return cfg, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func compilePolicies(c *seedChecker, ps map[string][]SeedPolicyRule) map[string][]rule {
	out := make(map[string][]rule, len(ps))
	for _, name := range sortedKeys(ps) {
		for i, r := range ps[name] {
			field := fmt.Sprintf("policies.%s[%d]", name, i)
			pat, err := compilePattern(r.PathPattern)
			if err != nil {
				c.fail(field+".path_pattern", "%v", err)
			}
			var perms perm
			for j, p := range r.Permissions {
				q, ok := permNames[p]
				if !ok {
					c.fail(fmt.Sprintf("%s.permissions[%d]", field, j),
						"unknown permission %q (want %s)", p, permNamesText)
				}
				perms |= q
			}
			if len(r.Permissions) == 0 {
				c.fail(field+".permissions", "required")
			}
			out[name] = append(out[name], rule{policy: name, pattern: pat, perms: perms})
		}
	}
	return out
}

func compileClients(c *seedChecker, cs []SeedClient, rules map[string][]rule) map[string]*clientConfig {
	out := make(map[string]*clientConfig, len(cs))
	for i, sc := range cs {
		field := fmt.Sprintf("clients[%d]", i)
		switch {
		case sc.ClientID == "":
			c.fail(field+".client_id", "required")
		case sc.ClientID == "root":
			c.fail(field+".client_id", `"root" is the root token's identity`)
		case out[sc.ClientID] != nil:
			c.fail(field+".client_id", "duplicate client %q", sc.ClientID)
		case sc.ClientSecret == "":
			c.fail(field+".client_secret", "required")
		}
		cc := &clientConfig{id: sc.ClientID, secret: sc.ClientSecret,
			tokenTTL: c.duration(field+".token_ttl", sc.TokenTTL, time.Hour)}
		for j, p := range sc.Policies {
			rs, ok := rules[p]
			if !ok {
				c.fail(fmt.Sprintf("%s.policies[%d]", field, j), "unknown policy %q", p)
			}
			cc.rules = append(cc.rules, rs...)
		}
		out[sc.ClientID] = cc
	}
	return out
}

func compileSecrets(c *seedChecker, ss map[string]SeedSecret) []secretSeed {
	var out []secretSeed
	for _, p := range sortedKeys(ss) {
		s := ss[p]
		field := "secrets." + p
		if err := fetch.ValidatePath(p); err != nil {
			c.fail(field, "%v", err)
			continue
		}
		seed := secretSeed{path: p, secretType: s.SecretType, maxVersions: s.MaxVersions}
		if seed.secretType == "" {
			seed.secretType = "json"
		}
		data, err := rawData(s.Data)
		if err == nil {
			err = checkData(seed.secretType, data)
		}
		if err != nil {
			c.fail(field+".data", "%v", err)
		}
		seed.data = data
		if !validSecretTypes[seed.secretType] {
			c.fail(field+".secret_type", "unknown secret type %q", seed.secretType)
		}
		if s.MaxVersions < 0 || s.MaxVersions > maxMaxVersions {
			c.fail(field+".max_versions", "must be between 1 and %d", maxMaxVersions)
		}
		if seed.metadata, err = canonMap(s.Metadata); err != nil {
			c.fail(field+".metadata", "%v", err)
		}
		if s.Rotation != nil {
			seed.policy = compileRotation(c, field+".rotation", s.Rotation)
		}
		out = append(out, seed)
	}
	return out
}

func compileRotation(c *seedChecker, field string, r *SeedRotation) *policySeed {
	ps := &policySeed{id: r.PolicyID}
	if r.PolicyID == "" {
		c.fail(field+".policy_id", "required")
	}
	if r.Interval == "" {
		c.fail(field+".interval", "required")
	}
	ps.interval = c.duration(field+".interval", r.Interval, 0)
	ps.nextIn = c.duration(field+".next_rotation_in", r.NextRotationIn, ps.interval)
	if r.NextRotationAt != "" {
		if r.NextRotationIn != "" {
			c.fail(field, "next_rotation_in and next_rotation_at are exclusive")
		}
		t, err := time.Parse(time.RFC3339Nano, r.NextRotationAt)
		if err != nil {
			c.fail(field+".next_rotation_at", "want an RFC 3339 time, got %q", r.NextRotationAt)
		}
		ps.nextAt = t.UTC()
	}
	return ps
}

func compileEngines(c *seedChecker, es map[string]SeedEngine) map[string]*engineConfig {
	out := make(map[string]*engineConfig, len(es))
	for _, name := range sortedKeys(es) {
		e := es[name]
		field := "dynamic." + name
		c.segment(field, name)
		if name == "leases" {
			c.fail(field, `engine name "leases" is reserved`)
		}
		ec := &engineConfig{name: name, kind: e.Kind, connURL: e.ConnectionURL,
			roles: make(map[string]*roleConfig, len(e.Roles))}
		switch e.Kind {
		case "random", "postgres":
		case "":
			c.fail(field+".kind", "required (random or postgres)")
		default:
			c.fail(field+".kind", "unknown engine kind %q (want random or postgres)", e.Kind)
		}
		if e.Kind == "postgres" && e.ConnectionURL == "" {
			c.fail(field+".connection_url", "required for kind postgres")
		}
		if e.ConnectionURL != "" {
			if u, err := url.Parse(e.ConnectionURL); err != nil || u.Host == "" ||
				(u.Scheme != "postgres" && u.Scheme != "postgresql" && e.Kind == "postgres") {
				c.fail(field+".connection_url", "want a URL like postgres://user@host:5432/db")
			}
		}
		for _, rn := range sortedKeys(e.Roles) {
			ec.roles[rn] = compileRole(c, field+".roles."+rn, rn, e.Kind, e.Roles[rn])
		}
		out[name] = ec
	}
	return out
}

func compileRole(c *seedChecker, field, name, kind string, r SeedEngineRole) *roleConfig {
	c.segment(field, name)
	rc := &roleConfig{name: name, renewable: r.Renewable == nil || *r.Renewable,
		create: r.CreationStatements, revoke: r.RevocationStatements, renw: r.RenewStatements}
	rc.ttl = c.duration(field+".ttl", r.TTL, time.Hour)
	rc.maxTTL = c.duration(field+".max_ttl", r.MaxTTL, max(24*time.Hour, rc.ttl))
	if rc.ttl > rc.maxTTL {
		c.fail(field+".ttl", "%s is longer than max_ttl %s", rc.ttl, rc.maxTTL)
	}
	if kind != "postgres" && len(r.CreationStatements)+len(r.RevocationStatements)+len(r.RenewStatements) > 0 {
		c.fail(field, "statements are only for kind postgres")
	}
	if kind == "postgres" {
		rc.create = orDefault(rc.create, defaultCreation)
		rc.revoke = orDefault(rc.revoke, defaultRevocation)
		rc.renw = orDefault(rc.renw, defaultRenew)
	}
	return rc
}

func orDefault(s, def []string) []string {
	if len(s) == 0 {
		return def
	}
	return s
}

func compilePKIRoles(c *seedChecker, rs map[string]SeedPKIRole) map[string]*pkiRoleConfig {
	out := make(map[string]*pkiRoleConfig, len(rs))
	for _, name := range sortedKeys(rs) {
		r := rs[name]
		field := "pki.roles." + name
		c.segment(field, name)
		pc := &pkiRoleConfig{name: name, subdomains: r.AllowSubdomains, ipSANs: r.AllowIPSANs,
			anyName: r.AllowAnyName, keyType: r.KeyType, keyBits: r.KeyBits}
		for i, d := range r.AllowedDomains {
			if net.ParseIP(d) != nil || checkHostname(d) != nil {
				c.fail(fmt.Sprintf("%s.allowed_domains[%d]", field, i), "%q is not a DNS name", d)
			}
			pc.domains = append(pc.domains, lowerASCII(d))
		}
		pc.maxTTL = c.duration(field+".max_ttl", r.MaxTTL, 720*time.Hour)
		pc.ttl = min(c.duration(field+".ttl", r.TTL, 72*time.Hour), pc.maxTTL)
		if err := pc.checkKey(); err != nil {
			c.fail(field+".key_bits", "%v", err)
		}
		if pc.keyType != "ec" && pc.keyType != "rsa" && pc.keyType != "ed25519" {
			c.fail(field+".key_type", "unknown key type %q (want ec, rsa or ed25519)", r.KeyType)
		}
		out[name] = pc
	}
	return out
}

// checkKey fills the default key type and size and checks the pair.
func (pc *pkiRoleConfig) checkKey() error {
	switch pc.keyType {
	case "", "ec":
		pc.keyType = "ec"
		if pc.keyBits == 0 {
			pc.keyBits = 256
		}
		if pc.keyBits != 256 && pc.keyBits != 384 && pc.keyBits != 521 {
			return fmt.Errorf("ec keys are 256, 384 or 521 bits, not %d", pc.keyBits)
		}
	case "rsa":
		if pc.keyBits == 0 {
			pc.keyBits = 2048
		}
		if pc.keyBits != 2048 && pc.keyBits != 3072 && pc.keyBits != 4096 {
			return fmt.Errorf("rsa keys are 2048, 3072 or 4096 bits, not %d", pc.keyBits)
		}
	case "ed25519":
		if pc.keyBits != 0 {
			return fmt.Errorf("ed25519 keys take no key_bits")
		}
	}
	return nil
}

// rawData encodes each value of a data object on its own.
func rawData(m map[string]any) (map[string]json.RawMessage, error) {
	if m == nil {
		return nil, fmt.Errorf("required (an object)")
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %v", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// canonMap gives a free-form object the shape JSON decoding gives it
// (json.Number numbers), so that seeds, requests and saved state agree.
func canonMap(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
