package run

import (
	"cmp"
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
		l := statefile.Lease{
			LeaseID: h.Lease.LeaseID, Phase: h.Phase.String(), ReceivedAt: h.Received,
			Duration: h.Lease.LifeSeconds(), ExpiresAt: h.ExpiresAt(), Renewable: h.Lease.Renewable, MaxExpiresAt: h.Lease.MaxExpiresAt,
		}
		if h.Source.Kind == fetch.Dynamic {
			l.Source = statefile.FromSource(h.Source)
		}
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

// markPrev is the previous run's document as this run leaves it when it
// resolved nothing itself (a start-up that failed or was interrupted):
// the leases it revoked (reclaimed ones included) are marked so. nil: it
// revoked none of them.
func (s *stateRun) markPrev(revoked map[string]bool, exit *exitInfo) *statefile.Doc {
	d := *s.prev
	d.Leases = slices.Clone(d.Leases)
	d.WrittenAt, d.Pid = time.Now(), s.pid
	for _, h := range exit.held {
		if exit.revoked && !exit.failed[h.Lease.LeaseID] {
			revoked[h.Lease.LeaseID] = true
		}
	}
	changed := false
	for _, l := range d.Leases {
		changed = changed || !l.Revoked && revoked[l.LeaseID]
	}
	if !changed {
		return nil // this run changed nothing of it: the file stays as it is
	}
	markRevoked(&d, revoked, nil)
	setExit(&d)
	return &d
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
