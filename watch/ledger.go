package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// The Ledger is the one owner of every lease scaivault-run holds
// (DESIGN.md, "Leases and certificates have one owner"): every lease is
// entered when it is generated (at start-up, by a render while running, or
// by the watcher's replacement), and it is the only place that revokes.
// A lease leaves the table for one reason only: nothing uses it any more
// (it was superseded and its reload grace is over, or it was generated for
// an update that was not taken) and its revocation succeeded, or the
// process is exiting (Close). What is not released is in use: by the child,
// by a file on disk, or by an update in flight.
//
// Certificates are not in the table: the API contract has no revocation
// for them (a certificate ends at its expiry), so there is nothing for an
// owner to do when one is superseded. Their re-issue is scheduled by the
// Watcher, in its certificate items, as lease replacements are.
//
// Concurrency: the table is guarded by a mutex, so that Add and Release
// never block on the network (the supervisor and the watcher call them);
// revocations run on Run's goroutine only, on Close's after Run has
// returned, and at start-up, before Run, on Reclaim's and RevokeLeftover's
// (the leases of a previous run, ledger_state.go).

// Phase is where a lease is in its life.
type Phase int

const (
	// InUse: the child, a file on disk or an update in flight may use it.
	InUse Phase = iota
	// Superseded: replaced; kept until its grace ends (the child re-reads
	// its files after a reload signal), then revoked.
	Superseded
	// Unused: nothing ever used it (an update not taken, a render branch
	// not taken); revoked at once.
	Unused
)

func (p Phase) String() string {
	switch p {
	case InUse:
		return "in use"
	case Superseded:
		return "superseded"
	case Unused:
		return "unused"
	}
	return "unknown"
}

// Default bounds of the ledger's revocations.
const (
	// revokeAttemptTimeout bounds one revocation request while running.
	revokeAttemptTimeout = 10 * time.Second
	// maxRevokeRetry bounds the backoff between attempts to revoke one
	// released lease.
	maxRevokeRetry = 30 * time.Second
	// exitConcurrency is how many revocations run at once on exit.
	exitConcurrency = 16
	// runConcurrency is how many run at once while running.
	runConcurrency = 4
)

// revoker is what the ledger needs of a Client (tests fake it).
type revoker interface {
	Revoke(ctx context.Context, leaseID string) error
}

// Ledger is the table of leases; create it with NewLedger.
type Ledger struct {
	api  revoker
	look looker // Reclaim's look-ups (ledger_state.go)
	log  *slog.Logger
	rnd  func() float64
	wake chan struct{}

	mu       sync.Mutex
	table    map[string]*entry
	onChange func() // SetOnChange
}

// entry is one lease of the table.
type entry struct {
	lease    *fetch.Lease
	src      fetch.Source // what it was generated for
	added    time.Time    // when it was entered (its times are measured from then)
	phase    Phase
	due      time.Time // Superseded/Unused: the next revocation attempt
	fails    int       // failed revocations in a row
	revoking bool      // an attempt is in flight
}

// NewLedger returns an empty ledger that revokes through c (or any
// revoker). logger nil discards.
func NewLedger(c *fetch.Client, logger *slog.Logger) *Ledger {
	l := newLedger(nil, logger)
	if c != nil {
		l.api, l.look = c, c
	}
	return l
}

func newLedger(api revoker, logger *slog.Logger) *Ledger {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Ledger{api: api, log: logger, rnd: rand.Float64, wake: make(chan struct{}, 1), table: map[string]*entry{}}
}

// Add enters a lease generated for src as in use. Adding a lease the
// table holds already changes nothing. It never blocks.
func (l *Ledger) Add(src fetch.Source, lease *fetch.Lease) {
	if l == nil || lease == nil || lease.LeaseID == "" {
		return
	}
	l.mu.Lock()
	_, had := l.table[lease.LeaseID]
	if !had {
		l.table[lease.LeaseID] = &entry{lease: lease, src: src, added: time.Now()}
	}
	l.mu.Unlock()
	if !had {
		l.changed()
	}
}

// Renewed records a renewal of a lease the table holds: its times (as the
// answer gave them, received now) decide how long a failed revocation is
// retried and what Latest returns. It never blocks.
func (l *Ledger) Renewed(lease *fetch.Lease) {
	if l == nil {
		return
	}
	l.mu.Lock()
	e := l.table[lease.LeaseID]
	if e != nil && !e.revoking {
		e.lease, e.added = lease, time.Now()
	}
	l.mu.Unlock()
	if e != nil {
		l.changed()
	}
}

// Latest returns each of leases as the table knows it last (renewed
// times), or as given when the table does not hold it.
func (l *Ledger) Latest(leases []*fetch.Lease) []*fetch.Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*fetch.Lease, len(leases))
	for i, lease := range leases {
		out[i] = lease
		if e := l.table[lease.LeaseID]; e != nil {
			out[i] = e.lease
		}
	}
	return out
}

// AddSnapshot enters every lease of snap.
func (l *Ledger) AddSnapshot(snap *fetch.Snapshot) {
	if snap == nil {
		return
	}
	for src, lease := range snap.Leases {
		l.Add(src, lease)
	}
}

