package run

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scailabs/scaivault-run/watch"
)

// The status endpoint's view of the run (DESIGN.md, "Operating it"). The
// board is written by those who know: the supervisor loop (as its
// Observer), the watcher (OnState) and the client (as its
// ResponseObserver, in status_server.go); each write is a short copy under
// a mutex or an atomic store, so that none of them ever waits for a
// client of the endpoint. The handlers read a copy (view) and compute
// from it; they never call into the loop or the watcher.

// board is the published state of one run.
type board struct {
	started time.Time // when scaivault-run started
	metrics *statusMetrics

	watch atomic.Pointer[watch.State] // nil until the watcher runs

	mu      sync.Mutex
	child   childView
	everRan bool // a child was started at least once (files only: the files were rendered)
	done    bool // the supervisor loop has ended
	// filesOnly: no child (files-only mode): ready means every file is fresh.
	filesOnly bool
	fallback  *fallbackView // the child runs on the state file (state_fallback.go)
	state     *stateRun     // --state-file: its write counts; nil without
}

// fallbackView is a start on the state file, until the server answers.
type fallbackView struct {
	Since      time.Time // when the child was given the state
	ResolvedAt time.Time // the state's
	Ends       []fallbackEnd
	Refs       []refDoc // what the child was given, for /status
	// StaleAfter is how long after Since the child counts as running on
	// stale values, as a running child does once the server stops
	// answering (staleAfter poll intervals).
	StaleAfter time.Duration
}

// fallbackEnd is the end of a lease or certificate the child was given
// from the state file.
type fallbackEnd struct {
	Kind    string // "lease", "certificate"
	Ref     string
	LeaseID string
	At      time.Time
}

// childView is the child as the loop last told it.
type childView struct {
	Pid      int
	Up       bool
	Started  time.Time // the current (or last) child's start
	Restarts uint64
	Reloads  uint64
}

// view is a copy of the board, for one answer.
type view struct {
	Started   time.Time
	Child     childView
	EverRan   bool
	Done      bool
	FilesOnly bool
	Watch     *watch.State // nil: nothing watched (yet)
	Fallback  *fallbackView
	// StateFile: --state-file is on; StateWrites and StateWriteFailures
	// count its writes.
	StateFile                       bool
	StateWrites, StateWriteFailures uint64
}

func newBoard(now time.Time) *board {
	return &board{started: now, metrics: newStatusMetrics()}
}

func (b *board) view() view {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := view{Started: b.started, Child: b.child, EverRan: b.everRan, Done: b.done, FilesOnly: b.filesOnly, Watch: b.watch.Load(), Fallback: b.fallback}
	if b.state != nil {
		v.StateFile, v.StateWrites, v.StateWriteFailures = true, b.state.writes.Load(), b.state.writeFails.Load()
	}
	return v
}

// Observer of the supervisor: on Run's goroutine, never blocking.

func (b *board) ChildStarted(pid int, at time.Time) {
	b.mu.Lock()
	b.child.Pid, b.child.Up, b.child.Started = pid, true, at
	b.everRan = true
	b.mu.Unlock()
}

func (b *board) ChildExited(pid int) {
	b.mu.Lock()
	if b.child.Pid == pid {
		b.child.Up = false
	}
	b.mu.Unlock()
}

func (b *board) Restarting(reason string) {
	b.metrics.restart(reason)
	b.mu.Lock()
	b.child.Restarts++
	b.mu.Unlock()
}

func (b *board) Reloaded() {
	b.metrics.reloads.Inc()
	b.mu.Lock()
	b.child.Reloads++
	b.mu.Unlock()
}

func (b *board) CommandEnded(result string) {
	if c := b.metrics.commands[result]; c != nil {
		c.Inc()
	}
}

// rendered: files only, the first render's files are written.
func (b *board) rendered() {
	b.mu.Lock()
	b.everRan = true
	b.mu.Unlock()
}

func (b *board) LoopDone() {
	b.mu.Lock()
	b.child.Up, b.done = false, true
	b.mu.Unlock()
}

