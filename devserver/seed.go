package devserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Seed is the dev server's initial state and configuration, in the format of
// DESIGN.md "The dev server". Durations are strings in the forms of
// fetch.ParseDuration ("90s", "1h30m", "90d", "3600").
type Seed struct {
	// RootToken may do everything; "" generates a random one (RootToken()).
	RootToken string                      `json:"root_token,omitempty"`
	Clients   []SeedClient                `json:"clients,omitempty"`
	Policies  map[string][]SeedPolicyRule `json:"policies,omitempty"`
	Secrets   map[string]SeedSecret       `json:"secrets,omitempty"`
	Dynamic   map[string]SeedEngine       `json:"dynamic,omitempty"`
	PKI       SeedPKI                     `json:"pki,omitempty"`
	ACME      SeedACME                    `json:"acme,omitempty"`
}

// SeedClient is an OAuth client of the token endpoint.
type SeedClient struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	TokenTTL     string   `json:"token_ttl,omitempty"` // default 1h
	Policies     []string `json:"policies,omitempty"`
}

// SeedPolicyRule grants permissions on the paths matching PathPattern
// ("*" within one segment, "**" across one or more segments).
type SeedPolicyRule struct {
	PathPattern string   `json:"path_pattern"`
	Permissions []string `json:"permissions"` // read list write delete rotate dynamic pki acme
}

// SeedSecret is a secret's first version.
type SeedSecret struct {
	Data        map[string]any `json:"data"`
	SecretType  string         `json:"secret_type,omitempty"` // default json
	Metadata    map[string]any `json:"metadata,omitempty"`
	MaxVersions int            `json:"max_versions,omitempty"` // default 10
	Rotation    *SeedRotation  `json:"rotation,omitempty"`
}

// SeedRotation is a secret's rotation policy. NextRotationIn (from start) or
// NextRotationAt (RFC 3339) sets the first due time; neither: one Interval on.
type SeedRotation struct {
	PolicyID       string `json:"policy_id"`
	Interval       string `json:"interval"`
	NextRotationIn string `json:"next_rotation_in,omitempty"`
	NextRotationAt string `json:"next_rotation_at,omitempty"`
}

// SeedEngine is a dynamic secrets engine: Kind "random" or "postgres".
type SeedEngine struct {
	Kind string `json:"kind"`
	// ConnectionURL is the postgres engine's admin connection. For both
	// kinds, when set, each lease's data carries it as connection_url with
	// the lease's username and password in place of the URL's user.
	ConnectionURL string                    `json:"connection_url,omitempty"`
	Roles         map[string]SeedEngineRole `json:"roles,omitempty"`
}

// SeedEngineRole is one role of a dynamic engine. Statements (postgres only)
// may use {{name}}, {{password}} and {{expiration}}.
type SeedEngineRole struct {
	TTL                  string   `json:"ttl,omitempty"`       // default 1h
	MaxTTL               string   `json:"max_ttl,omitempty"`   // default 24h, or TTL when longer
	Renewable            *bool    `json:"renewable,omitempty"` // default true
	CreationStatements   []string `json:"creation_statements,omitempty"`
	RevocationStatements []string `json:"revocation_statements,omitempty"`
	RenewStatements      []string `json:"renew_statements,omitempty"`
}

// SeedPKI holds the PKI roles.
type SeedPKI struct {
	Roles map[string]SeedPKIRole `json:"roles,omitempty"`
}

// SeedPKIRole decides the names a certificate may carry, its key and ttl.
type SeedPKIRole struct {
	AllowedDomains  []string `json:"allowed_domains,omitempty"`
	AllowSubdomains bool     `json:"allow_subdomains,omitempty"`
	AllowIPSANs     bool     `json:"allow_ip_sans,omitempty"`
	AllowAnyName    bool     `json:"allow_any_name,omitempty"`
	TTL             string   `json:"ttl,omitempty"`      // default 72h (capped at MaxTTL)
	MaxTTL          string   `json:"max_ttl,omitempty"`  // default 720h
	KeyType         string   `json:"key_type,omitempty"` // ec (default), rsa, ed25519
	KeyBits         int      `json:"key_bits,omitempty"` // ec 256/384/521, rsa 2048/3072/4096
}

// SeedACME holds the ACME accounts, by name.
type SeedACME struct {
	Accounts map[string]SeedACMEAccount `json:"accounts,omitempty"`
}