// Release marks leases as no longer used once after has passed: Unused
// ones (never seen by the child; after is ignored, they go now) or
// Superseded ones (the child ran on them). Run revokes them when due and
// retries a failed revocation with backoff. Leases the table does not
// hold are entered first. It never blocks.
func (l *Ledger) Release(leases []*fetch.Lease, phase Phase, after time.Duration) {
	if l == nil || len(leases) == 0 {
		return
	}
	if phase != Superseded {
		phase, after = Unused, 0
	}
	now := time.Now()
	l.mu.Lock()
	for _, lease := range leases {
		e := l.table[lease.LeaseID]
		if e == nil {
			e = &entry{lease: lease, added: now}
			l.table[lease.LeaseID] = e
		}
		if e.phase == InUse || now.Add(after).Before(e.due) {
			e.phase, e.due = phase, now.Add(after)
		}
	}
	l.mu.Unlock()
	l.poke()
}

func (l *Ledger) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Phase reports the phase of a lease and whether the table holds it (it
// does not once revoked).
func (l *Ledger) Phase(id string) (Phase, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.table[id]
	if e == nil {
		return 0, false
	}
	return e.phase, true
}

// Len is the number of leases the table holds.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}

// Run revokes released leases as they fall due until ctx ends. A failed
// revocation is retried with backoff (at most maxRevokeRetry apart) while
// the lease lives; one that has run out by then is dropped, as is one the
// server refuses for good (it runs out on its ttl).
func (l *Ledger) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := l.dueNow(time.Now())
		if len(due) > 0 {
			l.revokeRunning(ctx, due)
			if ctx.Err() != nil {
				return // Close revokes what is left
			}
			continue
		}
		if next.IsZero() {
			timer.Reset(time.Hour)
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-timer.C:
		}
	}
}

// dueNow marks the released entries due at now as being revoked and
// returns them, with the time the next one falls due (zero: none).
func (l *Ledger) dueNow(now time.Time) (due []*entry, next time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.table {
		if e.phase == InUse || e.revoking {
			continue
		}
		if !now.Before(e.due) {
			e.revoking = true
			due = append(due, e)
		} else if next.IsZero() || e.due.Before(next) {
			next = e.due
		}
	}
	return due, next
}

// revokeRunning revokes due entries, a few at a time, and settles each.
func (l *Ledger) revokeRunning(ctx context.Context, due []*entry) {
	sem := make(chan struct{}, runConcurrency)
	var wg sync.WaitGroup
	for _, e := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, revokeAttemptTimeout)
			err := l.api.Revoke(rctx, e.lease.LeaseID)
			cancel()
			l.settle(ctx, e, err)
		})
	}
	wg.Wait()
}

// settle records the outcome of a revocation attempt made while running.
func (l *Ledger) settle(ctx context.Context, e *entry, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.revoking = false
	id := e.lease.LeaseID
	now := time.Now()
	switch {
	case err == nil || errors.Is(err, fetch.ErrNotFound):
		delete(l.table, id)
		if e.phase == Superseded {
			l.log.Info("superseded lease revoked", "lease", id)
		} else {
			l.log.Debug("unused lease revoked", "lease", id)
		}
	case ctx.Err() != nil:
		// Stopping: Close revokes what is left.
	case !fetch.IsTemporary(err):
		delete(l.table, id)
		l.log.Warn("revoking a lease failed; it runs out on its ttl", "lease", id, "phase", e.phase.String(), "error", err)
	case LeaseRemaining(e.lease, e.added)-now.Sub(e.added) <= 0:
		delete(l.table, id)
		l.log.Info("lease ran out before it could be revoked", "lease", id, "phase", e.phase.String())
	default:
		e.fails++
		rem := LeaseRemaining(e.lease, e.added) - now.Sub(e.added)
		wait := max(serverWait(err), RetryBackoff(e.fails, min(maxRevokeRetry, RetryLimit(rem, maxRevokeRetry)), l.rnd()))
		e.due = now.Add(wait)
		// Debug: a server that does not answer is the client's health
		// view's to warn about (fetch/health.go), once, not per lease
		// and attempt.
		l.log.Debug("revoking a lease failed; retrying", "lease", id, "phase", e.phase.String(),
			"error", err, "retry_in", wait.Round(time.Millisecond), "attempt", e.fails)
	}
}

// Close revokes every lease the table still holds, in use or not, all at
// once (a bounded number in flight), until ctx ends; call it on exit,
// after Run has returned. With revoke false it revokes nothing: the
// leases run out on their ttl (--no-revoke). It returns the failures
// joined, each naming its lease, and how many leases were left.
func (l *Ledger) Close(ctx context.Context, revoke bool) (left int, err error) {
	l.mu.Lock()
	entries := slices.Collect(maps.Values(l.table))
	l.table = map[string]*entry{}
	l.mu.Unlock()
	if !revoke || len(entries) == 0 {
		return len(entries), nil
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, exitConcurrency)
	)
	for _, e := range entries {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs = append(errs, &RevokeError{LeaseID: e.lease.LeaseID, Err: fmt.Errorf("revoke lease %q: %w", e.lease.LeaseID, ctx.Err())})
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			if err := l.api.Revoke(ctx, e.lease.LeaseID); err != nil && !errors.Is(err, fetch.ErrNotFound) {
				mu.Lock()
				errs = append(errs, &RevokeError{LeaseID: e.lease.LeaseID, Err: err})
				mu.Unlock()
				return
			}
			l.log.Debug("lease revoked on exit", "lease", e.lease.LeaseID, "phase", e.phase.String())
		})
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int {
		return strings.Compare(a.(*RevokeError).LeaseID, b.(*RevokeError).LeaseID)
	})
	return len(errs), errors.Join(errs...)
}

// RevokeError is a lease that could not be revoked on exit; its message
// is its cause's, which names the lease.
type RevokeError struct {
	LeaseID string
	Err     error
}

func (e *RevokeError) Error() string { return e.Err.Error() }
func (e *RevokeError) Unwrap() error { return e.Err }