// setWatch is the watcher's OnState.
func (b *board) setWatch(s *watch.State) { b.watch.Store(s) }

// healthy: scaivault-run is starting up or its supervisor loop runs; not
// once the loop has ended (it is exiting).
func (v view) healthy() bool { return !v.Done }

// notReady is one reason /readyz answers 503. It names references, never
// values.
type notReady struct {
	Reason    string    `json:"reason"`
	Reference string    `json:"reference,omitempty"`
	LeaseID   string    `json:"lease_id,omitempty"`
	Since     time.Time `json:"since,omitzero"`
}

// staleAfter is how many poll intervals without an answer make a watched
// secret stale while the events stream is down.
const staleAfter = 2

// readiness is what /readyz answers at now: ready when the child runs (or,
// files only, once the files are rendered) and nothing it (or they) uses
// is stale. A watched secret is stale when the events
// stream is down and the server has not answered for it within
// staleAfter poll intervals, counted from its last refresh or from when
// the stream went down, whichever is later (while the stream was up, the
// events kept it fresh). A lease or certificate is stale once past its end.
// On the state file (a fallback start) the child is ready for staleAfter
// poll intervals from the fallback start, as one whose server stopped
// answering then, and not once a lease or certificate it was given from
// the file has ended.
func readiness(v view, now time.Time) []notReady {
	switch {
	case v.Done && v.FilesOnly:
		return []notReady{{Reason: "exiting"}}
	case !v.EverRan && v.FilesOnly:
		return []notReady{{Reason: "starting: the files are not rendered yet"}}
	case v.FilesOnly:
	case v.Done:
		return []notReady{{Reason: "exiting: the child has ended"}}
	case !v.EverRan:
		return []notReady{{Reason: "starting: the child has not started yet"}}
	case !v.Child.Up:
		return []notReady{{Reason: "the child is not running (restarting)"}}
	}
	if f := v.Fallback; f != nil {
		// On the state file (a fallback start) the child is ready as a
		// running child is when the server stops answering: for
		// staleAfter poll intervals, counted from the fallback start (its
		// values were the server's a moment before, as far as anything
		// can tell), then not until the server answers; /status and
		// scaivault_run_state_fallback say "fallback" meanwhile, and so
		// does /readyz's answer. What it was given that has ended is
		// stale at once.
		var out []notReady
		if f.StaleAfter > 0 && now.Sub(f.Since) > f.StaleAfter {
			out = append(out, notReady{Reason: fmt.Sprintf("running on the state file (fallback) for over %v (%d poll intervals) while the server does not answer", f.StaleAfter, staleAfter), Since: f.Since})
		}
		for _, e := range f.Ends {
			if !now.Before(e.At) {
				out = append(out, notReady{Reason: e.Kind + " from the state file (fallback) past its end", Reference: e.Ref, LeaseID: e.LeaseID, Since: e.At})
			}
		}
		return out
	}
	w := v.Watch
	if w == nil {
		return nil
	}
	var out []notReady
	if !w.EventsConnected {
		limit := staleAfter * w.PollInterval
		for _, s := range w.Secrets {
			fresh := s.Refreshed
			if w.EventsDownSince.After(fresh) {
				fresh = w.EventsDownSince
			}
			if s.Pinned || now.Sub(fresh) <= limit {
				continue
			}
			out = append(out, notReady{
				Reason:    fmt.Sprintf("secret not refreshed for over %v (%d poll intervals) while the events stream is down", limit, staleAfter),
				Reference: s.Ref, Since: s.Refreshed,
			})
		}
	}
	for _, l := range w.Leases {
		if !now.Before(l.ExpiresAt) {
			out = append(out, notReady{Reason: "lease past its end", Reference: l.Ref, LeaseID: l.LeaseID, Since: l.ExpiresAt})
		}
	}
	for _, c := range w.Certs {
		if !now.Before(c.ExpiresAt) {
			out = append(out, notReady{Reason: "certificate past its end", Reference: c.Ref, Since: c.ExpiresAt})
		}
	}
	return out
}

