package fetch

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ACME references (DESIGN.md "ACME certificates"):
//
//	scaivault+acme://ACCOUNT?domains=a.example.com,b.example.com[&challenge=dns-01][#FIELD]
//
// ACCOUNT is the name of an ACME account in ScaiVault; the fields are the
// PKI ones. One order serves every reference to the same account and set
// of domains, whatever the order of the names.

// ACME challenge types a reference may ask for.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeDNS01     = "dns-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

var challenges = []string{ChallengeHTTP01, ChallengeDNS01, ChallengeTLSALPN01}

// MaxACMEDomains is the most names one order may carry (Let's Encrypt's
// limit per certificate).
const MaxACMEDomains = 100

func parseACME(ref *Ref, body string, q *query) error {
	ref.Kind = ACME
	account, err := decodePath(body)
	if err != nil {
		return err
	}
	if strings.Contains(account, "/") {
		return fmt.Errorf("path %q: want a single ACCOUNT name", account)
	}
	ref.Account = account
	raw, ok := q.take("domains")
	if !ok {
		return errors.New("missing domains (want domains=a.example.com,b.example.com)")
	}
	if ref.Domains, err = CanonicalDomains(strings.Split(raw, ",")); err != nil {
		return err
	}
	if c, ok := q.take("challenge"); ok {
		if !slices.Contains(challenges, c) {
			return fmt.Errorf("unknown challenge %q (want %s)", c, strings.Join(challenges, ", "))
		}
		ref.Challenge = c
	}
	if err := wildcardChallenge(ref.Domains, ref.Challenge); err != nil {
		return err
	}
	if ref.Key != "" && !slices.Contains(pkiFields, ref.Key) {
		return fmt.Errorf("unknown certificate field %q (want one of %s)", ref.Key, strings.Join(pkiFields, ", "))
	}
	return nil
}

// CanonicalDomains checks DNS names for an ACME order and returns them in
// lower case, sorted and without duplicates: the form in which two sets of
// names are compared. A name is labels of letters, digits and inner
// hyphens, each 1 to 63 characters, 253 at most in all; the first label
// may be "*" (a wildcard). A trailing dot is dropped.
func CanonicalDomains(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		d := strings.ToLower(strings.TrimSuffix(n, "."))
		if err := checkDomain(d); err != nil {
			return nil, fmt.Errorf("domain %q: %v", n, err)
		}
		out = append(out, d)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	switch {
	case len(out) == 0:
		return nil, errors.New("empty domains")
	case len(out) > MaxACMEDomains:
		return nil, fmt.Errorf("%d domains: an order holds at most %d", len(out), MaxACMEDomains)
	}
	return out, nil
}

// checkDomain checks one lower-case DNS name.
func checkDomain(d string) error {
	if d == "" {
		return errors.New("empty name")
	}
	if len(d) > 253 {
		return errors.New("longer than 253 characters")
	}
	labels := strings.Split(d, ".")
	for i, l := range labels {
		switch {
		case l == "*" && i == 0 && len(labels) > 1:
			continue
		case l == "" || len(l) > 63:
			return errors.New("empty or over-long label")
		case l[0] == '-' || l[len(l)-1] == '-':
			return errors.New("a label starts or ends with '-'")
		}
		for _, c := range l {
			if c >= 0x80 {
				return fmt.Errorf("character %q is not allowed (write an internationalized name in its xn-- form, as the CA takes it)", c)
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed", c)
			}
		}
	}
	return nil
}

// ACMESource is the source of an ACME certificate: the account's name, the
// domains (any order, any case) and the challenge type ("" for the
// server's default).
func ACMESource(account string, domains []string, challenge string) (Source, error) {
	if err := validateSegment(account); err != nil {
		return Source{}, fmt.Errorf("acme account %q: %v", account, err)
	}
	d, err := CanonicalDomains(domains)
	if err != nil {
		return Source{}, fmt.Errorf("acme %s: %w", account, err)
	}
	if challenge != "" && !slices.Contains(challenges, challenge) {
		return Source{}, fmt.Errorf("acme %s: unknown challenge %q (want %s)", account, challenge, strings.Join(challenges, ", "))
	}
	if err := wildcardChallenge(d, challenge); err != nil {
		return Source{}, fmt.Errorf("acme %s: %w", account, err)
	}
	return Source{Kind: ACME, Account: account, Params: encodeACME(d, challenge)}, nil
}

// wildcardChallenge refuses a wildcard name with a challenge that cannot
// validate it: CAs (Let's Encrypt, and RFC 8555 section 7.1.3's
// "wildcard" authorizations) prove control of a whole domain by DNS only,
// so *.example.com with http-01 or tls-alpn-01 would be an order that
// always fails. No challenge (the account's default) is left to the
// server.
func wildcardChallenge(domains []string, challenge string) error {
	if challenge == "" || challenge == ChallengeDNS01 {
		return nil
	}
	for _, d := range domains {
		if strings.HasPrefix(d, "*.") {
			return fmt.Errorf("domain %q: a wildcard can only be validated with challenge=%s, not %s", d, ChallengeDNS01, challenge)
		}
	}
	return nil
}

// encodeACME encodes canonical domains and a challenge as Source.Params.
func encodeACME(domains []string, challenge string) string {
	v := url.Values{}
	v.Set("domains", strings.Join(domains, ","))
	if challenge != "" {
		v.Set("challenge", challenge)
	}
	return v.Encode()
}

// ACMEOrder returns what an ACME source orders: its canonical domains and
// its challenge type ("" for the server's default).
func (s Source) ACMEOrder() (domains []string, challenge string) {
	v, _ := url.ParseQuery(s.Params)
	if d := v.Get("domains"); d != "" {
		domains = strings.Split(d, ",")
	}
	return domains, v.Get("challenge")
}

// Creates reports whether fetching the source creates something on the
// server (a lease, a certificate, an ACME order): what a discovery pass
// defers and a pre-flight only tests.
func (s Source) Creates() bool {
	return s.Kind == Dynamic || s.Kind == PKI || s.Kind == ACME
}
