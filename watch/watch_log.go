package watch

import (
	"errors"
	"github.com/scailabs/scaivault-run/fetch"
	"log/slog"
	"time"
)

// What the watcher logs about failures: losses (at error level, on every
// attempt, and reported through OnLost) and, at debug, failed refreshes
// (the client's health view warns about outages).

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

// outage notes the watcher's failed refreshes, at debug level. Warning
// about trouble with the server is the client's job: its health view
// (fetch/health.go, which Run turns on) hears of every request, the
// events stream's and the ledger's too, and tells an unreachable server
// from one answering with errors, so that one success (a renewal) does
// not declare the server well while another kind of request (the secret
// reads) still fails.
type outage struct {
	log      *slog.Logger
	failures int
}

func (o *outage) fail(_ time.Time, err error, retryIn time.Duration) {
	o.failures++
	o.log.Debug("refresh failed; retrying", "failures", o.failures, "error", err, "retry_in", retryIn.Round(time.Millisecond))
}

func (o *outage) ok(time.Time) { o.failures = 0 }

// serverWait is the Retry-After of a 429 or 503 in err, or zero.
func serverWait(err error) time.Duration {
	var ae *fetch.APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}
