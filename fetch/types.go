package fetch

import (
	"encoding/json"
	"time"
)

// This file holds the wire types of scaivault-api.md. The client and the dev
// server both use them, so that one JSON shape serves both ends.

// Secret is a secret object as read from ScaiVault. Data values are kept as
// raw JSON so that a string is injected as is and any other JSON value as its
// JSON encoding (DESIGN.md, "Where values come from").
//
// Metadata is always present on the wire, {} when none was set; the client
// also takes an answer that leaves it out or sends null, and hands every
// secret on with a non-nil Metadata, so that "no metadata" has one form.
type Secret struct {
	Path       string                     `json:"path"`
	Version    int                        `json:"version"`
	SecretType string                     `json:"secret_type"`
	Data       map[string]json.RawMessage `json:"data,omitzero"` // {} when empty; left out (nil) only where the answer has no data
	Metadata   map[string]any             `json:"metadata"`
	CreatedAt  time.Time                  `json:"created_at"`
	UpdatedAt  time.Time                  `json:"updated_at"`
	Rotation   *Rotation                  `json:"rotation"`
}

// Rotation is a secret's rotation state; nil when no policy or rotation applies.
type Rotation struct {
	PolicyID          string     `json:"policy_id,omitempty"`
	NextRotationAt    *time.Time `json:"next_rotation_at,omitempty"`
	PreviousVersion   int        `json:"previous_version,omitempty"`
	GracePeriodEndsAt *time.Time `json:"grace_period_ends_at,omitempty"`
}

// MarshalJSON writes all four fields, null where unset, as the contract's
// secret object shows them: a reader need not tell an absent key from a
// null one.
func (r Rotation) MarshalJSON() ([]byte, error) {
	var w struct {
		PolicyID          *string    `json:"policy_id"`
		NextRotationAt    *time.Time `json:"next_rotation_at"`
		PreviousVersion   *int       `json:"previous_version"`
		GracePeriodEndsAt *time.Time `json:"grace_period_ends_at"`
	}
	if r.PolicyID != "" {
		w.PolicyID = &r.PolicyID
	}
	if r.PreviousVersion != 0 {
		w.PreviousVersion = &r.PreviousVersion
	}
	w.NextRotationAt, w.GracePeriodEndsAt = r.NextRotationAt, r.GracePeriodEndsAt
	return json.Marshal(w)
}

