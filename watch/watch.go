package watch

import (
	"context"
	"errors"
	"github.com/scailabs/scaivault-run/fetch"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The Watcher keeps a snapshot fresh while a child runs on it (DESIGN.md,
// "Watching and acting"): it polls static secrets and lists, follows the
// change events when the server offers them, renews and replaces leases,
// re-issues certificates, reads ACME orders again for their renewals, and
// sends an Update for each change.
//
// Concurrency: Run owns every piece of the watcher's state on its own
// goroutine; one more goroutine, which Run starts and joins, follows the
// events stream and hands events over on a channel. Each Update waits for
// the receiver's Commit or Reject before the watcher goes on, so that
// watcher and receiver always agree on the snapshot the child runs on.

// Defaults of WatchConfig.
const (
	DefaultPollInterval = 60 * time.Second
	DefaultSafetyPoll   = 5 * time.Minute
)

// WatchConfig configures a Watcher. The zero value of each field is its
// documented default.
type WatchConfig struct {
	Client       *fetch.Client
	PollInterval time.Duration // static polls without events; 0: 60s
	SafetyPoll   time.Duration // static polls while the events stream is up; 0: 5m
	NoEvents     bool          // poll only, never follow /v1/events
	// OnLost is called on the watcher's goroutine, on every attempt, while
	// a source is lost for good (deleted, access revoked, lease revoked);
	// it must not block. The watcher has logged the loss at error level.
	OnLost func(*LostError)
	// Ledger owns the leases the watcher generates; the caller runs it
	// (Ledger.Run) and closes it. nil: the watcher makes one of Client's
	// and runs it, and what is still held when Run returns is left to its
	// ttl.
	Ledger *Ledger
	Logger *slog.Logger   // nil: discard
	Rand   func() float64 // in [0,1); nil: math/rand/v2
	// OnState, when set, is handed a new State on the watcher's goroutine
	// when Run starts and after every round; it must not block (store the
	// pointer). The State is never changed afterwards.
	OnState func(*State)
}

// Update is a change of what the child runs on. Snapshot is complete (every
// watched source, changed or not); Reasons says what changed, for the log
// (paths, versions, lease ids, serials, never values). The leases the
// child ran on that Snapshot no longer holds are superseded: the receiver
// releases them to the Ledger once the child runs on the new ones (the
// Ledger knows their renewed times). Every Update must be answered with
// one Commit or Reject before the next comes.
//
// ActBy, when set, is when the child must run on Snapshot at the latest:
// the earliest end, by our clock, of a lease or certificate it replaces.
type Update struct {
	Snapshot *fetch.Snapshot
	Reasons  []string
	ActBy    time.Time
}

// LostError is a watched source lost for good: the secret was deleted
// (404), access to it was revoked (403, or a credential the server no
// longer takes), or the server revoked or forgot a lease.
type LostError struct {
	Source  fetch.Source // zero: every watched secret (the whole batch read failed)
	LeaseID string       // the lease lost, for a dynamic source
	Err     error
}

func (e *LostError) Error() string {
	what := "watched secrets"
	if e.Source.Kind != 0 {
		what = e.Source.Describe()
	}
	if e.LeaseID != "" {
		what = "lease " + e.LeaseID + " of " + what
	}
	return what + " lost: " + e.Err.Error()
}

func (e *LostError) Unwrap() error { return e.Err }

// watchAPI is what the watcher needs of a Client (tests fake it).
type watchAPI interface {
	BatchRead(ctx context.Context, paths []string) (map[string]*fetch.Secret, map[string]error, error)
	List(ctx context.Context, prefix string) ([]fetch.ListEntry, error)
	Renew(ctx context.Context, leaseID, increment string) (*fetch.Lease, error)
	Generate(ctx context.Context, engine, role, ttl string) (*fetch.Lease, error)
	Revoke(ctx context.Context, leaseID string) error
	Issue(ctx context.Context, role string, req fetch.IssueRequest) (*fetch.Cert, error)
	ACMEOrder(ctx context.Context, id string) (*fetch.ACMEOrder, error)
	Events(ctx context.Context, opt fetch.EventsOptions, handle func(fetch.Event)) error
}

// Watcher watches the sources of one snapshot. Create it with NewWatcher,
// call Run once, and answer each Update from Updates with Commit or Reject.
type Watcher struct {
	cfg     WatchConfig
	api     watchAPI
	ledger  *Ledger
	ownLedg bool // made by the watcher, run by Run
	log     *slog.Logger
	rnd     func() float64
	updates chan Update
	replies chan reply
	evCh    chan fetch.Event
	connCh  chan struct{}
	dropCh  chan struct{}
	endCh   chan error
	started atomic.Bool

	// Owned by Run's goroutine.
	cur       *fetch.Snapshot
	leases    map[fetch.Source]*leaseItem
	certs     map[fetch.Source]*certItem
	lost      map[fetch.Source]error // static sources and lists lost for good
	nextPoll  time.Time
	pollFails int
	evUp      bool // the events stream is connected (not dropped, not ended)
	evSeen    bool // it connected at least once
	out       outage
	draft     *draft
	lastOK    time.Time                  // the last refresh the server answered
	evDownAt  time.Time                  // when the events stream was last seen down
	refreshed map[fetch.Source]time.Time // static sources: the last answer for each
}

type reply struct {
	taken bool
	snap  *fetch.Snapshot
}

// NewWatcher returns a watcher of snap's entries for the sources in used
// (those are what the child runs on; the rest of snap is ignored).
func NewWatcher(cfg WatchConfig, snap *fetch.Snapshot, used []fetch.Source) *Watcher {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.SafetyPoll <= 0 {
		cfg.SafetyPoll = DefaultSafetyPoll
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	w := &Watcher{
		cfg: cfg, log: log, rnd: rnd,
		updates: make(chan Update), replies: make(chan reply, 1),
		evCh: make(chan fetch.Event, 64), connCh: make(chan struct{}, 1), dropCh: make(chan struct{}, 1), endCh: make(chan error, 1),
		cur:    snap.Only(used),
		leases: map[fetch.Source]*leaseItem{}, certs: map[fetch.Source]*certItem{}, lost: map[fetch.Source]error{},
		out: outage{log: log}, refreshed: map[fetch.Source]time.Time{},
	}
	if cfg.Client != nil {
		w.api = cfg.Client
	}
	w.ledger = cfg.Ledger
	if w.ledger == nil {
		w.ledger, w.ownLedg = NewLedger(cfg.Client, log), true
	}
	return w
}

// Updates delivers the watcher's updates; it is closed when Run returns.
func (w *Watcher) Updates() <-chan Update { return w.updates }

// Commit answers the last Update: snap, restricted to the sources in used,
// is what the child runs on from now on (or will, once the supervisor has
// acted). It is the Update's snapshot plus whatever the receiver had to
// resolve anew, less what is no longer used. It never blocks.
func (w *Watcher) Commit(snap *fetch.Snapshot, used []fetch.Source) {
	w.reply(reply{taken: true, snap: snap.Only(used)})
}

// Reject answers the last Update: it could not be applied, the child stays
// on the previous snapshot. Leases the watcher generated for it are
// revoked; what changed on the server is seen again on the next attempt.
func (w *Watcher) Reject() { w.reply(reply{}) }

func (w *Watcher) reply(r reply) {
	select {
	case w.replies <- r:
	default: // no Update is waiting for an answer
	}
}

// Run watches until ctx ends, then returns nil. It may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("watcher: Run called twice")
	}
	defer close(w.updates)
	if w.api == nil {
		return errors.New("watcher: no client")
	}
	if w.cfg.Client != nil {
		// While the watcher runs, the client warns about outages
		// (fetch/health.go); the start-up gate logged its own.
		defer w.cfg.Client.LogOutages()()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if !w.cfg.NoEvents {
		wg.Go(func() { w.followEvents(ctx) })
	}
	if w.ownLedg {
		wg.Go(func() { w.ledger.Run(ctx) })
	}
	now := time.Now()
	w.adopt(w.cur, now)
	w.lastOK, w.evDownAt = now, now // the start-up gate has just read everything
	for src := range w.cur.Secrets {
		w.refreshedNow(src, now)
	}
	w.nextPoll = NextPoll(now, w.cfg.PollInterval, w.rnd())
	w.log.Info("watching for changes", "secrets", len(w.staticPaths()), "lists", len(w.cur.Lists),
		"leases", len(w.leases), "certificates", len(w.certs), "poll_interval", w.cfg.PollInterval)
	w.publish(now)
	timer := time.NewTimer(time.Until(w.nextDue()))
	defer timer.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			w.runDue(ctx)
		case ev := <-w.evCh:
			w.onEvents(ctx, ev)
		case <-w.connCh:
			w.onConnect(ctx)
		case <-w.dropCh:
			w.onDrop()
		case err := <-w.endCh:
			w.onEventsEnd(err)
		}
		w.flush(ctx)
		w.publish(time.Now())
		timer.Reset(time.Until(w.nextDue()))
	}
	return nil
}

