package statefile

import (
	"fmt"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// parseDoc decodes and checks the document of an authenticated file: what
// passes can be trusted to be well formed (sources valid, every entry
// present once, sizes within bounds), not to be current.
func parseDoc(data []byte) (*Doc, error) {
	var d Doc
	if err := strictJSON(data, &d); err != nil {
		return nil, bad(ErrCorrupt, "%v", err)
	}
	if err := d.check(); err != nil {
		return nil, bad(ErrCorrupt, "%v", err)
	}
	return &d, nil
}

// check is what parseDoc checks.
func (d *Doc) check() error {
	if len(d.Fingerprint) > maxString {
		return fmt.Errorf("fingerprint too long")
	}
	if d.ResolvedAt.IsZero() && len(d.Secrets)+len(d.Certs)+len(d.Lists) > 0 {
		// Zero only in a file a start-up wrote before it had resolved
		// anything: leases only.
		return fmt.Errorf("no resolved_at")
	}
	for what, n := range map[string]int{"secrets": len(d.Secrets), "leases": len(d.Leases), "certificates": len(d.Certs), "lists": len(d.Lists)} {
		if n > MaxEntries {
			return fmt.Errorf("more than %d %s", MaxEntries, what)
		}
	}
	seen := map[fetch.Source]bool{}
	entry := func(what string, s Source, users []string, kind fetch.Kind) error {
		src, err := s.Source()
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		if src.Kind != kind {
			return fmt.Errorf("%s: a %s source", what, src.Kind)
		}
		if seen[src] {
			return fmt.Errorf("%s: %s twice", what, src)
		}
		seen[src] = true
		return checkUsers(what, users)
	}
	for i, s := range d.Secrets {
		if err := entry(fmt.Sprintf("secret %d", i+1), s.Source, s.UsedBy, fetch.Static); err != nil {
			return err
		}
		if s.Secret == nil || s.Secret.Data == nil {
			return fmt.Errorf("secret %d: no data", i+1)
		}
	}
	for i, c := range d.Certs {
		kind := fetch.PKI
		if c.Source.Kind == "acme" {
			kind = fetch.ACME
		}
		if err := entry(fmt.Sprintf("certificate %d", i+1), c.Source, c.UsedBy, kind); err != nil {
			return err
		}
		if c.Cert == nil || c.Cert.CertificatePEM == "" || c.Cert.ExpiresAt.IsZero() {
			return fmt.Errorf("certificate %d: no certificate or no expiry", i+1)
		}
	}
	for i, l := range d.Lists {
		if err := entry(fmt.Sprintf("list %d", i+1), l.Source, l.UsedBy, fetch.List); err != nil {
			return err
		}
		if len(l.Entries) > maxListLength {
			return fmt.Errorf("list %d: more than %d entries", i+1, maxListLength)
		}
	}
	return d.checkLeases()
}

// checkLeases checks the leases: each id once, at most one in use with
// data per source.
func (d *Doc) checkLeases() error {
	ids := map[string]bool{}
	withData := map[fetch.Source]bool{}
	for i, l := range d.Leases {
		what := fmt.Sprintf("lease %d", i+1)
		src, err := l.Source.Source()
		switch {
		case l.Source == (Source{}) && l.Lease == nil:
			// A lease whose source is not known (one whose answer was
			// unusable): there only to be revoked.
		case err != nil:
			return fmt.Errorf("%s: %v", what, err)
		case src.Kind != fetch.Dynamic:
			return fmt.Errorf("%s: a %s source", what, src.Kind)
		}
		if l.LeaseID == "" || len(l.LeaseID) > maxString || !printable(l.LeaseID) {
			return fmt.Errorf("%s: bad lease id", what)
		}
		if ids[l.LeaseID] {
			return fmt.Errorf("%s: lease id twice", what)
		}
		ids[l.LeaseID] = true
		switch l.Phase {
		case "in use", "superseded", "unused":
		default:
			return fmt.Errorf("%s: unknown phase", what)
		}
		if l.Duration < 0 || l.Duration > int64(maxDuration/time.Second) {
			return fmt.Errorf("%s: lease_duration out of range", what)
		}
		if l.Lease != nil {
			if l.Lease.LeaseID != l.LeaseID || l.Lease.Data == nil {
				return fmt.Errorf("%s: its lease has another id or no data", what)
			}
			if withData[src] {
				return fmt.Errorf("%s: two leases with data for %s", what, src)
			}
			withData[src] = true
		}
		if err := checkUsers(what, l.UsedBy); err != nil {
			return err
		}
	}
	return nil
}

// maxDuration is the longest lease_duration taken: ten years.
const maxDuration = 10 * 365 * 24 * time.Hour

func checkUsers(what string, users []string) error {
	if len(users) > maxUsers {
		return fmt.Errorf("%s: more than %d users", what, maxUsers)
	}
	for _, u := range users {
		if len(u) > maxString {
			return fmt.Errorf("%s: a user name too long", what)
		}
	}
	return nil
}

// printable: ASCII letters, digits and punctuation, as lease ids are.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
