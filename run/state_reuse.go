package run

import (
	"context"
	"errors"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
	"github.com/scailabs/scaivault-run/watch"
)

// Crash recovery (DESIGN.md, "State across restarts"): the leases the
// previous run left in the state file are looked up as the start-up gate
// asks for their sources. One the server still knows with at least a
// third of its life left is reused for the same source (no new
// credential), any other is revoked: a crash-looping app holds one
// credential, not one per crash. The leases nothing asks for are revoked
// once the start-up has resolved everything.

// resolveOnce is one attempt of the start-up gate: the previous run's
// leases for srcs first, then whatever have still lacks.
func (st *startup) resolveOnce(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
	have, err := st.state.reclaim(ctx, srcs, have)
	if err != nil {
		return have, err
	}
	return st.resolver.Resolve(ctx, srcs, have)
}

// prevLease is the previous run's lease for src that the child ran on
// (with its data), unless it was revoked or is settled already.
func (s *stateRun) prevLease(src fetch.Source) *statefile.Lease {
	if s == nil || s.prev == nil {
		return nil
	}
	for i := range s.prev.Leases {
		l := &s.prev.Leases[i]
		if l.Lease == nil || l.Revoked || s.reuse[l.LeaseID] {
			continue
		}
		if ls, err := l.Source.Source(); err == nil && ls == src {
			return l
		}
	}
	return nil
}

// reclaim settles the previous run's leases for the dynamic sources of
// srcs that have lacks, and returns have with those reused. A look-up the
// server did not answer is returned as the error (the gate retries); one
// it refused (access denied) leaves the lease alone, and a new one is
// generated.
func (s *stateRun) reclaim(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
	if s == nil || s.prev == nil {
		return have, nil
	}
	for _, src := range srcs {
		if src.Kind != fetch.Dynamic || have.Has(src) {
			continue
		}
		prev := s.prevLease(src)
		if prev == nil {
			continue
		}
		life := time.Duration(prev.Duration) * time.Second
		reused, err := s.ledger.Reclaim(ctx, src, prev.Lease, life)
		if err != nil && (fetch.IsTemporary(err) || ctx.Err() != nil) { // unanswered, or stopped (a fallback): not settled
			return have, &fetch.SourceError{Source: src, Err: err}
		}
		s.reuse[prev.LeaseID] = true
		switch {
		case err != nil:
			s.log.Warn("lease of the previous run not reused; a new one is generated", "lease", prev.LeaseID, "error", err)
		case reused == nil:
			s.noteRevoked(prev.LeaseID) // revoked, or gone already
		default:
			add := fetch.NewSnapshot()
			add.Leases[src] = reused
			have = have.Merge(add)
		}
	}
	return have, nil
}

// revokeLeftover revokes the previous run's leases that this start-up did
// not settle: superseded then, or generated for what nothing asks for
// now. It waits at most timeout; what fails runs out on its ttl.
func (s *stateRun) revokeLeftover(timeout time.Duration) {
	if s == nil || s.prev == nil {
		return
	}
	var ids []string
	for _, l := range s.prev.Leases {
		if !l.Revoked && !s.reuse[l.LeaseID] {
			ids = append(ids, l.LeaseID)
			s.reuse[l.LeaseID] = true
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.ledger.RevokeLeftover(ctx, ids)
	failed := failedLeases(err)
	for _, id := range ids {
		if !failed[id] {
			s.noteRevoked(id)
		}
	}
	if err != nil {
		s.log.Warn("revoking leases of the previous run failed; they run out on their ttl", "left", len(failed), "error", err)
	}
}

// failedLeases are the lease ids of the *watch.RevokeError in err (a
// join of them).
func failedLeases(err error) map[string]bool {
	out := map[string]bool{}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *watch.RevokeError
		if errors.As(e, &re) {
			out[re.LeaseID] = true
		}
	}
	return out
}
