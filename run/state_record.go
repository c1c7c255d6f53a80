package run

import (
	"slices"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/watch"
)

// What the state file records, and its age. The age (resolved_at) counts
// from the oldest resolution whose values the state still carries: each
// current static secret and each list has the time the server last
// confirmed it, and a write that carries a value on from an older
// snapshot (one the watcher lost, or one the recovery after a fallback
// could not read again) carries its time on with it. Pinned versions,
// leases and certificates do not count: their values do not change
// behind our back, and they carry their own end.

// record is what was resolved: the snapshot the child runs on, who uses
// each source, and when the server last confirmed it.
type record struct {
	snap  *fetch.Snapshot
	users map[fetch.Source][]string
	// at is, for each current static secret and list of snap, when the
	// server last confirmed it; resolvedAt the oldest of them (the
	// resolution's time when there is none).
	at         map[fetch.Source]time.Time
	resolvedAt time.Time
}

// newRecord is the record of snap resolved at now: what base (the record
// before, or nil) held already, the same value, keeps its time.
func newRecord(snap *fetch.Snapshot, users map[fetch.Source][]string, base *record, now time.Time) *record {
	rec := &record{snap: snap, users: users, at: map[fetch.Source]time.Time{}}
	for src, sec := range snap.Secrets {
		if src.Version != 0 {
			continue // pinned: its value never changes
		}
		rec.at[src] = now
		if base != nil && base.snap.Secrets[src] == sec {
			rec.at[src] = base.timeOf(src, now)
		}
	}
	for src, l := range snap.Lists {
		rec.at[src] = now
		if base != nil && sameSlice(base.snap.Lists[src], l) {
			rec.at[src] = base.timeOf(src, now)
		}
	}
	rec.stamp(now)
	return rec
}

func (r *record) timeOf(src fetch.Source, dflt time.Time) time.Time {
	if t, ok := r.at[src]; ok {
		return t
	}
	return dflt
}

// stamp sets resolvedAt: the oldest time of at, or now.
func (r *record) stamp(now time.Time) {
	r.resolvedAt = now
	for _, t := range r.at {
		if t.Before(r.resolvedAt) {
			r.resolvedAt = t
		}
	}
}

// sameSlice: a and b are the same list as read (not only equal: read
// again, a list is a new slice).
func sameSlice(a, b []fetch.ListEntry) bool {
	return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0]
}

// resolvedFor records a successful resolution for the child: out are the
// templates as rendered, snap what they and the environment were given.
// The snapshot is trimmed to what the plan and the templates use, one way
// for the start-up and the refresher. It never blocks.
func (s *stateRun) resolvedFor(plan *template.Plan, out []template.Rendered, snap *fetch.Snapshot) {
	if s == nil {
		return
	}
	users := usersOf(plan, out)
	srcs := make([]fetch.Source, 0, len(users))
	for src := range users {
		srcs = append(srcs, src)
	}
	s.resolved(snap.Only(srcs), users)
}

// resolved records a successful resolution: snap is what the child runs
// on (or will, once the supervisor has acted), users who uses each
// source. It never blocks.
func (s *stateRun) resolved(snap *fetch.Snapshot, users map[fetch.Source][]string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	base := s.rec
	if base == nil {
		base = s.carried
	}
	s.rec, s.dirty = newRecord(snap, users, base, time.Now()), true
	s.mu.Unlock()
	s.poke()
}

// fellBack records that the child starts on snap, from the previous
// run's state: what a later resolution carries on of it keeps the
// state's time. Nothing is written for it.
func (s *stateRun) fellBack(snap *fetch.Snapshot) {
	rec := newRecord(snap, nil, nil, s.prev.ResolvedAt)
	s.mu.Lock()
	s.carried = rec
	s.mu.Unlock()
}

// confirmed records that the server confirmed every value of the state
// at at (a poll or the events stream found nothing new): the state's age
// starts anew, written at most every confirmEvery. versions are those the
// watcher holds, by path (current versions only); a mismatch means an
// update is in flight and confirms nothing.
func (s *stateRun) confirmed(at time.Time, versions map[string]int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil || at.Sub(s.rec.resolvedAt) < confirmEvery {
		return
	}
	for src, sec := range s.rec.snap.Secrets {
		if v, ok := versions[src.Path]; src.Version == 0 && (!ok || v != sec.Version) {
			return
		}
	}
	rec := *s.rec
	rec.at = make(map[fetch.Source]time.Time, len(s.rec.at))
	for src := range s.rec.at {
		rec.at[src] = at
	}
	rec.stamp(at)
	s.rec, s.dirty = &rec, true
	s.wakeWriter() // not poke: s.mu is held
}

// watchState confirms the state when the watcher has every current
// secret fresh: the events stream is up (it tells every change), or each
// was answered for since; at is the oldest answer. Nothing is confirmed
// while a secret or a list is lost: the state carries its old value.
func (s *stateRun) watchState(ws *watch.State) {
	at := ws.At
	versions := map[string]int{}
	if !ws.EventsConnected {
		at = ws.LastSuccess
		for _, sec := range ws.Secrets {
			if !sec.Pinned && (at.IsZero() || sec.Refreshed.Before(at)) {
				at = sec.Refreshed
			}
		}
	}
	for _, sec := range ws.Secrets {
		if sec.Lost {
			return
		}
		if !sec.Pinned {
			versions[sec.Path] = sec.Version
		}
	}
	for _, l := range ws.Lists {
		if l.Lost {
			return
		}
	}
	s.confirmed(at, versions)
}

// usersOf maps each source to who uses it: the variables and imports of
// the plan, and the templates that read it.
func usersOf(plan *template.Plan, out []template.Rendered) map[fetch.Source][]string {
	users := plan.UsersBySource()
	for _, o := range out {
		for _, src := range o.Used {
			if w := "template " + o.Spec.Dst; !slices.Contains(users[src], w) {
				users[src] = append(users[src], w)
			}
		}
	}
	return users
}
