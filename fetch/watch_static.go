package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Static secrets and lists: polls, and the reads that events trigger.

// staticPaths are the watched current-version paths, sorted. Pinned
// versions (?version=N) never change and are not polled.
func (w *Watcher) staticPaths() []string {
	var out []string
	for src := range w.cur.Secrets {
		if src.Version == 0 {
			out = append(out, src.Path)
		}
	}
	slices.Sort(out)
	return out
}

func (w *Watcher) listSources() []Source {
	return sortedSources(maps.Keys(w.cur.Lists))
}

// poll reads every watched secret (one batch read, split by the client
// into requests of 100 paths) and re-lists every watched list.
func (w *Watcher) poll(ctx context.Context) {
	ok, wait := w.readStatic(ctx, w.staticPaths(), w.listSources())
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	if ok {
		w.pollFails = 0
		w.nextPoll = NextPoll(now, w.interval(), w.rnd())
		return
	}
	w.pollFails++
	w.nextPoll = now.Add(max(wait, RetryBackoff(w.pollFails, w.cfg.PollInterval, w.rnd())))
}

// readStatic reads paths and lists and notes what changed. ok is false
// when the server could not answer for some of them (temporary); wait is
// then the server's Retry-After, if it sent one.
func (w *Watcher) readStatic(ctx context.Context, paths []string, lists []Source) (ok bool, wait time.Duration) {
	ok = true
	fail := func(err error) {
		ok, wait = false, max(wait, serverWait(err))
		w.out.fail(time.Now(), err, RetryBackoff(w.pollFails+1, w.cfg.PollInterval, 0.5))
	}
	if len(paths) > 0 {
		secrets, errs, err := w.api.BatchRead(ctx, paths)
		switch {
		case ctx.Err() != nil:
			return false, 0
		case err != nil && IsTemporary(err):
			fail(err)
		case err != nil:
			w.lose(&LostError{Err: err})
		}
		for _, p := range paths {
			src := StaticSource(p, 0)
			if sec := secrets[p]; sec != nil {
				w.noteSecret(src, sec)
			} else if e := errs[p]; e != nil && IsTemporary(e) {
				fail(fmt.Errorf("%s: %w", describe(src), e))
			} else if e != nil {
				w.lost[src] = e
				w.lose(&LostError{Source: src, Err: e})
			}
		}
	}
	for _, src := range lists {
		entries, err := w.api.List(ctx, src.Path)
		switch {
		case ctx.Err() != nil:
			return false, 0
		case err == nil:
			w.noteList(src, entries)
		case IsTemporary(err):
			fail(err)
		default:
			w.lost[src] = err
			w.lose(&LostError{Source: src, Err: err})
		}
	}
	if ok && (len(paths) > 0 || len(lists) > 0) {
		w.out.ok(time.Now())
	}
	return ok, wait
}

// latestSecret is src's secret as the next Update would hold it.
func (w *Watcher) latestSecret(src Source) *Secret {
	if w.draft != nil {
		if s, ok := w.draft.snap.Secrets[src]; ok {
			return s
		}
	}
	return w.cur.Secrets[src]
}

// noteSecret compares a secret read with the one the child runs on. A new
// version with the same data is no change: the snapshot takes it silently.
func (w *Watcher) noteSecret(src Source, sec *Secret) {
	if _, was := w.lost[src]; was {
		delete(w.lost, src)
		w.log.Info("secret readable again", "secret", src.Path, "version", sec.Version)
	}
	old := w.latestSecret(src)
	switch {
	case old != nil && old.Version == sec.Version && sameData(old.Data, sec.Data):
		return
	case old != nil && sameData(old.Data, sec.Data):
		w.log.Debug("new version with the same data: no change", "secret", src.Path, "version", sec.Version)
		if w.draft != nil && w.draft.snap.Secrets[src] != nil {
			w.draft.snap.Secrets[src] = sec
		} else {
			w.cur = w.cur.Merge(&Snapshot{Secrets: map[Source]*Secret{src: sec}})
		}
		return
	}
	reason := fmt.Sprintf("secret %s v%d", src.Path, sec.Version)
	if old != nil {
		reason = fmt.Sprintf("secret %s v%d→v%d", src.Path, old.Version, sec.Version)
	}
	w.change(src, reason).snap.Secrets[src] = sec
}

