package run

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/watch"
)

// Fallback (DESIGN.md, "State across restarts"): when the server cannot
// be reached at start for --fallback-after, the child starts from the
// state file, if it holds everything the child needs, still valid (static
// values; certificates before their end; leases not ended and not revoked
// by a clean exit), and is no older than --fallback-max-age. When the
// server answers, everything is re-resolved and acted on as any change
// (a restart only if something the child sees differs): a lease the
// server still knows is kept, one it forgot is replaced, a certificate
// that has not ended is kept (issued anew once ended). Only then does the
// watcher start. If the state cannot stand in, the start-up goes on as without
// it: retrying until --startup-timeout.

// fallback is a start on the state file.
type fallback struct {
	resolvedAt time.Time     // the state's
	since      time.Time     // when the child was given it
	ends       []fallbackEnd // of the leases and certificates it was given
	refs       []refDoc      // what it was given, for /status
}

// result is what a resolution of the start-up gate gave.
type result struct {
	snap *fetch.Snapshot
	out  []template.Rendered
	err  error
}

// resolveOrFallback resolves as the start-up gate does (resolveLive) and,
// with a state to fall back on, starts from it instead when the server
// has not answered within --fallback-after. The start-up's own resolution
// is stopped, and has ended, before the state is read: a lease of the
// state that it was settling (looked up, revoked for too little life
// left) is either settled or untouched, never given to the child and
// revoked under it. When the state cannot stand in, the resolution goes
// on from what it had fetched.
func (st *startup) resolveOrFallback(ctx context.Context, resolve template.ResolveFunc) (*fetch.Snapshot, []template.Rendered, error) {
	s := st.state
	if s == nil || s.prev == nil || s.prev.ResolvedAt.IsZero() { // none, or leases only
		return st.resolveLive(ctx, resolve, nil)
	}
	liveCtx, cancelLive := context.WithCancel(ctx)
	defer cancelLive()
	ch := make(chan result, 1)
	go func() {
		snap, out, err := st.resolveLive(liveCtx, resolve, nil)
		ch <- result{snap, out, err}
	}()
	t := time.NewTimer(s.opts.fallbackAfter)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.snap, r.out, r.err
	case <-t.C:
	}
	cancelLive()
	r := <-ch
	if r.err == nil || ctx.Err() != nil { // it answered after all, or the start-up ended
		return r.snap, r.out, r.err
	}
	snap, out, err := st.fallbackRender(ctx)
	if err != nil {
		st.log.Warn("the server is not reachable, and the state file cannot stand in; retrying until the start-up timeout", "reason", err)
		snap, out, err := st.resolveLive(ctx, resolve, r.snap)
		if err == nil {
			st.releaseStray(snap) // what the stopped resolution generated and this one did not take up
		}
		return snap, out, err
	}
	for src, l := range snap.Leases {
		st.ledger.Add(src, l)
	}
	now := time.Now()
	st.fallback = &fallback{resolvedAt: s.prev.ResolvedAt, since: now, ends: endsOf(snap), refs: refsOf(snap, s.prev.ResolvedAt)}
	s.fellBack(snap)
	msg := "the server is not reachable: the child starts on the state file; everything is re-resolved once the server answers"
	if st.opts.Once {
		msg = "the server is not reachable: the command is started (--once) on the state file, and nothing re-resolves it"
	}
	st.log.Warn(msg, "waited", s.opts.fallbackAfter, "age", now.Sub(s.prev.ResolvedAt).Round(time.Second), "resolved_at", s.prev.ResolvedAt.Format(time.RFC3339))
	return snap, out, nil
}

// fallbackRender renders the templates from the state alone. Its error
// says what the state lacks.
func (st *startup) fallbackRender(ctx context.Context) (*fetch.Snapshot, []template.Rendered, error) {
	fb, why, err := st.state.fallbackSnapshot(time.Now())
	if err != nil {
		return nil, nil, err
	}
	fromState := func(_ context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
		out := have.Merge(nil)
		var errs []error
		for _, src := range srcs {
			if out.Has(src) {
				continue
			}
			if !fb.Has(src) {
				reason := why[src]
				if reason == "" {
					reason = "not in the state file"
				}
				errs = append(errs, fmt.Errorf("%s: %s", src.Describe(), reason))
				continue
			}
			out = out.Merge(fb.Only([]fetch.Source{src}))
		}
		return out, errors.Join(errs...)
	}
	if _, err := fromState(ctx, st.plan.Sources(), nil); err != nil {
		return nil, nil, nameUsers(err, st.plan)
	}
	out, snap, err := st.set.RenderAll(ctx, fromState, fb)
	if err != nil {
		return nil, nil, err
	}
	return snap, out, nil
}

// clockSkewTolerance is how far in the future a state's resolved_at may
// be (clocks of one machine across a restart, NTP steps) before it counts
// as written by another clock.
const clockSkewTolerance = time.Minute

