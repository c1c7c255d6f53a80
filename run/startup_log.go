package run

import (
	"log/slog"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// What the start-up gate logs while the server fails it (DESIGN.md,
// "Server unreachable at start"): nothing runs yet and the user waits, so
// the first failed attempt is a warning at once, saying truthfully what
// went wrong ("not reachable" only when no answer came, "answering with
// errors" for a 5xx or a 429); later attempts are at debug, but for one
// warning a minute with the count; once the server answers after a
// warning, one line says how long it took. While the child runs, the
// client's health view logs instead (fetch/health.go, turned on by the
// watcher).

// startupWarnEvery is the least time between two start-up warnings.
const startupWarnEvery = time.Minute

// startTrouble is the start-up gate's trouble; it is owned by the
// start-up's goroutine.
type startTrouble struct {
	since    time.Time // the first failure; zero: none
	lastWarn time.Time
	failures int
}

// failed logs a failed attempt of the start-up gate; in is the wait before
// the next.
func (t *startTrouble) failed(log *slog.Logger, now time.Time, err error, in time.Duration) {
	t.failures++
	msg := "server answering with errors; retrying"
	if fetch.IsUnreachable(err) {
		msg = "server not reachable yet; retrying"
	}
	attrs := []any{"err", err, "in", in.Round(time.Millisecond)}
	switch {
	case t.since.IsZero():
		t.since, t.lastWarn = now, now
		log.Warn(msg, attrs...)
	case now.Sub(t.lastWarn) >= startupWarnEvery:
		t.lastWarn = now
		log.Warn(msg, append(attrs, "for", now.Sub(t.since).Round(time.Second), "failures", t.failures)...)
	default:
		log.Debug(msg, append(attrs, "failures", t.failures)...)
	}
}

// answered notes that an attempt of the start-up gate succeeded.
func (t *startTrouble) answered(log *slog.Logger, now time.Time) {
	if t.since.IsZero() {
		return
	}
	log.Info("server answering normally again", "after", now.Sub(t.since).Round(time.Millisecond), "failures", t.failures)
	*t = startTrouble{}
}