// noteList compares a list read with the one the child runs on: only the
// set of paths counts.
func (w *Watcher) noteList(src Source, entries []ListEntry) {
	if _, was := w.lost[src]; was {
		delete(w.lost, src)
		w.log.Info("list readable again", "list", src.Path)
	}
	old, ok := w.cur.Lists[src]
	if w.draft != nil {
		if l, in := w.draft.snap.Lists[src]; in {
			old, ok = l, true
		}
	}
	added, removed := diffPaths(old, entries)
	if ok && len(added) == 0 && len(removed) == 0 {
		return
	}
	w.change(src, listReason(src.Path, added, removed)).snap.Lists[src] = entries
}

func diffPaths(old, cur []ListEntry) (added, removed []string) {
	had := map[string]bool{}
	for _, e := range old {
		had[e.Path] = true
	}
	has := map[string]bool{}
	for _, e := range cur {
		has[e.Path] = true
		if !had[e.Path] {
			added = append(added, e.Path)
		}
	}
	for p := range had {
		if !has[p] {
			removed = append(removed, p)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// listReason reads `list app/: added app/x, app/y; removed app/z`, naming
// at most three paths of each.
func listReason(prefix string, added, removed []string) string {
	name := func(ps []string) string {
		if len(ps) > 3 {
			return strings.Join(ps[:3], ", ") + fmt.Sprintf(" and %d more", len(ps)-3)
		}
		return strings.Join(ps, ", ")
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "added "+name(added))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+name(removed))
	}
	return "list " + prefix + ": " + strings.Join(parts, "; ")
}

// sameData reports whether two secrets' data are equal as JSON.
func sameData(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !sameJSON(va, vb) {
			return false
		}
	}
	return true
}

func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	x, errA := decodeAny(a)
	y, errB := decodeAny(b)
	return errA == nil && errB == nil && reflect.DeepEqual(x, y)
}

func decodeAny(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// followEvents follows the events stream until ctx ends or the stream
// ends for good; it runs on its own goroutine and only sends.
func (w *Watcher) followEvents(ctx context.Context) {
	opt := EventsOptions{OnConnect: func() {
		select {
		case w.connCh <- struct{}{}:
		default:
		}
	}}
	err := w.api.Events(ctx, opt, func(ev Event) {
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
	w.poll(ctx)
}

func (w *Watcher) onEventsEnd(err error) {
	w.evUp = false
	if errors.Is(err, ErrEventsNotSupported) {
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
func (w *Watcher) onEvents(ctx context.Context, ev Event) {
	paths := map[string]bool{}
	lists := map[Source]bool{}
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
func (w *Watcher) noteEvent(ev Event, paths map[string]bool, lists map[Source]bool) {
	if ev.Type == EventLeaseRevoked {
		w.onLeaseRevoked(ev)
		return
	}
	p := ev.Data.Path
	if p == "" {
		return
	}
	src := StaticSource(p, 0)
	if old := w.latestSecret(src); old != nil {
		if ev.Type == EventSecretDeleted || ev.Data.Version == 0 || ev.Data.Version != old.Version {
			paths[p] = true
		}
	}
	for ls, entries := range w.cur.Lists {
		if !strings.HasPrefix(p, ls.Path) {
			continue
		}
		listed := slices.ContainsFunc(entries, func(e ListEntry) bool { return e.Path == p })
		if listed == (ev.Type == EventSecretDeleted) {
			lists[ls] = true
		}
	}
}
