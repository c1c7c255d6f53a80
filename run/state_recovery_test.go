//go:build linux

package run

import (
	"testing"
)

// Phase tests of the state file's recovery, one per point of issue 12's
// review; the world is state_phase_test.go's.

// TestStateReuseKeepsLife: a lease reused run after run keeps, in the
// state file, the life it was issued with (3600s), not what each look-up
// found left: the next run's "a third of its life" is of the whole.
func TestStateReuseKeepsLife(t *testing.T) {
	w := newStateWorld(t)
	noRevoke := func(o *Options) { o.NoRevoke = true }
	var id string
	for i := range 3 {
		p := w.launch(t, refLong, nil, noRevoke)
		p.expect(`ready .* val=v-long-`)
		if i > 0 {
			p.log.await(t, `msg="lease of the previous run reused"`, 1)
		}
		p.log.await(t, `msg="state file written"`, 1)
		stopLaunch(t, p)
		d := w.readState(t)
		if len(d.Leases) != 1 || d.Leases[0].Lease == nil {
			t.Fatalf("run %d: state leases %+v, want one in use", i+1, d.Leases)
		}
		l := d.Leases[0]
		if i == 0 {
			id = l.LeaseID
		} else if l.LeaseID != id {
			t.Fatalf("run %d: lease %s, want %s reused", i+1, l.LeaseID, id)
		}
		if l.Duration != 3600 {
			t.Errorf("run %d: the state gives the lease a life of %ds, want the 3600s it was issued with", i+1, l.Duration)
		}
	}
}