// fallbackSnapshot is what the state can give at now: static secrets and
// lists, certificates before their end, leases the child ran on that have
// not ended and were not revoked (each with the times left by our clock).
// why says, for what it leaves out, why. err: the state is too old.
func (s *stateRun) fallbackSnapshot(now time.Time) (*fetch.Snapshot, map[fetch.Source]string, error) {
	d := s.prev
	if age := now.Sub(d.ResolvedAt); age > s.opts.maxAge {
		return nil, nil, fmt.Errorf("the state is %v old, more than --fallback-max-age %v", age.Round(time.Second), s.opts.maxAge)
	} else if age < -clockSkewTolerance {
		// Written by a clock ahead of ours, or ours went back: its age,
		// and so --fallback-max-age, cannot be told.
		return nil, nil, fmt.Errorf("the state was resolved %v in the future (resolved_at %s): a clock was changed, so its age cannot be told", (-age).Round(time.Second), d.ResolvedAt.Format(time.RFC3339))
	}
	s.mu.Lock()
	revoked := maps.Clone(s.revoked)
	s.mu.Unlock()
	snap, why := fetch.NewSnapshot(), map[fetch.Source]string{}
	for _, e := range d.Secrets {
		if src, err := e.Source.Source(); err == nil {
			snap.Secrets[src] = e.Secret
		}
	}
	for _, e := range d.Lists {
		if src, err := e.Source.Source(); err == nil {
			snap.Lists[src] = e.Entries
		}
	}
	for _, e := range d.Certs {
		src, err := e.Source.Source()
		switch {
		case err != nil:
		case !now.Before(e.Cert.ExpiresAt):
			why[src] = fmt.Sprintf("its certificate (serial %s) in the state file ended at %s", e.Cert.SerialNumber, e.Cert.ExpiresAt.Format(time.RFC3339))
		default:
			c := *e.Cert
			c.OrderID = e.OrderID
			snap.Certs[src] = &c
		}
	}
	for _, e := range d.Leases {
		src, err := e.Source.Source()
		switch {
		case err != nil || e.Lease == nil && !e.Revoked:
			// superseded, or no source: nothing to run on
		case e.Revoked:
			if _, ok := why[src]; !ok {
				why[src] = fmt.Sprintf("its lease %s in the state file was revoked when scaivault-run last exited", e.LeaseID)
			}
		case !now.Before(e.ExpiresAt):
			why[src] = fmt.Sprintf("its lease %s in the state file ended at %s", e.LeaseID, e.ExpiresAt.Format(time.RFC3339))
		case revoked[e.LeaseID]:
			// This start-up's recovery revoked it (too little life left)
			// or found it gone.
			why[src] = fmt.Sprintf("its lease %s in the state file was revoked by this start-up", e.LeaseID)
		default:
			l := *e.Lease
			l.LeaseDuration = int64(e.ExpiresAt.Sub(now) / time.Second)
			if e.Duration > l.LeaseDuration {
				l.Life = e.Duration // what is left is not its life
			}
			l.ExpiresAt, l.Renewable = e.ExpiresAt, e.Renewable
			if !e.MaxExpiresAt.IsZero() {
				l.MaxExpiresAt = e.MaxExpiresAt
			}
			snap.Leases[src] = &l
			delete(why, src)
		}
	}
	return snap, why, nil
}

// recoverThenWatch runs the refresher's goroutine after a fallback start:
// it re-resolves everything once the server answers, applies that as an
// update (a restart only if the child sees a difference), then starts the
// watcher (joined by wg) and runs the refresher.
func (st *startup) recoverThenWatch(ctx context.Context, r *refresher, cfg watch.WatchConfig, wg *sync.WaitGroup) {
	fb := st.fallback
	st.releaseStray(r.snap) // what the stopped start-up resolution generated: used by nothing
	for _, l := range r.snap.Leases {
		st.state.reuse[l.LeaseID] = true // the ledger's now
	}
	snap, err := st.recoverSnapshot(ctx, r)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		st.state.revokeLeftover(st.opts.cleanupTimeout())
	}
	out := time.Since(fb.since).Round(time.Millisecond)
	if err != nil {
		st.log.Error("re-resolving after the fallback start failed; the child keeps what the state file gave for those, and the watcher tells", "error", err, "after", out)
	} else {
		st.log.Info("the server answers: everything re-resolved after the fallback start", "after", out)
	}
	r.apply(ctx, watch.Update{Snapshot: snap, Reasons: []string{"re-resolved after the fallback start"}})
	st.status.setFallback(nil, 0)
	base := r.snap
	if r.pending != nil {
		base = r.pending.snap
	}
	r.w = watch.NewWatcher(cfg, base, sourcesOf(base))
	wg.Go(func() { r.w.Run(ctx) })
	r.run(ctx)
}

