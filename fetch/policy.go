package fetch

import (
	"context"
	"fmt"
	"net/http"
)

// TestPolicy asks the server whether req.IdentityID ("" for the client's own
// identity) may use req.Permission on req.Path (POST /v1/policies/test). It
// creates nothing, so it is retried like a read; it is what a pre-flight
// asks instead of generating a lease or issuing a certificate. A denial is
// an answer (Allowed false), not an error; testing another identity
// without the root token is an error matching ErrAccessDenied, and an
// unknown permission one matching ErrValidation.
func (c *Client) TestPolicy(ctx context.Context, req PolicyTestRequest) (*PolicyDecision, error) {
	op := fmt.Sprintf("test permission %s on %q", req.Permission, req.Path)
	if req.IdentityID != "" {
		op += fmt.Sprintf(" for identity %q", req.IdentityID)
	}
	if req.Permission == "" {
		return nil, fmt.Errorf("%s: empty permission", op)
	}
	// Every resource a permission is matched against has the form of a
	// secret path (dynamic/ENGINE/ROLE, pki/ROLE too).
	if err := ValidatePath(req.Path); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cl := &call{method: http.MethodPost, route: "/v1/policies/test", pattern: "/v1/policies/test", body: req}
	var d PolicyDecision
	if err := c.getJSON(ctx, cl, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if !d.Allowed {
		d.Policy = nil // a policy named beside a denial allowed nothing
	}
	return &d, nil
}
