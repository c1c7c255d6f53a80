package watch

import (
	"context"
	"errors"
	"fmt"
	"github.com/scailabs/scaivault-run/fetch"
	"time"
)

// Leases and certificates: renewals, replacements and re-issues on the
// schedule of schedule.go.

// leaseItem is the watcher's state of one dynamic source.
type leaseItem struct {
	src      fetch.Source
	lease    *fetch.Lease
	received time.Time     // when lease's times were last read
	inc      time.Duration // what a renewal asks for
	plan     LeasePlan
	fails    int
	lost     error // set while the lease is lost (revoked, 404, denied)
	pending  bool  // a replacement waits for the receiver's answer
}

func (w *Watcher) newLeaseItem(src fetch.Source, l *fetch.Lease, now time.Time) *leaseItem {
	inc := time.Duration(l.LifeSeconds()) * time.Second // a reused lease's LeaseDuration is only what was left
	if src.TTL != "" {
		if d, err := fetch.ParseDuration(src.TTL); err == nil {
			inc = d
		}
	}
	return &leaseItem{src: src, lease: l, received: now, inc: inc, plan: PlanLease(l, now, inc, w.rnd())}
}

// remaining is how long the item's lease still runs at now.
func (it *leaseItem) remaining(now time.Time) time.Duration {
	return LeaseRemaining(it.lease, it.received) - now.Sub(it.received)
}

func (w *Watcher) stepLease(ctx context.Context, it *leaseItem) {
	if it.plan.Action == LeaseRenew {
		w.renew(ctx, it)
		return
	}
	w.replace(ctx, it)
}

// renew extends the lease; the answer has no data, so the credential
// stays the same, and only the lease's times change. No Update is sent.
func (w *Watcher) renew(ctx context.Context, it *leaseItem) {
	id := it.lease.LeaseID
	l, err := w.api.Renew(ctx, id, it.src.TTL)
	now := time.Now()
	if err != nil {
		w.leaseFailed(ctx, it, true, err, now)
		return
	}
	w.succeeded(now)
	renewed := *it.lease
	renewed.LeaseDuration, renewed.Renewable, renewed.ExpiresAt = l.LeaseDuration, l.Renewable, l.ExpiresAt
	renewed.Life = 0 // what the renewal gave is its life now
	if !l.MaxExpiresAt.IsZero() {
		renewed.MaxExpiresAt = l.MaxExpiresAt
	}
	// A renewal is not a change (DESIGN.md): the snapshot keeps the lease
	// as issued, so that nothing re-renders and nothing restarts; only
	// the item's schedule follows the renewed times.
	it.lease, it.received, it.fails, it.lost = &renewed, now, 0, nil
	w.ledger.Renewed(&renewed)
	it.plan = PlanLease(&renewed, now, it.inc, w.rnd())
	w.log.Info("lease renewed", "lease", id, "ttl", LeaseRemaining(&renewed, now).Round(time.Second),
		"next", it.plan.Action.String(), "in", it.plan.At.Sub(now).Round(time.Millisecond), "why", it.plan.Why)
}

// replace generates a new credential for the source; the Update carries
// it, and the old lease is superseded (revoked by the receiver once the
// child runs on the new one).
func (w *Watcher) replace(ctx context.Context, it *leaseItem) {
	src, old := it.src, it.lease
	nl, err := w.api.Generate(ctx, src.Engine, src.Role, src.TTL)
	now := time.Now()
	if err != nil {
		if nl != nil { // issued, but the answer is unusable: nothing will use it
			w.ledger.Release([]*fetch.Lease{nl}, Unused, 0)
		}
		w.leaseFailed(ctx, it, false, err, now)
		return
	}
	w.ledger.Add(src, nl)
	w.succeeded(now)
	w.log.Info("lease replaced", "lease", old.LeaseID, "new_lease", nl.LeaseID, "why", it.plan.Why)
	it.pending = true
	d := w.change(src, fmt.Sprintf("lease %s replaced by %s", old.LeaseID, nl.LeaseID))
	d.snap.Leases[src] = nl
	if it.lost != nil {
		d.endsAt(now) // the old credential no longer works: act at once
	} else {
		d.endsAt(now.Add(it.remaining(now)))
	}
	d.generated = append(d.generated, nl)
	d.accept = append(d.accept, func(time.Time) {
		if it.lost != nil {
			w.log.Info("lost lease replaced", "lease", old.LeaseID, "new_lease", nl.LeaseID)
		}
		it.pending, it.lease, it.received, it.fails, it.lost = false, nl, now, 0, nil
		it.plan = PlanLease(nl, now, it.inc, w.rnd())
	})
	d.reject = append(d.reject, func(t time.Time) {
		it.pending = false
		it.fails++
		it.plan = LeasePlan{LeaseReplace, t.Add(RetryBackoff(it.fails, w.cfg.PollInterval, w.rnd())), "update rejected"}
	})
}

