package template

import (
	"fmt"
	"strings"

	"github.com/scailabs/scaivault-run/fetch"
)

// acmeCert implements {{ acmeCert ACCOUNT "domains=a.example.com,b.example.com" ["challenge=dns-01"] }}:
// the certificate of the account's order for those domains (any order of
// the names), as pkiCert gives one: .Cert .Key .CA .CAChain .Serial
// .IssuedAt .ExpiresAt. It is the source of
// scaivault+acme://ACCOUNT?domains=... with the same names and challenge,
// so that one order serves templates and env references alike.
func (st *renderState) acmeCert(account string, opts ...string) (*certValue, error) {
	st.lastData = nil
	o, err := parseFuncOptions(opts, "domains", "challenge")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", account, err)
	}
	d, ok := o["domains"]
	if !ok {
		return nil, fmt.Errorf("%s: missing option domains=a.example.com,b.example.com", account)
	}
	src, err := fetch.ACMESource(account, strings.Split(d, ","), o["challenge"])
	if err != nil {
		return nil, err
	}
	return st.certFor(src), nil
}
