package watch

import (
	"errors"
	"github.com/scailabs/scaivault-run/fetch"
	"log/slog"
	"time"
)

// What the watcher logs about failures: losses (at error level, on every
// attempt, and reported through OnLost) and outages (rate-limited).

// lose logs a loss at error level and reports it.
func (w *Watcher) lose(e *LostError) {
	attrs := []any{"error", e.Err}
	switch {
	case e.LeaseID != "":
		attrs = append(attrs, "lease", e.LeaseID, "source", e.Source.String())
	case e.Source.Kind == fetch.List:
		attrs = append(attrs, "list", e.Source.Path)
	case e.Source.Kind == fetch.PKI || e.Source.Kind == fetch.ACME:
		attrs = append(attrs, "certificate", e.Source.String())
	case e.Source.Kind != 0:
		attrs = append(attrs, "secret", e.Source.Path)
	}
	w.log.Error("lost for good; the child keeps running on what it has", attrs...)
	if w.cfg.OnLost != nil {
		w.cfg.OnLost(e)
	}
}

// outage rate-limits the warnings about a server that does not answer:
// the first failure, then at most one a minute, then one line at info
// level when it answers again.
type outage struct {
	log      *slog.Logger
	since    time.Time
	lastWarn time.Time
	failures int
}

// outageWarnEvery is the least time between two outage warnings.
const outageWarnEvery = time.Minute

func (o *outage) fail(now time.Time, err error, retryIn time.Duration) {
	o.failures++
	switch {
	case o.failures == 1:
		o.since, o.lastWarn = now, now
		o.log.Warn("scaivault not reachable; the child keeps running on what it has",
			"error", err, "retry_in", retryIn.Round(time.Millisecond))
	case now.Sub(o.lastWarn) >= outageWarnEvery:
		o.lastWarn = now
		o.log.Warn("scaivault still not reachable", "for", now.Sub(o.since).Round(time.Second),
			"failures", o.failures, "error", err, "retry_in", retryIn.Round(time.Millisecond))
	default:
		o.log.Debug("scaivault not reachable", "failures", o.failures, "error", err)
	}
}

func (o *outage) ok(now time.Time) {
	if o.failures == 0 {
		return
	}
	o.log.Info("scaivault reachable again", "after", now.Sub(o.since).Round(time.Millisecond), "failures", o.failures)
	o.failures = 0
}

// serverWait is the Retry-After of a 429 or 503 in err, or zero.
func serverWait(err error) time.Duration {
	var ae *fetch.APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}
