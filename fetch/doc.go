// Package fetch is scaivault-run's ScaiVault client and secret model.
//
// Its job: talk to a ScaiVault server exactly as scaivault-api.md describes
// (authentication, retries, errors, every call and the change-event
// stream), model what it returns (Secret, Lease, Cert, immutable snapshots)
// and parse secret references. Keeping those values fresh (the watcher,
// the lease ledger) is package watch's job.
//
// What it must not do: start processes, render templates, write files, or
// read flags; log or return a secret value or a credential (token, client
// secret) in any error, log line or panic. Errors are redacted by wrapping
// (see APIError and errors.Is on the sentinels), never rebuilt from strings.
// Logs go only to the *slog.Logger handed in, at debug per request and per
// retry (callers log outcomes), naming methods, routes, paths, versions, lease ids and
// request ids; the exceptions: ACME is ACME (acme.go), which logs at info each
// order it places or waits for and each order a Resolve uses, because an
// order placed counts against a public CA's rate limits; and, once
// LogOutages is called, the server's health (health.go): a warning when
// trouble lasts, one line when it is over.
//
// Every read from the server and the token file is bounded (limits.go): an
// answer's body (32 MiB), one event of the stream (1 MiB), a List walk
// (10,000 pages, a million entries, no repeated cursor) and the token file
// (64 KiB). Past a limit the call fails with a permanent error that names
// the request or file and the limit, never the content.
//
// Concurrency: a Client is safe for concurrent use by many goroutines. It
// starts no goroutine of its own but the timer of its health view, armed
// only while trouble lasts under LogOutages (health.go): tokens are refreshed on demand by the
// request that finds them due (one exchange at a time), BatchRead runs its
// chunks on goroutines it joins before returning, and Events runs on the
// caller's goroutine and calls its handler there. A 429's Retry-After holds
// back every request of the Client and of the clients derived from it
// (WithRetry: one HTTP client, one credential, one gate) until it has
// passed. Every call takes a
// context; no call outlives it, and no wait between retries reaches past its
// deadline. Close ends event streams and makes later calls fail.
package fetch
