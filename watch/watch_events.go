package watch

import (
	"context"
	"errors"
	"github.com/scailabs/scaivault-run/fetch"
	"maps"
	"slices"
	"strings"
	"time"
)

// The change-event stream: a hint to read again, never a value.

// followEvents follows the events stream until ctx ends or the stream
// ends for good; it runs on its own goroutine and only sends.
func (w *Watcher) followEvents(ctx context.Context) {
	opt := fetch.EventsOptions{
		OnConnect: func() {
			select {
			case w.connCh <- struct{}{}:
			default:
			}
		},
		OnDrop: func(error) {
			select {
			case w.dropCh <- struct{}{}:
			default:
			}
		},
	}
	err := w.api.Events(ctx, opt, func(ev fetch.Event) {
		select {
		case w.evCh <- ev:
		case <-ctx.Done():
		}
	})
	if ctx.Err() != nil {
		return
	}
	select {
	case w.endCh <- err:
	case <-ctx.Done():
	}
}

// onConnect polls at once: events from before the stream (re)connected
// are not replayed unless an event id was seen. From now on the poll is
// only a safety net.
func (w *Watcher) onConnect(ctx context.Context) {
	if !w.evSeen {
		w.log.Info("following change events", "safety_poll", w.cfg.SafetyPoll)
	} else {
		w.log.Debug("events stream reconnected")
	}
	w.evUp, w.evSeen = true, true
	w.pollOrdersBy(time.Now())
	w.poll(ctx)
}

// onDrop: the stream dropped and is reconnecting (a proxy that breaks
// it, 503s on /v1/events). Until it is back, static secrets are polled at
// the poll interval, the first poll one interval after the drop; a
// reconnection polls at once.
func (w *Watcher) onDrop() {
	if !w.evUp {
		return
	}
	w.evUp, w.evDownAt = false, time.Now()
	w.pollOrdersBy(NextPoll(time.Now(), w.cfg.PollInterval, w.rnd()))
	w.log.Debug("events stream down; polling until it is back", "poll_interval", w.cfg.PollInterval)
	if next := NextPoll(time.Now(), w.cfg.PollInterval, w.rnd()); next.Before(w.nextPoll) {
		w.nextPoll = next
	}
}

func (w *Watcher) onEventsEnd(err error) {
	if w.evUp {
		w.evDownAt = time.Now()
	}
	w.evUp = false
	w.pollOrdersBy(NextPoll(time.Now(), w.cfg.PollInterval, w.rnd()))
	if errors.Is(err, fetch.ErrEventsNotSupported) {
		w.log.Info("the server offers no change events; polling", "poll_interval", w.cfg.PollInterval)
	} else {
		w.log.Warn("change events unavailable; polling", "poll_interval", w.cfg.PollInterval, "error", err)
	}
	if next := NextPoll(time.Now(), w.cfg.PollInterval, w.rnd()); next.Before(w.nextPoll) {
		w.nextPoll = next
	}
}

// maxEventBatch bounds the events handled in one round.
const maxEventBatch = 1024

// onEvents handles ev and every event queued behind it in one round: the
// secrets they name are read again in one batch read (an event is a hint,
// never a value), lists that may have changed are listed again, and a
// revoked lease of ours is lost.
func (w *Watcher) onEvents(ctx context.Context, ev fetch.Event) {
	paths := map[string]bool{}
	lists := map[fetch.Source]bool{}
	for n := 0; ; n++ {
		w.noteEvent(ev, paths, lists)
		if n == maxEventBatch {
			break
		}
		select {
		case ev = <-w.evCh:
			continue
		default:
		}
		break
	}
	if len(paths) == 0 && len(lists) == 0 {
		return
	}
	ok, wait := w.readStatic(ctx, slices.Sorted(maps.Keys(paths)), sortedSources(maps.Keys(lists)))
	if !ok && ctx.Err() == nil {
		// Let the poll retry soon what the server did not answer.
		retry := time.Now().Add(max(wait, RetryBackoff(1, w.cfg.PollInterval, w.rnd())))
		if retry.Before(w.nextPoll) {
			w.nextPoll = retry
		}
	}
}

// noteEvent adds what ev asks to read again to paths and lists.
func (w *Watcher) noteEvent(ev fetch.Event, paths map[string]bool, lists map[fetch.Source]bool) {
	switch ev.Type {
	case fetch.EventLeaseRevoked:
		w.onLeaseRevoked(ev)
		return
	case fetch.EventACMERenewed:
		w.onACMERenewed(ev)
		return
	}
	p := ev.Data.Path
	if p == "" {
		return
	}
	src := fetch.StaticSource(p, 0)
	if old := w.latestSecret(src); old != nil {
		// secret.updated with the same version is a metadata patch.
		if ev.Type == fetch.EventSecretDeleted || ev.Type == fetch.EventSecretUpdated || ev.Data.Version == 0 || ev.Data.Version != old.Version {
			paths[p] = true
		}
	}
	for ls, entries := range w.cur.Lists {
		if !strings.HasPrefix(p, ls.Path) {
			continue
		}
		listed := slices.ContainsFunc(entries, func(e fetch.ListEntry) bool { return e.Path == p })
		if listed == (ev.Type == fetch.EventSecretDeleted) {
			lists[ls] = true
		}
	}
}
