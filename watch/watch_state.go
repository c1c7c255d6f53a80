package watch

import (
	"slices"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// What the watcher publishes for the status endpoint (WatchConfig.OnState):
// an immutable copy of what it watches and how fresh it is, made on its
// own goroutine after every round, never a value.

// State is the watcher's view of what the child runs on. Its times are by
// our clock. It holds no secret value.
type State struct {
	At              time.Time     // when it was made
	PollInterval    time.Duration // static polls while the events stream is down
	EventsConnected bool          // the change-events stream is up
	// EventsDownSince is when the stream was last seen down (the start
	// of watching when it never came up); zero while it is up.
	EventsDownSince time.Time
	// LastSuccess is the last time the server answered a refresh (a
	// poll, a read an event asked for, a renewal, a replacement, a
	// re-issue); the start of watching until the first.
	LastSuccess time.Time
	Secrets     []SecretState // static secrets, by reference
	Lists       []ListState
	Leases      []LeaseState
	Certs       []CertState
}

// SecretState is one watched static secret.
type SecretState struct {
	Ref       string // the reference's description (fetch.Source.String)
	Path      string
	Version   int       // the version the child runs on
	Pinned    bool      // ?version=N: never polled, never stale
	Refreshed time.Time // the last time the server answered for it
	Lost      bool      // deleted or no longer readable (lost for good)
}

// ListState is one watched list (a template's `secrets "prefix"`).
type ListState struct {
	Prefix  string
	Entries int
	Lost    bool
}

// LeaseState is one lease the child runs on.
type LeaseState struct {
	Ref       string
	Engine    string
	Role      string
	LeaseID   string
	ExpiresAt time.Time // its end by our clock, renewals included
	Lost      bool      // revoked, unknown to the server, or denied
}

// CertState is one certificate the child runs on: a PKI role's, or
// (Account set) an ACME order's.
type CertState struct {
	Ref       string
	Role      string // PKI
	Account   string // ACME: the account's name
	OrderID   string // ACME
	Serial    string
	ExpiresAt time.Time // its end by our clock
}

// publish hands the current state to OnState.
func (w *Watcher) publish(now time.Time) {
	if w.cfg.OnState == nil {
		return
	}
	st := &State{At: now, PollInterval: w.cfg.PollInterval, EventsConnected: w.evUp, LastSuccess: w.lastOK}
	if !w.evUp {
		st.EventsDownSince = w.evDownAt
	}
	for src, sec := range w.cur.Secrets {
		_, lost := w.lost[src]
		st.Secrets = append(st.Secrets, SecretState{
			Ref: src.String(), Path: src.Path, Version: sec.Version, Pinned: src.Version != 0,
			Refreshed: w.refreshed[src], Lost: lost,
		})
	}
	for src, entries := range w.cur.Lists {
		_, lost := w.lost[src]
		st.Lists = append(st.Lists, ListState{Prefix: src.Path, Entries: len(entries), Lost: lost})
	}
	for src, it := range w.leases {
		st.Leases = append(st.Leases, LeaseState{
			Ref: src.String(), Engine: src.Engine, Role: src.Role, LeaseID: it.lease.LeaseID,
			ExpiresAt: it.received.Add(LeaseRemaining(it.lease, it.received)), Lost: it.lost != nil,
		})
	}
	for src, it := range w.certs {
		st.Certs = append(st.Certs, CertState{
			Ref: src.String(), Role: src.PKIRole, Account: src.Account, OrderID: it.cert.OrderID, Serial: it.cert.SerialNumber,
			ExpiresAt: it.received.Add(it.remaining()),
		})
	}
	slices.SortFunc(st.Secrets, func(a, b SecretState) int { return strings.Compare(a.Ref, b.Ref) })
	slices.SortFunc(st.Lists, func(a, b ListState) int { return strings.Compare(a.Prefix, b.Prefix) })
	slices.SortFunc(st.Leases, func(a, b LeaseState) int { return strings.Compare(a.Ref, b.Ref) })
	slices.SortFunc(st.Certs, func(a, b CertState) int { return strings.Compare(a.Ref, b.Ref) })
	w.cfg.OnState(st)
}

// refreshedNow notes that the server answered for src.
func (w *Watcher) refreshedNow(src fetch.Source, now time.Time) {
	w.refreshed[src] = now
}

// succeeded notes a refresh the server answered: the outage (if any) is
// over, and the last success is now.
func (w *Watcher) succeeded(now time.Time) {
	w.out.ok(now)
	w.lastOK = now
}
