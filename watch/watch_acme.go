package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// ACME certificates: the watcher reads the order again (schedule_acme.go,
// or at once on acme.renewed) and takes whatever new certificate
// ScaiVault put in it, however far the old one is from its end (the
// server decided). It never places an order: that is the start-up's.

// newCertItem schedules a certificate the child runs on anew: a PKI one
// is re-issued at two thirds of its life, an ACME one's order is polled.
func (w *Watcher) newCertItem(src fetch.Source, c *fetch.Cert, now time.Time) *certItem {
	it := &certItem{src: src, cert: c, received: now}
	if src.Kind == fetch.ACME {
		it.at = ACMEPollAt(c, now, now, w.interval(), w.rnd())
	} else {
		it.at = CertRefreshAt(c, now, w.rnd())
	}
	return it
}

// stepCert does what a certificate's time has come for.
func (w *Watcher) stepCert(ctx context.Context, it *certItem) {
	if it.src.Kind == fetch.ACME {
		w.pollOrder(ctx, it)
		return
	}
	w.reissue(ctx, it)
}

// errOrderDomains is an order whose names are no longer the source's.
var errOrderDomains = errors.New("the order is now for other domains")

// pollOrder reads the item's order; a new certificate in it is a change.
func (w *Watcher) pollOrder(ctx context.Context, it *certItem) {
	o, err := w.api.ACMEOrder(ctx, it.cert.OrderID)
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			w.certFailed(it, err, now)
		}
		return
	}
	domains, _ := it.src.ACMEOrder()
	got, derr := fetch.CanonicalDomains(o.Domains)
	switch {
	case derr != nil || !slices.Equal(got, domains):
		w.certFailed(it, fmt.Errorf("ACME order %s: %w", o.ID, errOrderDomains), now)
		return
	case o.Status == fetch.OrderInvalid:
		reason := "no reason given"
		if o.Error != nil {
			reason = o.Error.Code + ": " + o.Error.Message
		}
		w.certFailed(it, fmt.Errorf("ACME order %s turned invalid (%.300s); the certificate %s stays until it ends",
			o.ID, reason, it.cert.SerialNumber), now)
		return
	}
	w.succeeded(now)
	if o.Status != fetch.OrderValid || o.Certificate.SerialNumber == it.cert.SerialNumber {
		it.fails = 0
		it.at = ACMEPollAt(it.cert, it.received, now, w.interval(), w.rnd())
		return
	}
	w.renewedACME(it, fetch.CertOf(o), now)
}

// renewedACME makes the order's new certificate a change.
func (w *Watcher) renewedACME(it *certItem, c *fetch.Cert, now time.Time) {
	old := it.cert.SerialNumber
	w.log.Info("ACME certificate renewed", "account", it.src.Account, "order", c.OrderID,
		"serial", c.SerialNumber, "old_serial", old, "expires_at", c.ExpiresAt)
	it.pending = true
	d := w.change(it.src, fmt.Sprintf("acme certificate %s order %s serial %s→%s", it.src.Account, c.OrderID, old, c.SerialNumber))
	d.snap.Certs[it.src] = c
	d.endsAt(now.Add(it.remaining() - now.Sub(it.received)))
	d.accept = append(d.accept, func(time.Time) {
		it.pending, it.cert, it.received, it.fails = false, c, now, 0
		it.at = ACMEPollAt(c, now, now, w.interval(), w.rnd())
	})
	d.reject = append(d.reject, func(t time.Time) {
		it.pending = false
		it.fails++
		it.at = t.Add(RetryBackoff(it.fails, w.cfg.PollInterval, w.rnd()))
	})
}

// certFailed schedules the retry of a failed read of a certificate's
// source: a server that does not answer is retried with backoff before
// the certificate ends; anything else is a loss, retried each poll.
func (w *Watcher) certFailed(it *certItem, err error, now time.Time) {
	it.fails++
	if fetch.IsTemporary(err) {
		rem := it.remaining() - now.Sub(it.received)
		wait := max(serverWait(err), RetryBackoff(it.fails, RetryLimit(rem, w.cfg.PollInterval), w.rnd()))
		w.out.fail(now, err, wait)
		it.at = now.Add(wait)
		return
	}
	w.lose(&LostError{Source: it.src, Err: err})
	it.at = now.Add(RetryBackoff(it.fails, w.cfg.PollInterval, w.rnd()))
}

// onACMERenewed handles an acme.renewed event: the orders it names are
// read at once (an event is a hint, never a value).
func (w *Watcher) onACMERenewed(ev fetch.Event) {
	if ev.Data.OrderID == "" {
		return
	}
	now := time.Now()
	for _, it := range w.certs {
		if it.src.Kind == fetch.ACME && it.cert.OrderID == ev.Data.OrderID && !it.pending {
			it.at = now
		}
	}
}

// pollOrdersBy brings every order's next poll forward to t at the latest:
// at once when the events stream (re)connects (a renewal may have come
// before it did), and at the poll interval's pace when it drops.
func (w *Watcher) pollOrdersBy(t time.Time) {
	for _, it := range w.certs {
		if it.src.Kind == fetch.ACME && !it.pending && t.Before(it.at) {
			it.at = t
		}
	}
}
