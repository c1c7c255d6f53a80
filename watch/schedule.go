package watch

import (
	"github.com/scailabs/scaivault-run/fetch"
	"math"
	"time"
)

// When to refresh: pure functions of (item, time received or now, random
// number in [0,1)) that return a time or a duration. The Watcher calls them;
// schedule_test.go holds their tables.
//
// Clocks: a lease or certificate carries server times (expires_at), and the
// server's clock may differ from ours. Every remaining duration is measured
// by our clock from the moment the answer was received, but checked against
// what the server says in a clock-free way (lease_duration, or expires_at
// minus issued_at): where the two disagree by more than clockTolerance, the
// clocks are skewed and the server's duration wins.

const (
	// RefreshFraction is the share of its remaining life after which a
	// lease is renewed (or replaced) and a certificate re-issued.
	RefreshFraction = 2.0 / 3
	// refreshJitter spreads refreshes by ± this share of the remaining life,
	// so that replicas started together do not refresh together.
	refreshJitter = 0.05
	// PollJitter spreads static polls by ± this share of the interval.
	PollJitter = 0.1
	// clockTolerance is how far our clock may disagree with a server's
	// durations before those win: lease_duration is in whole seconds.
	clockTolerance = time.Second
	// renewWorth: a renewal is worth making while it buys at least this
	// share of an increment from the time it is made.
	renewWorth = 0.5
	// retryFirst is the first wait after a failure while running; each
	// further failure doubles it, up to a limit the caller gives.
	retryFirst = time.Second
	// retryFloor is the least wait between two attempts of one item.
	retryFloor = 100 * time.Millisecond
)

// NextPoll is when to poll static secrets next: interval after now, ± 10%.
func NextPoll(now time.Time, interval time.Duration, rnd float64) time.Time {
	return now.Add(scale(interval, 1+PollJitter*(2*rnd-1)))
}

// LeaseAction is what the watcher does next with a lease.
type LeaseAction int

// Lease actions.
const (
	LeaseRenew   LeaseAction = iota + 1 // extend it
	LeaseReplace                        // generate a new credential before it ends
)

func (a LeaseAction) String() string {
	switch a {
	case LeaseRenew:
		return "renew"
	case LeaseReplace:
		return "replace"
	}
	return "none"
}

// LeasePlan is the next step for a lease: what, when, and why (for logs).
type LeasePlan struct {
	Action LeaseAction
	At     time.Time
	Why    string
}

// PlanLease decides the next step for lease l, whose answer was received at
// received. increment is what a renewal asks for (the reference's ttl, or
// the role's default, approximated by the lease's first duration); zero
// means the lease's remaining duration.
//
// The step comes at about two thirds of the remaining duration (± 5%). It
// is a renewal when one at that time would still buy at least half an
// increment before max_expires_at; otherwise (not renewable, or max near)
// it is a replacement at that same time, so that the old credential still
// has about a third of its life while the child moves to the new one. A
// lease that has already run out is replaced at once.
func PlanLease(l *fetch.Lease, received time.Time, increment time.Duration, rnd float64) LeasePlan {
	rem := LeaseRemaining(l, received)
	if rem <= 0 {
		return LeasePlan{LeaseReplace, received, "expired"}
	}
	if increment <= 0 {
		increment = rem
	}
	step := scale(rem, refreshShare(rnd))
	at := received.Add(step)
	switch {
	case !l.Renewable:
		return LeasePlan{LeaseReplace, at, "not renewable"}
	case maxRemaining(l, rem)-step < scale(increment, renewWorth):
		return LeasePlan{LeaseReplace, at, "max_expires_at near"}
	}
	return LeasePlan{LeaseRenew, at, "renewable"}
}

// LeaseRemaining is how long lease l still runs, by our clock, from the
// moment its answer was received: expires_at minus received, kept within
// clockTolerance of lease_duration (which the server computed without our
// clock, in whole seconds).
func LeaseRemaining(l *fetch.Lease, received time.Time) time.Duration {
	told := time.Duration(l.LeaseDuration) * time.Second
	if l.ExpiresAt.IsZero() {
		return told
	}
	return clamp(l.ExpiresAt.Sub(received), told-clockTolerance, told+clockTolerance)
}

// maxRemaining is how long l could run at most from received: its
// remaining time plus the server's gap between expires_at and
// max_expires_at (a difference of two server times: no clock skew).
// Unknown (no max_expires_at) is unlimited.
func maxRemaining(l *fetch.Lease, rem time.Duration) time.Duration {
	if l.MaxExpiresAt.IsZero() {
		return math.MaxInt64
	}
	return rem + max(l.MaxExpiresAt.Sub(l.ExpiresAt), 0)
}

// CertRefreshAt is when to re-issue certificate c, received at received:
// about two thirds (± 5%) of the way from received to its NotAfter. The
// receive time, not NotBefore, starts the count: servers back-date
// NotBefore for clock skew. The time to NotAfter is measured by our clock
// but kept within clockTolerance of the lifetime the server gave it
// (expires_at − issued_at), which needs no clock agreement.
func CertRefreshAt(c *fetch.Cert, received time.Time, rnd float64) time.Time {
	return received.Add(scale(CertRemaining(c, received), refreshShare(rnd)))
}

// CertRemaining is how long c is still valid, by our clock, from received.
func CertRemaining(c *fetch.Cert, received time.Time) time.Duration {
	byClock := c.ExpiresAt.Sub(received)
	if c.IssuedAt.IsZero() || !c.IssuedAt.Before(c.ExpiresAt) {
		return max(byClock, 0)
	}
	life := c.ExpiresAt.Sub(c.IssuedAt)
	return clamp(byClock, life-clockTolerance, life)
}

// RetryBackoff is the wait after the n-th failure in a row (n ≥ 1) of a
// call made while running: 1s, 2s, 4s, … ± 20%, never above limit (nor
// below 100ms). limit is the poll interval for polls, and for a lease or
// certificate also a third of its remaining life, so that retries still
// come before it ends.
func RetryBackoff(n int, limit time.Duration, rnd float64) time.Duration {
	limit = max(limit, retryFloor)
	return clamp(fetch.Backoff(n, retryFirst, 2, limit, rnd), retryFloor, limit)
}

// RetryLimit is the longest wait between attempts for an item that ends
// after remaining: a third of that, at most the poll interval.
func RetryLimit(remaining, poll time.Duration) time.Duration {
	return max(min(remaining/3, poll), retryFloor)
}

func refreshShare(rnd float64) float64 {
	return RefreshFraction + refreshJitter*(2*rnd-1)
}

func scale(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * f)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	lo = max(lo, 0)
	return max(min(d, hi), lo)
}