// interval is the time between static polls: the safety poll while the
// events stream is up, else the poll interval.
func (w *Watcher) interval() time.Duration {
	if w.evUp {
		return w.cfg.SafetyPoll
	}
	return w.cfg.PollInterval
}

// nextDue is the earliest scheduled poll, renewal, replacement or re-issue.
func (w *Watcher) nextDue() time.Time {
	due := w.nextPoll
	for _, it := range w.leases {
		if !it.pending && it.plan.At.Before(due) {
			due = it.plan.At
		}
	}
	for _, it := range w.certs {
		if !it.pending && it.at.Before(due) {
			due = it.at
		}
	}
	return due
}

// runDue does everything whose time has come.
func (w *Watcher) runDue(ctx context.Context) {
	if !time.Now().Before(w.nextPoll) {
		w.poll(ctx)
	}
	for _, src := range sortedSources(maps.Keys(w.leases)) {
		if it := w.leases[src]; !it.pending && !time.Now().Before(it.plan.At) && ctx.Err() == nil {
			w.stepLease(ctx, it)
		}
	}
	for _, src := range sortedSources(maps.Keys(w.certs)) {
		if it := w.certs[src]; !it.pending && !time.Now().Before(it.at) && ctx.Err() == nil {
			w.stepCert(ctx, it)
		}
	}
}

