package fetch

import "time"

// The wire types of scaivault-api.md "ACME", shared with the dev server.

// ACMEAccount is one ACME account of GET /v1/acme/accounts.
type ACMEAccount struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	Environment string `json:"environment"`
	Email       string `json:"email"`
}

// ACMEAccountList is the answer of GET /v1/acme/accounts.
type ACMEAccountList struct {
	Data []ACMEAccount `json:"data"`
}

// ACMEOrderRequest is the body of POST /v1/acme/orders.
type ACMEOrderRequest struct {
	AccountID     string   `json:"account_id"`
	Domains       []string `json:"domains"`
	ChallengeType string   `json:"challenge_type,omitempty"` // "": the server's default
	AutoRenew     bool     `json:"auto_renew"`
}

// Statuses of an ACME order: pending → processing → valid, or invalid.
const (
	OrderPending    = "pending"
	OrderProcessing = "processing"
	OrderValid      = "valid"
	OrderInvalid    = "invalid"
)

// ACMEOrder is an order. Certificate is set once it is valid (and replaced
// by each renewal); Error once it is invalid. The list of orders leaves out
// the certificate.
type ACMEOrder struct {
	ID            string     `json:"id"`
	AccountID     string     `json:"account_id"`
	Domains       []string   `json:"domains"`
	Status        string     `json:"status"`
	ChallengeType string     `json:"challenge_type"`
	AutoRenew     bool       `json:"auto_renew"`
	Error         *ErrorRef  `json:"error"`
	CreatedAt     time.Time  `json:"created_at"`
	RenewedAt     *time.Time `json:"renewed_at"`
	Certificate   *Cert      `json:"certificate"`
}

// ACMEOrderList is the answer of GET /v1/acme/orders.
type ACMEOrderList struct {
	Data []ACMEOrder `json:"data"`
}
