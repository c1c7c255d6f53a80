// Package devserver is the ScaiVault-compatible dev server: the whole of
// scaivault-api.md served from memory, events stream included. It backs
// `scaivault-run dev-server` and `--dev`, and it is the one fake that every
// test of the project runs in process through httptest. It is a faithful
// fake, not a toy: versions and max_versions, If-None-Match, rotation grace
// periods, pagination, leases that really expire, certificates that verify
// against the CA chain, tokens that expire, policies that deny, and the error
// bodies of the contract.
//
// # What it must not do
//
// It never writes a secret value, a password, a token or a private key into
// an error, a log line or a panic; logs carry method, path, status and
// request id only, never bodies. It never serves a stack trace (a panicking
// handler answers 500 internal_error). It writes state to disk only when
// Options.DataFile is set, and then only to that file (0600, atomically).
//
// # Concurrency
//
// A Server is safe for concurrent use. One mutex guards the store (secrets,
// leases, tokens); it is never held during PostgreSQL calls, sleeps or
// network writes. The event hub, the fault knobs and the persistence writer
// have small locks of their own, always taken after (never before) the store
// mutex. New starts one background goroutine, the lease sweeper, and Close
// stops it. Close also ends every open event stream, so close the Server
// before the httptest.Server that serves it (httptest waits for open
// requests).
//
// # Dev endpoints (root token only; never counted, delayed or faulted)
//
//	GET  /v1/dev/faults            the current fault knobs
//	POST /v1/dev/faults            replace them: {"rate":0.2,"latency":"50ms","status":503,
//	                               "retry_after":1,"next":3,"path_prefix":"/v1/secrets/batch-read"}
//	GET  /v1/dev/stats             {"total":N,"routes":{"GET /v1/secrets/{path}":n,...}}
//	POST /v1/dev/leases/{id}/expire  end a lease now, or {"in":"2s"} from now (no event is sent)
//	POST /v1/dev/tokens/expire     expire every client token now, or {"client_id":"app"}
//	POST /v1/dev/acme/orders/{id}/renew  renew a valid ACME order now (a new certificate
//	                               and an acme.renewed event, as at two thirds of its life)
//
// # Choices where the contract is silent
//
//   - Cache-Control: no-store is set on every answer, not only on those
//     holding secret data or tokens.
//   - Request bodies are limited to MaxBodyBytes (1 MiB); a larger body is a
//     400 validation_error. Unknown JSON fields are a 400 naming the field, so
//     that a client's typo (max_version) fails loudly instead of being
//     ignored. An empty body is an empty object where every field is optional.
//   - created_at is when the secret was first written; updated_at is when the
//     returned version was written (a metadata patch makes no version and does
//     not move it).
//   - PUT: secret_type defaults to the current version's type, else "json";
//     metadata, when given, replaces the metadata (PATCH merges); max_versions
//     0 keeps the current setting (default 10), 1..1000 otherwise. cas
//     compares with the current version; a soft-deleted secret has none, so
//     cas 0 ("create only") may recreate it.
//   - DELETE of a missing or soft-deleted secret is 404; a permanent delete
//     also removes a soft-deleted secret.
//   - Rotate without new_value generates one: every string value of data gets
//     a fresh random 32-character value (binary secrets 32 random bytes,
//     base64), other values are kept. Every version before the rotation stays
//     readable until grace_period_ends_at (now without grace_period), then
//     answers 404; versions in their grace period survive max_versions
//     pruning. A secret with a policy gets next_rotation_at = now + interval.
//     rotation.previous_version and grace_period_ends_at describe the version
//     that a rotation created; a later write makes a version without them.
//   - rotation/due: within_hours defaults to 168; overdue secrets are included;
//     entries are sorted by next_rotation_at, then path; secrets the caller may
//     not list are left out, as in list.
//   - Request durations (ttl, increment, grace_period) are strings in the
//     forms of fetch.ParseDuration, "90" being 90 seconds; a JSON number
//     (90) is a 400 that names the forms (see requestDuration).
//   - Secret objects carry "metadata":{} when none was set, in every answer.
//   - POST /v1/policies/test: "policy" is the first policy of the identity
//     (in its seed order) with a matching rule, "root" for the root token.
//     path must be what the permission is checked on (dynamic/ENGINE/ROLE,
//     pki/ROLE, acme/ACCOUNT_NAME, else a secret path), or it is a 400.
//     identity_id is a client id or "root"; naming the caller's own is
//     testing itself. Another identity without the root token is a 403
//     (details: permission "root", identity_id) before any look-up; an
//     unknown identity_id from the root token is a 404 not_found, so that a
//     typo is not taken for a denial. context is accepted and changes
//     nothing (these policies have no conditions).
//   - Leases: a role's ttl defaults to 1h, max_ttl to 24h (or ttl when
//     longer); renewable defaults to true. A requested ttl of 0 is a 400.
//     Revoking an unknown or expired lease is a 204 without an event; renew,
//     look-up and revoke need the dynamic permission on the lease's role.
//     The postgres engine also runs renew_statements (default ALTER ROLE ...
//     VALID UNTIL) so that a renewed credential keeps logging in.
//   - Events: ids are decimal sequence numbers. A since older than the kept
//     buffer (EventBufferSize events) replays from the oldest kept event; a
//     since beyond the newest starts from now. A subscriber sees secret events
//     for paths it may read or list, and lease.revoked for roles it holds the
//     dynamic permission on. The stream ends when the caller's token expires,
//     when the subscriber falls too far behind (it resumes with since=), and
//     at Close.
//   - PKI: every role issues from the one intermediate CA ("default"), whose
//     root is the last element of ca_chain. CA certificates need a valid token
//     but no permission. The CA survives restarts only with a DataFile.
//   - ACME (acme.go): accounts come from the seed, their ids are "acct_"
//     and a hash of the name (the same across restarts). GET
//     /v1/acme/accounts lists the accounts the caller holds the acme
//     permission on (acme/NAME); every order call needs it on the order's
//     account (403 otherwise; an unknown account_id is a 404). An order is
//     pending, processing from half of Options.ACMEDelay (default 1s) on,
//     and valid after it, or invalid when one of its names (a wildcard
//     counting as its base name) is among the account's fail_domains,
//     with error {"code": "unauthorized", "message": "<challenge> challenge
//     for <name> failed ..."}. challenge_type defaults to http-01; a
//     wildcard needs dns-01 (else a 400). Names are kept lower-cased,
//     without duplicates, in the order given. Certificates come from the
//     dev ACME CA (one self-signed CA; ca_chain is that CA, served at GET
//     /v1/pki/cas/acme/pem), name the first domain as common name and all
//     of them as DNS SANs, last the account's cert_ttl (default 2160h),
//     and have a P-256 key (PKCS#8). An order with auto_renew gets a new
//     certificate at two thirds of its life, renewed_at and an
//     acme.renewed event (sent whatever the prefix, to subscribers with the
//     acme permission on the account). The list is in creation order,
//     "certificate": null. The sweeper moves orders on time and every
//     ACME handler moves them first. Orders and the ACME CA are kept in the
//     DataFile; orders of an account the seed no longer has are dropped.
//   - Tokens are stored as SHA-256 hashes; an expired token answers
//     token_expired for 24 hours, then invalid_token.
//   - Persistence (Options.DataFile) keeps secrets with all versions, leases,
//     token hashes, the event sequence, the CAs and the ACME orders. When the file exists its
//     secrets replace the seed's; clients, policies, engines and PKI roles
//     always come from the seed. Close revokes the postgres leases it holds
//     only when there is no DataFile (with one, they survive the restart).
//   - Request counts (Requests, /v1/dev/stats) leave out /v1/dev/ requests;
//     faulted requests count. Faults (and latency) never touch /v1/dev/. An
//     injected 401 is invalid_token, 429 carries details.retry_after.
//   - Every request is logged at info level ("request": method, escaped
//     path without query, status, request_id, duration, and over mTLS the
//     client certificate's subject as client_cert); panics at error.
//   - A method the route does not serve answers 405 validation_error with an
//     Allow header; an unknown route 404 not_found.
package devserver
