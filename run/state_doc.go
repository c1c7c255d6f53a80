package run

import (
	"cmp"
	"reflect"
	"slices"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
	"github.com/scailabs/scaivault-run/watch"
)

// build is the document of a record: the snapshot's secrets, certificates
// and lists, and every lease of the ledger's table (held), those the child
// runs on with their data. With exit, the table is the one before the
// exit's revocations, and each lease says whether it was revoked (a
// revoked lease's data is left out: it is of no use to anyone).
func (s *stateRun) build(rec *record, held []watch.Held, revoked map[string]bool, exit *exitInfo) *statefile.Doc {
	now := time.Now()
	d := &statefile.Doc{Fingerprint: s.fp, ResolvedAt: rec.resolvedAt, WrittenAt: now, Pid: s.pid,
		Secrets: []statefile.Secret{}, Leases: []statefile.Lease{}, Certs: []statefile.Cert{}, Lists: []statefile.List{}}
	snap := rec.snap
	if snap == nil {
		snap = fetch.NewSnapshot()
	}
	for src, sec := range snap.Secrets {
		d.Secrets = append(d.Secrets, statefile.Secret{Source: statefile.FromSource(src), UsedBy: rec.users[src], Secret: sec})
	}
	for src, c := range snap.Certs {
		d.Certs = append(d.Certs, statefile.Cert{Source: statefile.FromSource(src), UsedBy: rec.users[src], Cert: c, OrderID: c.OrderID})
	}
	for src, l := range snap.Lists {
		d.Lists = append(d.Lists, statefile.List{Source: statefile.FromSource(src), UsedBy: rec.users[src], Entries: l})
	}
	if exit != nil {
		held = exit.held
	}
	seen := map[string]bool{}
	for _, h := range held {
		seen[h.Lease.LeaseID] = true
		l := heldLease(h)
		if sl := snap.Leases[h.Source]; sl != nil && sl.LeaseID == h.Lease.LeaseID && h.Phase == watch.InUse {
			l.Lease, l.UsedBy = sl, rec.users[h.Source]
		}
		d.Leases = append(d.Leases, l)
	}
	for src, sl := range snap.Leases {
		if !seen[sl.LeaseID] && exit == nil { // not expected: every lease is entered when generated
			d.Leases = append(d.Leases, statefile.Lease{
				Source: statefile.FromSource(src), LeaseID: sl.LeaseID, Phase: watch.InUse.String(), UsedBy: rec.users[src],
				ReceivedAt: rec.resolvedAt, Duration: sl.LifeSeconds(), ExpiresAt: rec.resolvedAt.Add(watch.LeaseRemaining(sl, rec.resolvedAt)),
				Renewable: sl.Renewable, MaxExpiresAt: sl.MaxExpiresAt, Lease: sl,
			})
		}
	}
	markRevoked(d, revoked, exit)
	sortDoc(d)
	return d
}

// heldLease is a lease of the ledger's table as the file writes it,
// without its data.
func heldLease(h watch.Held) statefile.Lease {
	l := statefile.Lease{
		LeaseID: h.Lease.LeaseID, Phase: h.Phase.String(), ReceivedAt: h.Received,
		Duration: h.Lease.LifeSeconds(), ExpiresAt: h.ExpiresAt(), Renewable: h.Lease.Renewable, MaxExpiresAt: h.Lease.MaxExpiresAt,
	}
	if h.Source.Kind == fetch.Dynamic {
		l.Source = statefile.FromSource(h.Source)
	}
	return l
}