// statusDoc is /status: what runs on what, never a value.
type statusDoc struct {
	Ready           bool       `json:"ready"`
	NotReady        []notReady `json:"not_ready,omitempty"`
	Started         time.Time  `json:"started"` // scaivault-run's start
	Child           *childDoc  `json:"child"`   // null before the first child
	EventsConnected bool       `json:"events_connected"`
	LastRefresh     time.Time  `json:"last_refresh_success,omitzero"`
	PollInterval    string     `json:"poll_interval,omitempty"`
	References      []refDoc   `json:"references"`
	Lists           []listDoc  `json:"lists,omitempty"`
	// Fallback: the child runs on the state file, since, on a state
	// resolved at state_resolved_at; absent once the server answered.
	Fallback *fallbackDoc `json:"fallback,omitempty"`
}

type fallbackDoc struct {
	Since           time.Time `json:"since"`
	StateResolvedAt time.Time `json:"state_resolved_at"`
}

type childDoc struct {
	Pid      int       `json:"pid"`
	Running  bool      `json:"running"`
	Started  time.Time `json:"started"`
	Restarts uint64    `json:"restarts"`
	Reloads  uint64    `json:"reloads"`
}

// refDoc is one reference the child runs on.
type refDoc struct {
	Kind      string    `json:"kind"` // secret, lease, certificate
	Reference string    `json:"reference"`
	Path      string    `json:"path,omitempty"`
	Version   int       `json:"version,omitempty"`
	Refreshed time.Time `json:"refreshed,omitzero"`
	Engine    string    `json:"engine,omitempty"`
	Role      string    `json:"role,omitempty"`
	Account   string    `json:"account,omitempty"`  // ACME certificates
	OrderID   string    `json:"order_id,omitempty"` // ACME certificates
	LeaseID   string    `json:"lease_id,omitempty"`
	Serial    string    `json:"serial_number,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Lost      bool      `json:"lost,omitempty"`
}

type listDoc struct {
	Prefix  string `json:"prefix"`
	Entries int    `json:"entries"`
	Lost    bool   `json:"lost,omitempty"`
}

// document builds /status from a view.
func document(v view, now time.Time) statusDoc {
	nr := readiness(v, now)
	d := statusDoc{Ready: len(nr) == 0, NotReady: nr, Started: v.Started, References: []refDoc{}}
	if f := v.Fallback; f != nil {
		d.Fallback = &fallbackDoc{Since: f.Since, StateResolvedAt: f.ResolvedAt}
	}
	if v.EverRan && !v.FilesOnly {
		c := v.Child
		d.Child = &childDoc{Pid: c.Pid, Running: c.Up, Started: c.Started, Restarts: c.Restarts, Reloads: c.Reloads}
	}
	w := v.Watch
	if w == nil {
		if f := v.Fallback; f != nil {
			d.References = append(d.References, f.Refs...) // the watcher starts once the server answers
		}
		return d
	}
	d.EventsConnected, d.LastRefresh, d.PollInterval = w.EventsConnected, w.LastSuccess, w.PollInterval.String()
	for _, s := range w.Secrets {
		d.References = append(d.References, refDoc{Kind: "secret", Reference: s.Ref, Path: s.Path, Version: s.Version, Refreshed: s.Refreshed, Lost: s.Lost})
	}
	for _, l := range w.Leases {
		d.References = append(d.References, refDoc{Kind: "lease", Reference: l.Ref, Engine: l.Engine, Role: l.Role, LeaseID: l.LeaseID, ExpiresAt: l.ExpiresAt, Lost: l.Lost})
	}
	for _, c := range w.Certs {
		d.References = append(d.References, refDoc{Kind: "certificate", Reference: c.Ref, Role: c.Role, Account: c.Account,
			OrderID: c.OrderID, Serial: c.Serial, ExpiresAt: c.ExpiresAt})
	}
	for _, l := range w.Lists {
		d.Lists = append(d.Lists, listDoc{Prefix: l.Prefix, Entries: l.Entries, Lost: l.Lost})
	}
	return d
}
