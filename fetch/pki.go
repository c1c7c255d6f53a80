package fetch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Issue issues a certificate and its private key from a PKI role. It
// creates something, so it is retried only where the server cannot have
// acted on the request (429, 503, nothing written).
func (c *Client) Issue(ctx context.Context, role string, req IssueRequest) (*Cert, error) {
	op := fmt.Sprintf("issue certificate %q from role %q", req.CommonName, role)
	if err := checkName("role", role); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if req.CommonName == "" {
		return nil, fmt.Errorf("%s: empty common name", op)
	}
	cl := &call{method: http.MethodPost, route: "/v1/pki/issue/" + url.PathEscape(role), pattern: "/v1/pki/issue/{role}", body: req, creates: true}
	var cert Cert
	if err := c.getJSON(ctx, cl, &cert); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkCert(&cert); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &cert, nil
}

// CAPEM returns a CA certificate; caID "default" names the default CA.
func (c *Client) CAPEM(ctx context.Context, caID string) (string, error) {
	op := fmt.Sprintf("read CA certificate %q", caID)
	if err := checkName("CA id", caID); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	cl := &call{
		method:  http.MethodGet,
		route:   "/v1/pki/cas/" + url.PathEscape(caID) + "/pem",
		pattern: "/v1/pki/cas/{ca_id}/pem",
		header:  http.Header{"Accept": {"application/x-pem-file, text/plain"}},
	}
	resp, err := c.send(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return string(resp.body), nil
}
