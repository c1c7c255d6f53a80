package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// leasePattern is the route template of leaseRoute, for OnResponse.
const leasePattern = "/v1/dynamic/leases/{lease_id}"

func leaseRoute(leaseID string) string { return "/v1/dynamic/leases/" + url.PathEscape(leaseID) }

// Generate creates a leased credential; ttl "" is the role's default.
// It creates something, so it is retried only where the server cannot have
// acted on the request (429, 503, nothing written): a retry after the
// server may have issued a lease could leak that lease.
//
// For the same reason a Generate that has started is not abandoned when
// ctx is cancelled: a lease whose answer is lost cannot be revoked. It runs
// to its answer, bounded by the request timeout, and returns the lease; the
// caller, seeing its cancelled ctx, revokes it.
func (c *Client) Generate(ctx context.Context, engine, role, ttl string) (*Lease, error) {
	op := fmt.Sprintf("generate credential %s/%s", engine, role)
	if err := errors.Join(checkName("engine", engine), checkName("role", role)); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.reqTimeout)
	defer cancel()
	cl := &call{
		method:  http.MethodPost,
		route:   "/v1/dynamic/" + url.PathEscape(engine) + "/creds/" + url.PathEscape(role),
		pattern: "/v1/dynamic/{engine}/creds/{role}",
		body:    GenerateRequest{TTL: ttl},
		creates: true,
	}
	var l Lease
	if err := c.getJSON(ctx, cl, &l); err != nil {
		// A field of the wrong type (a lease_duration of 1e300) fails the
		// decode but not the rest of it: encoding/json still fills the
		// other fields, so the lease's id is known and it can be revoked.
		var de *decodeError
		if errors.As(err, &de) && l.LeaseID != "" && checkName("lease id", l.LeaseID) == nil {
			return &Lease{LeaseID: l.LeaseID}, fmt.Errorf("%s: lease %q: %w", op, l.LeaseID, err)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkLease(&l, true); err != nil {
		// The server holds a lease this answer does not let us use; with
		// its id the caller can still revoke it, so it is returned with
		// the error (its times and data are not to be trusted).
		if l.LeaseID != "" {
			return &Lease{LeaseID: l.LeaseID}, fmt.Errorf("%s: lease %q: %w", op, l.LeaseID, err)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &l, nil
}

// Renew extends a lease; increment "" is the role's ttl. The answer has no
// data. Renewing counts from now, so a repeated renewal is harmless.
func (c *Client) Renew(ctx context.Context, leaseID, increment string) (*Lease, error) {
	op := fmt.Sprintf("renew lease %q", leaseID)
	if err := checkName("lease id", leaseID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl := &call{method: http.MethodPost, route: leaseRoute(leaseID) + "/renew", pattern: "/v1/dynamic/leases/{lease_id}/renew", body: RenewRequest{Increment: increment}}
	var l Lease
	if err := c.getJSON(ctx, cl, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkLease(&l, false); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &l, nil
}

// LookupLease returns a lease without data; an expired or revoked lease
// matches ErrNotFound. The ledger calls it for the leases a previous run
// left in the state file (watch.Ledger.Reclaim): lease_duration, the
// remaining seconds by the server's clock, decides whether one is reused.
// The contract's look-up is all crash recovery needs (the credential
// itself comes from the encrypted state file), so none was added.
func (c *Client) LookupLease(ctx context.Context, leaseID string) (*Lease, error) {
	op := fmt.Sprintf("look up lease %q", leaseID)
	if err := checkName("lease id", leaseID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var l Lease
	if err := c.getJSON(ctx, &call{method: http.MethodGet, route: leaseRoute(leaseID), pattern: leasePattern}, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkLease(&l, false); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &l, nil
}

// Revoke revokes a lease; revoking an already-revoked lease is no error,
// and neither is a 404 (the lease expired or is otherwise gone).
func (c *Client) Revoke(ctx context.Context, leaseID string) error {
	op := fmt.Sprintf("revoke lease %q", leaseID)
	if err := checkName("lease id", leaseID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := c.send(ctx, &call{method: http.MethodDelete, route: leaseRoute(leaseID), pattern: leasePattern})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
