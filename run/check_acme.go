package run

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// checkACME is the check of an ACME reference: may this identity use the
// account (POST /v1/policies/test, acme on acme/ACCOUNT), and what would
// a run do with the account's orders for those domains (a look-up of the
// orders, creating none): reuse a valid one, wait for a pending one, place
// one, or fail on a recent failed one.
func (ck *checker) checkACME(ctx context.Context, src fetch.Source) *checked {
	req := fetch.PolicyTestRequest{Permission: "acme", Path: "acme/" + src.Account}
	d, err := ck.client.TestPolicy(ctx, req)
	switch {
	case err != nil:
		return ck.outcome(err)
	case !d.Allowed:
		return &checked{status: CheckDenied, reason: fmt.Sprintf("no policy of this identity allows %s on %s", req.Permission, req.Path)}
	}
	by := ""
	if d.Policy != nil {
		by = fmt.Sprintf(" (policy %q)", *d.Policy)
	}
	domains, _ := src.ACMEOrder()
	st, err := ck.client.LookupACME(ctx, src.Account, domains)
	if err != nil {
		return ck.outcome(err)
	}
	if err := st.HeldOff(domains); err != nil {
		return &checked{status: CheckInvalid, reason: err.Error()}
	}
	var plan string
	switch {
	case st.Valid != nil:
		plan = fmt.Sprintf("order %s is valid (certificate %s until %s) and is reused", st.Valid.ID,
			st.Valid.Certificate.SerialNumber, st.Valid.Certificate.ExpiresAt.UTC().Format(time.RFC3339))
	case st.Pending != nil:
		plan = fmt.Sprintf("order %s is %s: a run waits for it", st.Pending.ID, st.Pending.Status)
	default:
		plan = fmt.Sprintf("no order for %s yet: a run places one (auto_renew)", strings.Join(domains, ", "))
	}
	return &checked{status: CheckOK, reason: fmt.Sprintf("may use %s on %s%s; %s; nothing was created", req.Permission, req.Path, by, plan)}
}
