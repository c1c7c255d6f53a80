package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/scailabs/scaivault-run/fetch"
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

func (w *Watcher) listSources() []fetch.Source {
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
// then the server's Retry-After, if it sent one. One attempt counts as one
// failure for the outage log, however many requests failed.
func (w *Watcher) readStatic(ctx context.Context, paths []string, lists []fetch.Source) (ok bool, wait time.Duration) {
	var failed error
	fail := func(err error) {
		wait = max(wait, serverWait(err))
		if failed == nil {
			failed = err
		}
	}
	if len(paths) > 0 {
		secrets, errs, err := w.api.BatchRead(ctx, paths)
		switch {
		case ctx.Err() != nil:
			return false, 0
		case err != nil && fetch.IsTemporary(err):
			fail(err)
		case err != nil:
			w.lose(&LostError{Err: err})
		}
		for _, p := range paths {
			src := fetch.StaticSource(p, 0)
			if sec := secrets[p]; sec != nil {
				w.noteSecret(src, sec)
			} else if e := errs[p]; e != nil && fetch.IsTemporary(e) {
				fail(fmt.Errorf("%s: %w", src.Describe(), e))
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
		case fetch.IsTemporary(err):
			fail(err)
		default:
			w.lost[src] = err
			w.lose(&LostError{Source: src, Err: err})
		}
	}
	switch {
	case failed != nil:
		w.out.fail(time.Now(), failed, max(wait, RetryBackoff(w.pollFails+1, w.cfg.PollInterval, 0.5)))
	case len(paths) > 0 || len(lists) > 0:
		w.succeeded(time.Now())
	}
	return failed == nil, wait
}

// latestSecret is src's secret as the next Update would hold it.
func (w *Watcher) latestSecret(src fetch.Source) *fetch.Secret {
	if w.draft != nil {
		if s, ok := w.draft.snap.Secrets[src]; ok {
			return s
		}
	}
	return w.cur.Secrets[src]
}

// noteSecret compares a secret read with the one the child runs on. A new
// version with the same data is no change: the snapshot takes it silently.
func (w *Watcher) noteSecret(src fetch.Source, sec *fetch.Secret) {
	w.refreshedNow(src, time.Now())
	if _, was := w.lost[src]; was {
		delete(w.lost, src)
		w.log.Info("secret readable again", "secret", src.Path, "version", sec.Version)
	}
	old := w.latestSecret(src)
	switch {
	case old != nil && old.Version == sec.Version && sameData(old.Data, sec.Data) && !reflect.DeepEqual(old.Metadata, sec.Metadata):
		// A metadata patch makes no version: a change for templates
		// that use .Metadata, nothing else (the env holds data only).
		w.change(src, fmt.Sprintf("secret %s v%d metadata", src.Path, sec.Version)).snap.Secrets[src] = sec
		return
	case old != nil && old.Version == sec.Version && sameData(old.Data, sec.Data):
		return
	case old != nil && sameData(old.Data, sec.Data):
		w.log.Debug("new version with the same data: no change", "secret", src.Path, "version", sec.Version)
		if w.draft != nil && w.draft.snap.Secrets[src] != nil {
			w.draft.snap.Secrets[src] = sec
		} else {
			w.cur = w.cur.Merge(&fetch.Snapshot{Secrets: map[fetch.Source]*fetch.Secret{src: sec}})
		}
		return
	}
	reason := fmt.Sprintf("secret %s v%d", src.Path, sec.Version)
	if old != nil {
		reason = fmt.Sprintf("secret %s v%d→v%d keys %s", src.Path, old.Version, sec.Version, changedKeys(old.Data, sec.Data))
	}
	w.change(src, reason).snap.Secrets[src] = sec
}

// changedKeys names the keys whose values differ (added and removed ones
// too), sorted, at most five: `password,username`.
func changedKeys(a, b map[string]json.RawMessage) string {
	var keys []string
	for k, va := range a {
		if vb, ok := b[k]; !ok || !sameJSON(va, vb) {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > 5 {
		return strings.Join(keys[:5], ",") + fmt.Sprintf(",+%d more", len(keys)-5)
	}
	return strings.Join(keys, ",")
}

// noteList compares a list read with the one the child runs on: only the
// set of paths counts.
func (w *Watcher) noteList(src fetch.Source, entries []fetch.ListEntry) {
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

func diffPaths(old, cur []fetch.ListEntry) (added, removed []string) {
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
