package run

import (
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
)

// The state's age counts from the oldest resolution whose values it
// carries: a value carried on from the record before keeps its time, a
// value read anew (a new secret, even of the same version) is now; pinned
// versions, leases and certificates do not count; a confirmation moves
// every time on.
func TestRecordAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	db, other := fetch.StaticSource("app/db", 0), fetch.StaticSource("app/other", 0)
	pinned, list := fetch.StaticSource("app/pinned", 3), fetch.ListSource("app/")
	kept, entries := &fetch.Secret{Version: 1}, []fetch.ListEntry{{Path: "app/a", Version: 1}}
	snap := fetch.NewSnapshot()
	snap.Secrets[db], snap.Secrets[other], snap.Secrets[pinned] = &fetch.Secret{Version: 1}, kept, &fetch.Secret{Version: 3}
	snap.Lists[list] = entries
	base := newRecord(snap, nil, nil, t0)
	if !base.resolvedAt.Equal(t0) {
		t.Fatalf("first record resolved at %v, want %v", base.resolvedAt, t0)
	}

	// app/db read again (same version, a new answer), app/other carried
	// on (lost), the list carried on, the pinned one read again.
	next := fetch.NewSnapshot()
	next.Secrets[db], next.Secrets[other], next.Secrets[pinned] = &fetch.Secret{Version: 1}, kept, &fetch.Secret{Version: 3}
	next.Lists[list] = entries
	next.Leases[fetch.Source{Kind: fetch.Dynamic, Engine: "db", Role: "ro"}] = &fetch.Lease{LeaseID: "l"}
	rec := newRecord(next, nil, base, t1)
	if !rec.resolvedAt.Equal(t0) || !rec.at[db].Equal(t1) || !rec.at[other].Equal(t0) || !rec.at[list].Equal(t0) {
		t.Errorf("carried on: resolved %v, db %v, other %v, list %v", rec.resolvedAt, rec.at[db], rec.at[other], rec.at[list])
	}
	if _, ok := rec.at[pinned]; ok {
		t.Error("a pinned version counts for the age")
	}

	// Everything read anew.
	fresh := fetch.NewSnapshot()
	fresh.Secrets[db], fresh.Secrets[other] = &fetch.Secret{Version: 1}, &fetch.Secret{Version: 1}
	fresh.Lists[list] = []fetch.ListEntry{{Path: "app/a", Version: 1}}
	if rec := newRecord(fresh, nil, rec, t2); !rec.resolvedAt.Equal(t2) {
		t.Errorf("all read anew: resolved %v, want %v", rec.resolvedAt, t2)
	}

	// Only pinned values and leases: the resolution's time.
	only := fetch.NewSnapshot()
	only.Secrets[pinned] = &fetch.Secret{Version: 3}
	if rec := newRecord(only, nil, nil, t2); !rec.resolvedAt.Equal(t2) {
		t.Errorf("nothing that ages: resolved %v, want %v", rec.resolvedAt, t2)
	}

	s := &stateRun{rec: rec, wake: make(chan struct{}, 1)}
	s.confirmed(t2, map[string]int{"app/db": 1, "app/other": 1})
	if !s.rec.resolvedAt.Equal(t2) || !s.rec.at[other].Equal(t2) {
		t.Errorf("confirmed at %v: resolved %v, other %v", t2, s.rec.resolvedAt, s.rec.at[other])
	}
}

// A state resolved in the future by our clock (a clock stepped back, or
// another machine's) has no age to check --fallback-max-age against: no
// fallback from it. A minute of difference is tolerated.
func TestFallbackRefusesFutureState(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		ahead time.Duration
		want  string
	}{
		{time.Hour, "resolved 1h0m0s in the future"},
		{30 * time.Second, ""},
	} {
		s := &stateRun{prev: &statefile.Doc{ResolvedAt: now.Add(tt.ahead)}, opts: stateOptions{maxAge: 24 * time.Hour}, revoked: map[string]bool{}}
		_, _, err := s.fallbackSnapshot(now)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v ahead: %v", tt.ahead, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v ahead: %v, want %q", tt.ahead, err, tt.want)
		}
	}
}