// pendingDoc is the file while this run has resolved nothing itself (a
// start-up under way, or one that failed or was interrupted): the
// previous run's state as it was (its values and resolved_at, still good
// for a fallback; none without one), with every lease of the table (one
// this run generated is pending, with its data: the next run may reuse
// it; one it reused as it is now) and those it revoked marked so. A
// start-up killed before its first resolution thus leaves every lease it
// generated named in the file. nil: the file is left as it is (one that
// cannot be used: it is not overwritten until a resolution; or nothing of
// its leases changed).
func (s *stateRun) pendingDoc(held []watch.Held, revoked map[string]bool, exit *exitInfo) *statefile.Doc {
	if s.keep {
		return nil
	}
	d := &statefile.Doc{Fingerprint: s.fp, Secrets: []statefile.Secret{}, Certs: []statefile.Cert{}, Lists: []statefile.List{}}
	if s.prev != nil { // read by the start-up beside us: its lists are copied, not sorted in place
		c := *s.prev
		d = &c
		d.Secrets, d.Certs, d.Lists = slices.Clone(d.Secrets), slices.Clone(d.Certs), slices.Clone(d.Lists)
	}
	d.Leases = slices.Clone(d.Leases)
	if d.Leases == nil {
		d.Leases = []statefile.Lease{}
	}
	d.WrittenAt, d.Pid, d.Exit = time.Now(), s.pid, nil
	if exit != nil {
		held = exit.held
		for _, h := range held {
			if exit.revoked && !exit.failed[h.Lease.LeaseID] {
				revoked[h.Lease.LeaseID] = true
			}
		}
	}
	at := map[string]int{}
	for i, l := range d.Leases {
		at[l.LeaseID] = i
	}
	// One lease with data per source: the previous run's first (the
	// child of a fallback start runs on it), then those generated.
	data := map[fetch.Source]string{}
	slices.SortStableFunc(held, func(a, b watch.Held) int {
		_, ina := at[a.Lease.LeaseID]
		_, inb := at[b.Lease.LeaseID]
		return cmp.Compare(b2i(inb), b2i(ina))
	})
	for _, h := range held {
		l := heldLease(h)
		if _, taken := data[h.Source]; h.Phase == watch.InUse && h.Source.Kind == fetch.Dynamic && !taken {
			l.Lease, data[h.Source] = h.Lease, h.Lease.LeaseID
		}
		if i, ok := at[l.LeaseID]; ok {
			l.UsedBy, l.Pending = d.Leases[i].UsedBy, d.Leases[i].Pending
			d.Leases[i] = l
		} else {
			l.Pending = true
			d.Leases = append(d.Leases, l)
		}
	}
	// A lease of the previous run for a source this run holds another
	// for is superseded by it: the next run revokes it.
	for i := range d.Leases {
		l := &d.Leases[i]
		if src, err := l.Source.Source(); err == nil && l.Lease != nil && data[src] != "" && data[src] != l.LeaseID {
			l.Lease, l.UsedBy, l.Phase = nil, nil, watch.Superseded.String()
		}
	}
	markRevoked(d, revoked, nil)
	sortDoc(d)
	if slices.EqualFunc(d.Leases, s.last, func(a, b statefile.Lease) bool { return reflect.DeepEqual(a, b) }) {
		return nil // this run changed nothing of the file's leases: it stays as it is
	}
	if exit != nil {
		setExit(d)
	}
	return d
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// markRevoked marks the leases revoked (and drops their data): those of
// revoked, and with exit.revoked every lease whose revocation did not
// fail; with exit it sets the mark of the exit.
func markRevoked(d *statefile.Doc, revoked map[string]bool, exit *exitInfo) {
	for i := range d.Leases {
		l := &d.Leases[i]
		if revoked[l.LeaseID] || (exit != nil && exit.revoked && !exit.failed[l.LeaseID]) {
			l.Revoked, l.Lease = true, nil
		}
	}
	if exit != nil {
		setExit(d)
	}
}

// setExit marks d as written by a clean exit.
func setExit(d *statefile.Doc) {
	all := true
	for _, l := range d.Leases {
		all = all && l.Revoked
	}
	d.Exit = &statefile.Exit{At: d.WrittenAt, LeasesRevoked: all}
}

// sortDoc orders every list by source, leases by id: one state, one file.
func sortDoc(d *statefile.Doc) {
	key := func(s statefile.Source) string {
		src, _ := s.Source()
		return src.String()
	}
	slices.SortFunc(d.Secrets, func(a, b statefile.Secret) int { return cmp.Compare(key(a.Source), key(b.Source)) })
	slices.SortFunc(d.Certs, func(a, b statefile.Cert) int { return cmp.Compare(key(a.Source), key(b.Source)) })
	slices.SortFunc(d.Lists, func(a, b statefile.List) int { return cmp.Compare(key(a.Source), key(b.Source)) })
	slices.SortFunc(d.Leases, func(a, b statefile.Lease) int { return cmp.Compare(a.LeaseID, b.LeaseID) })
}
