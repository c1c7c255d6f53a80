//go:build linux

package run

import (
	"context"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
)

// writeState encrypts d to the world's key, over its state file.
func (w *stateWorld) writeState(t *testing.T, d *statefile.Doc) {
	t.Helper()
	k, _, err := statefile.LoadKey(w.key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := statefile.Encode(d, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := statefile.WriteFile(w.file, data); err != nil {
		t.Fatal(err)
	}
}

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

// TestStateFallbackDoesNotRevokeUnderChild: the start-up's own resolution
// is stopped, and has ended, before the fallback reads the state. Here
// the state's lease has too little of its life left, and the start-up's
// look-up answers (1s) but its revocation is still in flight (1s more)
// when --fallback-after (1.5s) ends: the fallback must not give the
// child that lease (it would be revoked under it, found gone once the
// server answers, and the child restarted). Either the revocation is
// settled first and the state cannot stand in (the start-up goes on and
// the child gets a new lease), or, had the look-up not answered yet, the
// lease is untouched and kept.
func TestStateFallbackDoesNotRevokeUnderChild(t *testing.T) {
	w := newStateWorld(t)
	ref := "scaivault+dynamic://db/long?ttl=2m#username"
	first := w.launch(t, ref, nil, func(o *Options) { o.NoRevoke = true })
	first.expect(`ready .* val=v-long-`)
	stopWritten(t, first)
	// Its life was an hour: the 2 minutes left are less than a third.
	d := w.readState(t)
	d.Leases[0].Duration = 3600
	w.writeState(t, d)

	w.srv.SetFaults(devserver.Faults{Latency: time.Second, PathPrefix: "/v1/dynamic/leases/"})
	p := w.launch(t, ref, nil, func(o *Options) { o.FallbackAfter = 1500 * time.Millisecond })
	pid := p.expect(`^(\d+) ready .* val=v-long-`)[1]
	p.log.await(t, `msg="watching for changes"`, 1)
	p.quiet()
	if n := p.log.count(`msg="lease of the previous run is gone"`); n != 0 {
		t.Error("the child was started on a lease the start-up was revoking: found gone once the server answered")
	}
	if n := w.srv.ActiveLeases(); n != 1 {
		t.Errorf("%d leases active, want 1 (the child's)", n)
	}
	w.srv.SetFaults(devserver.Faults{})
	p.cancel()
	p.expect(`^` + pid + ` got SIGTERM$`)
	p.wait()
}

// TestStateFallbackKeepsCertificate: a certificate of the state that has
// not ended is kept when the server answers after a fallback start: no
// re-issue, no restart (nothing the child sees differs).
func TestStateFallbackKeepsCertificate(t *testing.T) {
	w := newStateWorld(t)
	env := []string{"SERIAL=scaivault+pki://svc?common_name=a.svc.local#serial_number"}
	w.firstRun(t, env)
	issued := w.srv.Requests("POST /v1/pki/issue/{role}")

	w.stop()
	p := w.launch(t, refDBPassword, env, nil)
	pid := p.ready("pw-SECRET-1")
	w.start()
	p.log.await(t, `msg="the server answers: everything re-resolved after the fallback start"`, 1)
	p.log.await(t, `msg="the change does not touch the child"`, 1)
	p.log.await(t, `msg="watching for changes"`, 1)
	p.quiet()
	if n := w.srv.Requests("POST /v1/pki/issue/{role}"); n != issued {
		t.Errorf("%d certificates issued after the recovery, want none", n-issued)
	}
	p.cancel()
	p.expect(`^` + pid + ` got SIGTERM$`)
	p.wait()
}

// TestStateFallbackLogsAsStartup: while the server stays down after a
// fallback start, the recovery's retries are logged as the start-up's
// (one warning, then debug lines, at most a warning a minute) and the
// end of the outage is said once, as at start-up.
func TestStateFallbackLogsAsStartup(t *testing.T) {
	w := newStateWorld(t)
	w.firstRun(t, nil)

	w.stop()
	p := w.launch(t, refDBPassword, nil, nil)
	p.ready("pw-SECRET-1")
	p.log.await(t, `level=DEBUG msg="server not reachable yet; retrying".*failures=`, 3) // the recovery's retries too
	w.start()
	p.log.await(t, `msg="server answering normally again" after=\S+ failures=\d+`, 1)
	p.log.await(t, `msg="the server answers: everything re-resolved after the fallback start"`, 1)
	if n := p.log.count(`level=WARN msg="server not reachable yet; retrying"`); n != 1 {
		t.Errorf("%d warnings that the server is not reachable, want 1 (the first failure; then at most one a minute)", n)
	}
	if n := p.log.count(`the server is still not reachable`); n != 0 {
		t.Errorf("the recovery has a warning loop of its own (%d lines)", n)
	}
}

// TestStateAgeCountsFromCarriedValue: a secret the recovery after a
// fallback start cannot read again (deleted meanwhile) stays in the
// child's snapshot with the state's value; the state written then must
// not say it was all resolved now: its age counts from the previous
// resolution, whose value it still carries.
func TestStateAgeCountsFromCarriedValue(t *testing.T) {
	w := newStateWorld(t)
	admin := &devserver.Admin{BaseURL: w.admin.URL, Token: w.srv.RootToken()}
	if _, err := admin.Write(context.Background(), "app/other", fetch.WriteRequest{Data: map[string]any{"password": "other-SECRET-1"}}); err != nil {
		t.Fatal(err)
	}
	env := []string{"OTHER=scaivault://app/other#password"}
	first := w.launch(t, refDBPassword, env, nil)
	first.note("other-SECRET-1")
	first.ready("pw-SECRET-1")
	stopWritten(t, first)
	before := w.readState(t).ResolvedAt

	w.stop()
	p := w.launch(t, refDBPassword, env, nil)
	p.note("other-SECRET-1")
	p.ready("pw-SECRET-1")
	if err := admin.Delete(context.Background(), "app/other", false); err != nil {
		t.Fatal(err)
	}
	w.start()
	p.log.await(t, `msg="re-resolving after the fallback start failed`, 1)
	p.log.await(t, `msg="state file written"`, 1)
	d := w.readState(t)
	if !d.ResolvedAt.Equal(before) {
		t.Errorf("the state says it was resolved at %v; it carries app/other as resolved at %v", d.ResolvedAt, before)
	}
	if len(d.Secrets) != 2 {
		t.Errorf("the state holds %d secrets, want both the child runs on", len(d.Secrets))
	}
}