// WriteRequest is the body of PUT /v1/secrets/{path}.
type WriteRequest struct {
	Data        map[string]any `json:"data"`
	SecretType  string         `json:"secret_type,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	MaxVersions int            `json:"max_versions,omitempty"`
	// CAS, when non-nil, writes only if the current version equals *CAS
	// (0: create only).
	CAS *int `json:"cas,omitempty"`
}

// WriteResult is the answer to a write.
type WriteResult struct {
	Path      string    `json:"path"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

// MetadataPatch is the body of PATCH /v1/secrets/{path}/metadata (RFC 7396).
type MetadataPatch struct {
	Metadata map[string]any `json:"metadata"`
}

// RotateRequest is the body of POST /v1/secrets/{path}/rotate.
type RotateRequest struct {
	Reason      string         `json:"reason,omitempty"`
	NewValue    map[string]any `json:"new_value,omitempty"`
	GracePeriod string         `json:"grace_period,omitempty"`
}

// ListEntry is one entry of GET /v1/secrets.
type ListEntry struct {
	Path       string    `json:"path"`
	Version    int       `json:"version"`
	SecretType string    `json:"secret_type"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ListPage is one page of GET /v1/secrets.
type ListPage struct {
	Data    []ListEntry `json:"data"`
	HasMore bool        `json:"has_more"`
	Cursor  *string     `json:"cursor"`
}

// BatchReadRequest is the body of POST /v1/secrets/batch-read.
type BatchReadRequest struct {
	Paths []string `json:"paths"`
}

// BatchReadResult is the answer to a batch read: per-path secrets and errors.
type BatchReadResult struct {
	Secrets map[string]*Secret  `json:"secrets"`
	Errors  map[string]ErrorRef `json:"errors"`
}

// ErrorRef is a per-path error inside a batch read.
type ErrorRef struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// GenerateRequest is the body of POST /v1/dynamic/{engine}/creds/{role}.
type GenerateRequest struct {
	TTL string `json:"ttl,omitempty"`
}

// RenewRequest is the body of POST /v1/dynamic/leases/{id}/renew.
type RenewRequest struct {
	Increment string `json:"increment,omitempty"`
}

// Lease is a dynamic credential's lease. Data is empty on renew and look-up.
type Lease struct {
	LeaseID       string                     `json:"lease_id"`
	Engine        string                     `json:"engine"`
	Role          string                     `json:"role"`
	LeaseDuration int64                      `json:"lease_duration"`
	Renewable     bool                       `json:"renewable"`
	IssuedAt      time.Time                  `json:"issued_at"`
	ExpiresAt     time.Time                  `json:"expires_at"`
	MaxExpiresAt  time.Time                  `json:"max_expires_at"`
	Data          map[string]json.RawMessage `json:"data,omitempty"`
	// Life is, in seconds, the lease_duration the lease was issued (or
	// last renewed) with, when LeaseDuration is less: what remained at a
	// look-up (a lease of a previous run, reused). 0: LeaseDuration is
	// its life. Not on the wire.
	Life int64 `json:"-"`
}

// LifeSeconds is the lease's life in seconds: the lease_duration it was
// issued (or last renewed) with, however much of it a look-up found left.
func (l *Lease) LifeSeconds() int64 {
	if l.Life > 0 {
		return l.Life
	}
	return l.LeaseDuration
}

// IssueRequest is the body of POST /v1/pki/issue/{role}.
type IssueRequest struct {
	CommonName string   `json:"common_name"`
	AltNames   []string `json:"alt_names,omitempty"`
	IPSANs     []string `json:"ip_sans,omitempty"`
	TTL        string   `json:"ttl,omitempty"`
}

// Cert is an issued certificate.
type Cert struct {
	SerialNumber   string    `json:"serial_number"`
	CertificatePEM string    `json:"certificate_pem"`
	PrivateKeyPEM  string    `json:"private_key_pem"`
	CAChain        []string  `json:"ca_chain"`
	CAID           string    `json:"ca_id"`
	IssuedAt       time.Time `json:"issued_at"`
	ExpiresAt      time.Time `json:"expires_at"`
	// OrderID is, for an ACME certificate, the order it belongs to: what
	// the watcher reads again for a renewal. Not on the wire.
	OrderID string `json:"-"`
}

// Whoami is the answer of GET /v1/auth/whoami.
type Whoami struct {
	IdentityID   string     `json:"identity_id"`
	IdentityType string     `json:"identity_type"`
	ExpiresAt    *time.Time `json:"expires_at"`
}

// PolicyTestRequest is the body of POST /v1/policies/test: may IdentityID
// ("" for the caller's own identity; another identity needs the root token)
// use Permission on Path? Path is what the permission is matched against: a
// secret path for read, list, write, delete and rotate, dynamic/ENGINE/ROLE
// for dynamic, pki/ROLE for pki, acme/ACCOUNT_NAME for acme. Context carries
// request attributes a conditional policy may look at ("source_ip").
type PolicyTestRequest struct {
	Path       string         `json:"path"`
	Permission string         `json:"permission"`
	IdentityID string         `json:"identity_id,omitempty"`
	Context    map[string]any `json:"context,omitempty"`
}

// PolicyDecision is the answer of POST /v1/policies/test. Policy names the
// policy that allowed it, nil when denied. It says nothing about whether
// the path, engine or role exists.
type PolicyDecision struct {
	Allowed bool    `json:"allowed"`
	Policy  *string `json:"policy"`
}

// TokenResponse is the token endpoint's success answer (RFC 6749 5.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// TokenError is the token endpoint's error answer (RFC 6749 5.2).
type TokenError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// DueEntry is one entry of GET /v1/rotation/due.
type DueEntry struct {
	SecretPath     string    `json:"secret_path"`
	PolicyID       string    `json:"policy_id"`
	NextRotationAt time.Time `json:"next_rotation_at"`
}

// DueList is the answer of GET /v1/rotation/due.
type DueList struct {
	Data []DueEntry `json:"data"`
}

// ErrorBody is the body of every non-2xx answer but the token endpoint's.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details"`
	RequestID string         `json:"request_id"`
}

// Event types of the change-event stream.
const (
	EventSecretUpdated = "secret.updated"
	EventSecretRotated = "secret.rotated"
	EventSecretDeleted = "secret.deleted"
	EventLeaseRevoked  = "lease.revoked"
	EventACMERenewed   = "acme.renewed"
)

// Event is one server-sent event of GET /v1/events. ID is the resume cursor.
type Event struct {
	Type string    `json:"-"`
	ID   string    `json:"-"`
	Data EventData `json:"-"`
}

// EventData is the JSON data of an event. Secret events fill Path and
// Version (and Permanent for deletes); lease.revoked fills LeaseID, Engine
// and Role; acme.renewed OrderID and AccountID.
type EventData struct {
	Path      string    `json:"path,omitempty"`
	Version   int       `json:"version,omitempty"`
	Permanent *bool     `json:"permanent,omitempty"`
	LeaseID   string    `json:"lease_id,omitempty"`
	Engine    string    `json:"engine,omitempty"`
	Role      string    `json:"role,omitempty"`
	OrderID   string    `json:"order_id,omitempty"`
	AccountID string    `json:"account_id,omitempty"`
	At        time.Time `json:"at"`
}

// Error codes of scaivault-api.md.
const (
	CodeValidation   = "validation_error"
	CodeAuthFailed   = "authentication_failed"
	CodeInvalidToken = "invalid_token"
	CodeTokenExpired = "token_expired"
	CodeAccessDenied = "access_denied"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeRateLimited  = "rate_limited"
	CodeInternal     = "internal_error"
	CodeUnavailable  = "service_unavailable"
)
