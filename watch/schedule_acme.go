package watch

import (
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// ACME certificates are renewed by ScaiVault, not by us: the watcher only
// reads their order again, on an acme.renewed event and on a poll whose
// pace follows the certificate's remaining life.

const (
	// ACMEPollShare is the share of a certificate's remaining life between
	// two polls of its order: the nearer its end, the more often.
	ACMEPollShare = 1.0 / 20
	// ACMEPollCeiling bounds the time between two polls of an order, in
	// poll intervals (the safety poll while the events stream is up): a
	// renewal the server decided on long before the end is still seen
	// within 12 intervals.
	ACMEPollCeiling = 12
)

// ACMEPollAt is when to read the order of ACME certificate c (received at
// received) again, at now: a twentieth of its remaining life from now,
// never sooner than one interval (the poll interval, or the safety poll
// while the events stream is up) and never later than ACMEPollCeiling of
// them, ± 10%. A certificate past its end is polled every interval.
func ACMEPollAt(c *fetch.Cert, received, now time.Time, interval time.Duration, rnd float64) time.Time {
	interval = max(interval, retryFloor)
	rem := ACMERemaining(c, received) - now.Sub(received)
	every := clamp(scale(rem, ACMEPollShare), interval, ACMEPollCeiling*interval)
	return now.Add(scale(every, 1+PollJitter*(2*rnd-1)))
}

// ACMERemaining is how long ACME certificate c is still valid, by our
// clock, from received. Not CertRemaining: that keeps a certificate within
// a second of the lifetime the server gave it, which holds for one issued
// for this request, and an ACME order's certificate may be one reused
// weeks after its issue.
func ACMERemaining(c *fetch.Cert, received time.Time) time.Duration {
	return max(c.ExpiresAt.Sub(received), 0)
}

// remaining is how long it's certificate is valid from its receipt.
func (it *certItem) remaining() time.Duration {
	if it.src.Kind == fetch.ACME {
		return ACMERemaining(it.cert, it.received)
	}
	return CertRemaining(it.cert, it.received)
}