// SeedACMEAccount is an ACME account that the dev server simulates without
// any network: its orders turn valid after Options.ACMEDelay with a
// certificate of the dev ACME CA that lasts CertTTL, and are renewed at
// two thirds of it; an order for a name in FailDomains turns invalid.
type SeedACMEAccount struct {
	Provider    string   `json:"provider,omitempty"`    // default letsencrypt
	Environment string   `json:"environment,omitempty"` // default staging
	Email       string   `json:"email,omitempty"`
	CertTTL     string   `json:"cert_ttl,omitempty"` // default 2160h (90 days)
	FailDomains []string `json:"fail_domains,omitempty"`
}

// LoadSeed reads and parses a seed file; errors name the file.
func LoadSeed(path string) (*Seed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	return ParseSeed(data, path)
}

// ParseSeed parses a seed, YAML when name ends in .yaml or .yml, JSON
// otherwise, and validates it. Errors name the file and the field:
// `seed.json: dynamic.pg.roles.app.ttl: invalid duration "1x"`.
func ParseSeed(data []byte, name string) (*Seed, error) {
	var doc any
	var err error
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		doc, err = decodeYAMLDoc(data)
	default:
		doc, err = decodeJSONDoc(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	norm, err := normalize(doc, reflect.TypeOf(Seed{}), "")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	seed, err := seedFromDoc(norm)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if _, err := compileSeed(seed, name); err != nil {
		return nil, err
	}
	return seed, nil
}

func seedFromDoc(norm any) (*Seed, error) {
	raw, err := json.Marshal(norm)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	seed := new(Seed)
	if err := dec.Decode(seed); err != nil {
		return nil, err
	}
	return seed, nil
}

func decodeJSONDoc(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document")
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := lineCol(data, se.Offset)
			return nil, fmt.Errorf("line %d, column %d: %v", line, col, se)
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level value")
	}
	return doc, nil
}

func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func decodeYAMLDoc(data []byte) (any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, errors.New("empty document")
	}
	return doc, nil
}

// DefaultSeed is the built-in demo data of `--dev` without a seed file.
func DefaultSeed() *Seed {
	renewable := true
	return &Seed{
		RootToken: "dev-root",
		Clients: []SeedClient{{
			ClientID: "app", ClientSecret: "app-secret", TokenTTL: "1h",
			Policies: []string{"app-read"},
		}},
		Policies: map[string][]SeedPolicyRule{
			"app-read": {
				{PathPattern: "app/**", Permissions: []string{"read", "list"}},
				{PathPattern: "dynamic/support-db/*", Permissions: []string{"dynamic"}},
				{PathPattern: "pki/svc-mtls", Permissions: []string{"pki"}},
				{PathPattern: "acme/letsencrypt-staging", Permissions: []string{"acme"}},
			},
		},
		Secrets: map[string]SeedSecret{
			"app/db": {Data: map[string]any{"username": "app", "password": "dev-db-password"}},
			"app/api-key": {
				Data: map[string]any{"value": "dev-api-key-0123456789"}, SecretType: "text",
				Rotation: &SeedRotation{PolicyID: "rp_monthly", Interval: "30d", NextRotationIn: "72h"},
			},
			"app/config": {
				Data: map[string]any{
					"log_level": "info", "feature_flags": map[string]any{"beta": true},
					"max_connections": 20, "region": "eu-west-1",
				},
				Metadata: map[string]any{"tags": []any{"config"}, "custom": map[string]any{"owner": "team-a"}},
			},
		},
		Dynamic: map[string]SeedEngine{
			"support-db": {Kind: "random", Roles: map[string]SeedEngineRole{
				"readonly": {TTL: "1h", MaxTTL: "24h", Renewable: &renewable},
			}},
		},
		PKI: SeedPKI{Roles: map[string]SeedPKIRole{
			"svc-mtls": {
				AllowedDomains: []string{"svc.cluster.local", "localhost"}, AllowSubdomains: true,
				AllowIPSANs: true, MaxTTL: "720h", KeyType: "ec", KeyBits: 256,
			},
		}},
		ACME: SeedACME{Accounts: map[string]SeedACMEAccount{
			"letsencrypt-staging": {Provider: "letsencrypt", Environment: "staging", Email: "certs@example.com",
				CertTTL: "2160h", FailDomains: []string{"broken.example.com"}},
		}},
	}
}
