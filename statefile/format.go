package statefile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// Format and Version name what a file holds; a file of another format or
// version is not used (a newer scaivault-run may write Version 2).
const (
	Format  = "scaivault-run state"
	Version = 1
)

// Doc is what a state file holds, as `age -d` prints it (inside an
// envelope that adds the format, the version and the MAC):
//
//	{"fingerprint": "sha256:…", "resolved_at": "…", "written_at": "…", "pid": 4242,
//	 "exit": null,
//	 "secrets": [{"source": {"kind": "static", "path": "app/db"}, "used_by": ["--env DB_PASS"],
//	              "secret": {"path": "app/db", "version": 3, "data": {…}, …}}],
//	 "leases": [{"source": {"kind": "dynamic", "engine": "db", "role": "ro"}, "lease_id": "dyn_…",
//	             "phase": "in use", "used_by": ["--env DB_USER"], "received_at": "…",
//	             "lease_duration": 3600, "expires_at": "…", "lease": {…, "data": {…}}}],
//	 "certificates": [{"source": {"kind": "pki", "pki_role": "svc", "params": "common_name=…"}, …}],
//	 "lists": [{"source": {"kind": "list", "path": "app/"}, "entries": [{"path": …, "version": …}]}]}
type Doc struct {
	// Fingerprint is that of the configuration the state belongs to
	// (see Fingerprint); a state of another is not used.
	Fingerprint string `json:"fingerprint"`
	// ResolvedAt is when the server last confirmed every value of the
	// state (a resolution, or a poll that found nothing new): the oldest
	// confirmation of its static secrets (not pinned) and lists, a value
	// carried on from an older read keeping that read's time. The
	// state's age counts from it.
	ResolvedAt time.Time `json:"resolved_at"`
	WrittenAt  time.Time `json:"written_at"`
	Pid        int       `json:"pid"` // of the scaivault-run that wrote it
	// Exit is set by a scaivault-run that exited cleanly; nil while one
	// runs, and after a crash.
	Exit    *Exit    `json:"exit"`
	Secrets []Secret `json:"secrets"`
	Leases  []Lease  `json:"leases"`
	Certs   []Cert   `json:"certificates"`
	Lists   []List   `json:"lists"`
}

// Exit is the mark of a clean exit.
type Exit struct {
	At time.Time `json:"at"`
	// LeasesRevoked: every lease of the file was revoked (each Lease says
	// so too); false with --no-revoke, or when some revocations failed.
	LeasesRevoked bool `json:"leases_revoked"`
}

// Secret is a static secret the child ran on.
type Secret struct {
	Source Source        `json:"source"`
	UsedBy []string      `json:"used_by,omitempty"` // variables and templates
	Secret *fetch.Secret `json:"secret"`
}

// Lease is a lease scaivault-run held. Lease (with its data) is set for
// those the child runs on; the others (superseded, or generated for an
// update in flight) only have their id and times, for the next run to
// revoke.
type Lease struct {
	// Source is what it was generated for; empty for a lease whose
	// answer could not be used (only its id is known).
	Source  Source   `json:"source"`
	LeaseID string   `json:"lease_id"`
	Phase   string   `json:"phase"` // "in use", "superseded", "unused"
	UsedBy  []string `json:"used_by,omitempty"`
	// ReceivedAt is when its times were last read (issue, renewal or a
	// reuse's look-up), by our clock. Duration is its life in seconds:
	// the lease_duration it was issued or last renewed with (a look-up
	// only says what is left, and does not shorten it), of which a
	// reused lease must have a third left.
	ReceivedAt time.Time `json:"received_at"`
	Duration   int64     `json:"lease_duration"`
	ExpiresAt  time.Time `json:"expires_at"` // its end by our clock, renewals included
	Revoked    bool      `json:"revoked,omitempty"`
	// Lease is the lease as issued (the child's values: data, and the
	// times templates show), for the leases the child runs on.
	Lease *fetch.Lease `json:"lease,omitempty"`
	// Renewable and MaxExpiresAt are the server's latest word.
	Renewable    bool      `json:"renewable"`
	MaxExpiresAt time.Time `json:"max_expires_at,omitzero"`
}

// Cert is a certificate the child ran on.
type Cert struct {
	Source Source      `json:"source"`
	UsedBy []string    `json:"used_by,omitempty"`
	Cert   *fetch.Cert `json:"certificate"`
	// OrderID is an ACME certificate's order (fetch.Cert keeps it off
	// the wire): what the watcher polls for its renewal.
	OrderID string `json:"order_id,omitempty"`
}