// recoverSnapshot resolves the sources of r.snap anew, retrying while the
// server does not answer (logged as the start-up gate logs, by its
// startTrouble: the start-up's resolution has ended): static secrets and
// lists are read, the leases the server still knows kept (with its
// times), those it forgot generated anew. A certificate of the state
// that has not ended is kept (there is no look-up for one, and its
// reference is the same: the fingerprint says so), so nothing the child
// sees differs for it and the watcher re-issues it on its schedule; one
// that ended is issued anew. A permanent failure returns r.snap with what
// could be resolved, and the error.
func (st *startup) recoverSnapshot(ctx context.Context, r *refresher) (*fetch.Snapshot, error) {
	srcs := sourcesOf(r.snap)
	have, settled := keptCerts(r.snap, time.Now()), map[fetch.Source]bool{}
	var others []fetch.Source
	for _, src := range srcs {
		if src.Kind != fetch.Dynamic && !have.Has(src) {
			others = append(others, src)
		}
	}
	for attempt := 1; ; attempt++ {
		snap, err := r.resolver.Resolve(ctx, others, have)
		if err == nil {
			snap, err = st.keepLeases(ctx, r.snap, snap, settled)
		}
		if err == nil {
			snap, err = r.resolver.Resolve(ctx, srcs, snap)
		}
		if err == nil {
			st.trouble.answered(st.log, time.Now())
			return snap, nil
		}
		if snap != nil {
			have = snap
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !fetch.IsTemporary(err) {
			return r.snap.Merge(have), err
		}
		wait := fetch.Backoff(attempt, 500*time.Millisecond, 2, 10*time.Second, rand.Float64())
		st.trouble.failed(st.log, time.Now(), err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// endsOf lists when the leases and certificates of snap end.
func endsOf(snap *fetch.Snapshot) []fallbackEnd {
	var out []fallbackEnd
	for _, src := range sourcesOf(snap) {
		if l := snap.Leases[src]; l != nil {
			out = append(out, fallbackEnd{Kind: "lease", Ref: src.String(), LeaseID: l.LeaseID, At: l.ExpiresAt})
		}
		if c := snap.Certs[src]; c != nil {
			out = append(out, fallbackEnd{Kind: "certificate", Ref: src.String(), At: c.ExpiresAt})
		}
	}
	return out
}

// refsOf are /status's references for the child on snap (the state's,
// confirmed at resolvedAt): until the watcher runs, nothing else knows
// them.
func refsOf(snap *fetch.Snapshot, resolvedAt time.Time) []refDoc {
	var out []refDoc
	for _, src := range sourcesOf(snap) {
		switch {
		case snap.Secrets[src] != nil:
			out = append(out, refDoc{Kind: "secret", Reference: src.String(), Path: src.Path, Version: snap.Secrets[src].Version, Refreshed: resolvedAt})
		case snap.Leases[src] != nil:
			l := snap.Leases[src]
			out = append(out, refDoc{Kind: "lease", Reference: src.String(), Engine: src.Engine, Role: src.Role, LeaseID: l.LeaseID, ExpiresAt: l.ExpiresAt})
		case snap.Certs[src] != nil:
			c := snap.Certs[src]
			role := src.PKIRole
			out = append(out, refDoc{Kind: "certificate", Reference: src.String(), Role: role, Account: src.Account, OrderID: c.OrderID, Serial: c.SerialNumber, ExpiresAt: c.ExpiresAt})
		}
	}
	return out
}

// keptCerts are the certificates of snap (the state's) that have not
// ended at now.
func keptCerts(snap *fetch.Snapshot, now time.Time) *fetch.Snapshot {
	out := fetch.NewSnapshot()
	for src, c := range snap.Certs {
		if now.Before(c.ExpiresAt) {
			out.Certs[src] = c
		}
	}
	return out
}

// keepLeases looks up the leases of state (the fallback's) that are not
// settled yet and adds those the server still knows to have.
func (st *startup) keepLeases(ctx context.Context, state, have *fetch.Snapshot, settled map[fetch.Source]bool) (*fetch.Snapshot, error) {
	for _, src := range sourcesOf(state) {
		l := state.Leases[src]
		if l == nil || settled[src] {
			continue
		}
		kept, err := st.ledger.Reclaim(ctx, src, l, 0)
		if err != nil && fetch.IsTemporary(err) {
			return have, err
		}
		settled[src] = true
		if kept != nil {
			add := fetch.NewSnapshot()
			add.Leases[src] = kept
			have = have.Merge(add)
		}
	}
	return have, nil
}

// releaseStray releases every lease of the ledger that keep does not
// hold: what the stopped start-up resolution generated.
func (st *startup) releaseStray(keep *fetch.Snapshot) {
	var stray []*fetch.Lease
	for _, h := range st.ledger.Held() {
		if !holdsLease(keep, h.Lease.LeaseID) {
			stray = append(stray, h.Lease)
		}
	}
	st.ledger.Release(stray, watch.Unused, 0)
}

func holdsLease(snap *fetch.Snapshot, id string) bool {
	for _, l := range snap.Leases {
		if l.LeaseID == id {
			return true
		}
	}
	return false
}

// sourcesOf lists the sources of snap in a stable order.
func sourcesOf(snap *fetch.Snapshot) []fetch.Source {
	var out []fetch.Source
	for src := range snap.Secrets {
		out = append(out, src)
	}
	for src := range snap.Lists {
		out = append(out, src)
	}
	for src := range snap.Leases {
		out = append(out, src)
	}
	for src := range snap.Certs {
		out = append(out, src)
	}
	slices.SortFunc(out, func(a, b fetch.Source) int { return strings.Compare(a.String(), b.String()) })
	return out
}