func sortedSources(seq func(func(fetch.Source) bool)) []fetch.Source {
	return slices.SortedFunc(seq, func(a, b fetch.Source) int { return strings.Compare(a.String(), b.String()) })
}

// draft collects the changes of one round of the loop into one Update.
type draft struct {
	snap      *fetch.Snapshot // the changed entries
	reasons   []string
	actBy     time.Time      // the earliest end of what it replaces
	generated []*fetch.Lease // new leases: revoked when the update is not taken
	accept    []func(now time.Time)
	reject    []func(now time.Time)
}

// endsAt notes that what the draft replaces ends at t.
func (d *draft) endsAt(t time.Time) {
	if d.actBy.IsZero() || t.Before(d.actBy) {
		d.actBy = t
	}
}

// change records that src changed, for reason, and returns the draft.
func (w *Watcher) change(src fetch.Source, reason string) *draft {
	if w.draft == nil {
		w.draft = &draft{snap: fetch.NewSnapshot()}
	}
	d := w.draft
	d.reasons = append(d.reasons, reason)
	return d
}

// flush sends the round's Update and waits for its answer.
func (w *Watcher) flush(ctx context.Context) {
	d := w.draft
	if d == nil {
		return
	}
	w.draft = nil
	u := Update{Snapshot: w.cur.Merge(d.snap), Reasons: d.reasons, ActBy: d.actBy}
	select {
	case w.updates <- u:
	case <-ctx.Done():
		w.revokeUnused(d.generated, nil)
		return
	}
	select {
	case r := <-w.replies:
		w.answered(d, r)
	case <-ctx.Done():
		select {
		case r := <-w.replies:
			w.answered(d, r)
		default:
			w.revokeUnused(d.generated, nil)
		}
	}
}

// answered applies the receiver's answer to an update.
func (w *Watcher) answered(d *draft, r reply) {
	now := time.Now()
	if !r.taken {
		w.log.Debug("update rejected; keeping the previous snapshot", "reasons", d.reasons)
		for _, f := range d.reject {
			f(now)
		}
		w.revokeUnused(d.generated, nil)
		return
	}
	for _, f := range d.accept {
		f(now)
	}
	w.adopt(r.snap, now)
	w.revokeUnused(d.generated, r.snap)
}

// revokeUnused releases the leases of generated that keep does not hold:
// the watcher made them, nobody took them.
func (w *Watcher) revokeUnused(generated []*fetch.Lease, keep *fetch.Snapshot) {
	var unused []*fetch.Lease
	for _, l := range generated {
		if !holdsLease(keep, l.LeaseID) {
			unused = append(unused, l)
		}
	}
	w.ledger.Release(unused, Unused, 0)
}

// holdsLease reports whether snap holds the lease id.
func holdsLease(snap *fetch.Snapshot, id string) bool {
	if snap == nil {
		return false
	}
	for _, l := range snap.Leases {
		if l.LeaseID == id {
			return true
		}
	}
	return false
}

// adopt makes snap the current snapshot: leases and certificates it holds
// anew get a schedule, those it no longer holds are dropped.
func (w *Watcher) adopt(snap *fetch.Snapshot, now time.Time) {
	w.cur = snap
	for src, l := range snap.Leases {
		if it := w.leases[src]; it == nil || it.lease.LeaseID != l.LeaseID {
			w.leases[src] = w.newLeaseItem(src, l, now)
		}
	}
	for src := range w.leases {
		if _, ok := snap.Leases[src]; !ok {
			delete(w.leases, src)
		}
	}
	for src, c := range snap.Certs {
		if it := w.certs[src]; it == nil || it.cert.SerialNumber != c.SerialNumber {
			w.certs[src] = w.newCertItem(src, c, now)
		}
	}
	for src := range w.certs {
		if _, ok := snap.Certs[src]; !ok {
			delete(w.certs, src)
		}
	}
	for src := range w.lost {
		if !snap.Has(src) {
			delete(w.lost, src)
		}
	}
}