// List is a template's `secrets "prefix"` as last read.
type List struct {
	Source  Source            `json:"source"`
	UsedBy  []string          `json:"used_by,omitempty"`
	Entries []fetch.ListEntry `json:"entries"`
}

// Source is a fetch.Source as the file writes it.
type Source struct {
	Kind    string `json:"kind"` // static, dynamic, pki, acme, list
	Path    string `json:"path,omitempty"`
	Version int    `json:"version,omitempty"`
	Engine  string `json:"engine,omitempty"`
	Role    string `json:"role,omitempty"`
	TTL     string `json:"ttl,omitempty"`
	PKIRole string `json:"pki_role,omitempty"`
	Account string `json:"account,omitempty"` // acme
	Params  string `json:"params,omitempty"`  // pki, acme
}

// FromSource is src as the file writes it.
func FromSource(src fetch.Source) Source {
	return Source{
		Kind: src.Kind.String(), Path: src.Path, Version: src.Version,
		Engine: src.Engine, Role: src.Role, TTL: src.TTL, PKIRole: src.PKIRole, Account: src.Account, Params: src.Params,
	}
}

// Source returns the fetch.Source, checked as the reference parser would
// check it: a kind, valid path segments, canonical ttl and parameters.
func (s Source) Source() (fetch.Source, error) {
	switch s.Kind {
	case "static":
		if err := fetch.ValidatePath(s.Path); err != nil {
			return fetch.Source{}, fmt.Errorf("static source: %w", err)
		}
		if s.Version < 0 {
			return fetch.Source{}, fmt.Errorf("static source %q: negative version", s.Path)
		}
		return fetch.StaticSource(s.Path, s.Version), s.only(s.Path, s.Version)
	case "dynamic":
		src, err := fetch.DynamicSource(s.Engine, s.Role, s.TTL)
		if err == nil && src.TTL != s.TTL {
			err = fmt.Errorf("dynamic %s/%s: ttl %q is not canonical", s.Engine, s.Role, s.TTL)
		}
		if err != nil {
			return fetch.Source{}, err
		}
		return src, s.only("", 0)
	case "pki":
		src, err := fetch.PKISource(s.PKIRole, fetch.Source{Kind: fetch.PKI, Params: s.Params}.IssueRequest())
		if err == nil && src.Params != s.Params {
			err = fmt.Errorf("pki %s: parameters are not canonical", s.PKIRole)
		}
		if err != nil {
			return fetch.Source{}, err
		}
		return src, s.only("", 0)
	case "acme":
		domains, challenge := fetch.Source{Kind: fetch.ACME, Params: s.Params}.ACMEOrder()
		src, err := fetch.ACMESource(s.Account, domains, challenge)
		if err == nil && src.Params != s.Params {
			err = fmt.Errorf("acme %s: parameters are not canonical", s.Account)
		}
		if err != nil {
			return fetch.Source{}, err
		}
		return src, s.only("", 0)
	case "list":
		if len(s.Path) > maxString {
			return fetch.Source{}, fmt.Errorf("list source: prefix too long")
		}
		return fetch.ListSource(s.Path), s.only(s.Path, 0)
	}
	return fetch.Source{}, fmt.Errorf("unknown source kind %q", truncate(s.Kind))
}

// only checks that s has no field its kind does not use.
func (s Source) only(path string, version int) error {
	want := Source{Kind: s.Kind, Path: path, Version: version}
	switch s.Kind {
	case "dynamic":
		want.Engine, want.Role, want.TTL = s.Engine, s.Role, s.TTL
	case "pki":
		want.PKIRole, want.Params = s.PKIRole, s.Params
	case "acme":
		want.Account, want.Params = s.Account, s.Params
	}
	if s != want {
		return fmt.Errorf("%s source: fields of another kind", s.Kind)
	}
	return nil
}

// Fingerprint is the fingerprint of a configuration, given as one line per
// reference (package run writes them: scheme, path, key, parameters and
// delivery; no variable names, no flag such as --poll-interval). The order
// and repetitions of the lines do not count.
func Fingerprint(lines []string) string {
	ls := slices.Clone(lines)
	slices.Sort(ls)
	ls = slices.Compact(ls)
	h := sha256.New()
	for _, l := range ls {
		// Length-prefixed: no two lists of lines hash alike.
		fmt.Fprintf(h, "%d:%s\n", len(l), l)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// truncate shortens a string of a hostile file for an error message.
func truncate(s string) string {
	const n = 40
	if len(s) > n {
		return s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