// errLeaseGone is a renewal answered 404: the lease expired or was revoked.
var errLeaseGone = errors.New("the server no longer knows the lease")

// leaseFailed schedules what follows a failed renewal or replacement. A
// renewal refused (not renewable) or answered 404 (revoked, expired: the
// lease is lost) turns into a replacement now; a server that does not
// answer is retried with backoff, before the lease ends (once it has
// ended, by a replacement); anything else is a loss, retried each poll.
func (w *Watcher) leaseFailed(ctx context.Context, it *leaseItem, renewing bool, err error, now time.Time) {
	if ctx.Err() != nil {
		return
	}
	rem := it.remaining(now)
	switch {
	case renewing && errors.Is(err, fetch.ErrValidation):
		w.log.Info("lease renewal refused; replacing it", "lease", it.lease.LeaseID, "error", err)
		it.plan = LeasePlan{LeaseReplace, now, "renewal refused"}
	case renewing && errors.Is(err, fetch.ErrNotFound):
		w.loseLease(it, fmt.Errorf("%w: %w", errLeaseGone, err))
		it.plan = LeasePlan{LeaseReplace, now, "lease gone"}
	case fetch.IsTemporary(err):
		it.fails++
		// Retries come closer as the lease's end nears; once it has
		// ended there is nothing left to save by hurrying, and the
		// backoff is the poll's (1 s doubling, up to the interval).
		limit := w.cfg.PollInterval
		if rem > 0 {
			limit = RetryLimit(rem, w.cfg.PollInterval)
		}
		wait := max(serverWait(err), RetryBackoff(it.fails, limit, w.rnd()))
		w.out.fail(now, err, wait)
		it.plan.At = now.Add(wait)
		if renewing && rem <= 0 {
			it.plan = LeasePlan{LeaseReplace, it.plan.At, "expired while the server did not answer"}
		}
	default:
		it.fails++
		w.loseLease(it, err)
		it.plan.At = now.Add(RetryBackoff(it.fails, w.cfg.PollInterval, w.rnd()))
	}
}

func (w *Watcher) loseLease(it *leaseItem, err error) {
	it.lost = err
	w.lose(&LostError{Source: it.src, LeaseID: it.lease.LeaseID, Err: err})
}

// onLeaseRevoked handles a lease.revoked event: one of ours is lost, and
// a replacement is made at once.
func (w *Watcher) onLeaseRevoked(ev fetch.Event) {
	for _, it := range w.leases {
		if it.lease.LeaseID != ev.Data.LeaseID || it.pending {
			continue
		}
		w.loseLease(it, fmt.Errorf("revoked by the server (event %s)", ev.ID))
		it.plan = LeasePlan{LeaseReplace, time.Now(), "revoked by the server"}
	}
}

// certItem is the watcher's state of one PKI or ACME source.
type certItem struct {
	src      fetch.Source
	cert     *fetch.Cert
	received time.Time
	at       time.Time // next re-issue (ACME: next read of the order)
	fails    int
	pending  bool
}

// reissue issues a new certificate for the source.
func (w *Watcher) reissue(ctx context.Context, it *certItem) {
	c, err := w.api.Issue(ctx, it.src.PKIRole, it.src.IssueRequest())
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			w.certFailed(it, err, now)
		}
		return
	}
	w.succeeded(now)
	old := it.cert.SerialNumber
	w.log.Info("certificate re-issued", "role", it.src.PKIRole, "serial", c.SerialNumber, "old_serial", old)
	it.pending = true
	d := w.change(it.src, fmt.Sprintf("certificate %s serial %s→%s", it.src.PKIRole, old, c.SerialNumber))
	d.snap.Certs[it.src] = c
	d.endsAt(now.Add(CertRemaining(it.cert, it.received) - now.Sub(it.received)))
	d.accept = append(d.accept, func(time.Time) {
		it.pending, it.cert, it.received, it.fails = false, c, now, 0
		it.at = CertRefreshAt(c, now, w.rnd())
	})
	d.reject = append(d.reject, func(t time.Time) {
		it.pending = false
		it.fails++
		it.at = t.Add(RetryBackoff(it.fails, w.cfg.PollInterval, w.rnd()))
	})
}
