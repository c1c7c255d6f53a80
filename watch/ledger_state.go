package watch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// The ledger and the state file (DESIGN.md, "State across restarts"): what
// the table holds is written to the state file after each change (Held,
// SetOnChange), and the leases a previous run left there are looked up at
// start-up: one the server still knows, with at least a third of its life
// left, is reused; any other is revoked (Reclaim, RevokeLeftover). A
// crash-looping app holds one credential, not one per crash.

// looker is what Reclaim needs of a Client (tests fake it).
type looker interface {
	LookupLease(ctx context.Context, leaseID string) (*fetch.Lease, error)
}

// Held is one lease of the table, as the state file records it.
type Held struct {
	Source fetch.Source
	// Lease is as the table knows it last: renewed times, the data it
	// was issued with.
	Lease    *fetch.Lease
	Phase    Phase
	Received time.Time // when Lease's times were read, by our clock
}

// ExpiresAt is when the lease ends, by our clock.
func (h Held) ExpiresAt() time.Time { return h.Received.Add(LeaseRemaining(h.Lease, h.Received)) }

// Held returns every lease of the table, sorted by id. It never blocks.
func (l *Ledger) Held() []Held {
	l.mu.Lock()
	out := make([]Held, 0, len(l.table))
	for _, e := range l.table {
		out = append(out, Held{Source: e.src, Lease: e.lease, Phase: e.phase, Received: e.added})
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Held) int { return strings.Compare(a.Lease.LeaseID, b.Lease.LeaseID) })
	return out
}

// SetOnChange has f called after a lease is entered or renewed (from the
// goroutine that did it, without the table's lock); f must not block.
// Call it before the ledger is used.
func (l *Ledger) SetOnChange(f func()) { l.onChange = f }

func (l *Ledger) changed() {
	if l.onChange != nil {
		l.onChange()
	}
}

// Reusable reports whether a lease of a previous run, whose life (the
// lease_duration it had when it was last received, issued or renewed) was
// life, may be reused with remaining left: at least a third of its life.
// A zero life asks only that it has not ended.
func Reusable(remaining, life time.Duration) bool {
	return remaining > 0 && 3*remaining >= life
}

// Reclaim settles a lease a previous run held for src. prev is the lease
// as that run had it (its data, and the times it was issued with); life
// is its life (see Reusable; 0 keeps any lease the server still knows).
// It looks the lease up:
//
//   - the server knows it and enough of its life is left: it is entered in
//     the table, in use (a lease held already gets the new times), and
//     returned: prev with the server's current times (lease_duration is
//     what remains, Life the whole: life, or prev's);
//   - the server knows it, but too little is left: it is revoked, and nil
//     returned;
//   - the server no longer knows it (expired or revoked): nil.
//
// Any other failure (the server unreachable, access denied) is returned,
// and nothing is entered or revoked: the caller may try again.
func (l *Ledger) Reclaim(ctx context.Context, src fetch.Source, prev *fetch.Lease, life time.Duration) (*fetch.Lease, error) {
	id := prev.LeaseID
	got, err := l.look.LookupLease(ctx, id)
	switch {
	case errors.Is(err, fetch.ErrNotFound):
		l.log.Info("lease of the previous run is gone", "lease", id, "source", src.String())
		return nil, nil
	case err != nil:
		return nil, err
	case got.LeaseID != id || (got.Engine != "" && got.Engine != src.Engine) || (got.Role != "" && got.Role != src.Role):
		// Not expected: the server answered for another lease. Neither
		// used nor revoked.
		l.log.Warn("lease of the previous run not reused: the server describes another lease", "lease", id, "source", src.String())
		return nil, nil
	}
	remaining := time.Duration(got.LeaseDuration) * time.Second
	if !Reusable(remaining, life) {
		l.log.Info("lease of the previous run has too little life left; revoking it", "lease", id, "source", src.String(),
			"left", remaining, "life", life)
		if err := l.api.Revoke(ctx, id); err != nil {
			l.log.Warn("revoking a lease of the previous run failed; it runs out on its ttl", "lease", id, "error", err)
		}
		return nil, nil
	}
	reused := *prev
	reused.LeaseDuration, reused.Renewable, reused.ExpiresAt = got.LeaseDuration, got.Renewable, got.ExpiresAt
	// Its life stays what it was issued (or last renewed) with: the
	// look-up's lease_duration is only what is left of it, and the next
	// run's third must be of the whole.
	reused.Life = 0
	if whole := lifeSeconds(prev, life); whole > got.LeaseDuration {
		reused.Life = whole
	}
	if !got.MaxExpiresAt.IsZero() {
		reused.MaxExpiresAt = got.MaxExpiresAt
	}
	if _, held := l.Phase(id); held {
		l.Renewed(&reused) // a fallback start holds it: the times are new
	} else {
		l.Add(src, &reused)
	}
	l.log.Info("lease of the previous run reused", "lease", id, "source", src.String(), "left", remaining)
	return &reused, nil
}

// RevokeLeftover revokes leases of a previous run that nothing of this
// one uses (superseded then, or for references no longer asked for),
// concurrently, until ctx ends. A lease the server no longer knows is no
// failure. It returns the failures joined, each a *RevokeError.
func (l *Ledger) RevokeLeftover(ctx context.Context, ids []string) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, exitConcurrency)
	)
	for _, id := range slices.Sorted(maps.Keys(setOf(ids))) {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs = append(errs, &RevokeError{LeaseID: id, Err: fmt.Errorf("revoke lease %q: %w", id, ctx.Err())})
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			if err := l.api.Revoke(ctx, id); err != nil && !errors.Is(err, fetch.ErrNotFound) {
				mu.Lock()
				errs = append(errs, &RevokeError{LeaseID: id, Err: err})
				mu.Unlock()
				return
			}
			l.log.Info("lease of the previous run revoked: nothing uses it", "lease", id)
		})
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int {
		return strings.Compare(a.(*RevokeError).LeaseID, b.(*RevokeError).LeaseID)
	})
	return errors.Join(errs...)
}

// lifeSeconds is the life of a previous run's lease: life when given,
// else what the lease says.
func lifeSeconds(prev *fetch.Lease, life time.Duration) int64 {
	if life > 0 {
		return int64(life / time.Second)
	}
	return prev.LifeSeconds()
}

func setOf(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
