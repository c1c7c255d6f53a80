// Package watch keeps what a child runs on fresh, and owns every lease and
// certificate scaivault-run holds while it runs.
//
// Its job: poll static secrets and lists (batch reads), follow the server's
// change events, renew and replace leases, re-issue certificates, read
// ACME orders again for the certificates ScaiVault renewed, and send
// one Update per round of changes to the caller (package run), who renders
// and acts on it. When to do each is a pure function of the item, the time
// and a random number (schedule.go), table-tested.
//
// What it must not do: render templates, write files, start or signal
// processes, or log a secret value (logs name paths, versions, lease ids
// and serials). Values only pass through in snapshots.
//
// Concurrency: a Watcher owns its state on the goroutine that calls Run,
// plus one events goroutine that Run starts and joins. It talks to its user
// through Updates and the Commit/Reject handshake only: each Update waits
// for its answer before the watcher goes on.
package watch
