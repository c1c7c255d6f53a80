package watch_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// The watcher against the real dev server, in a synctest bubble: the
// server's leases, tokens and events run on the bubble's fake clock, so
// that hours pass in milliseconds and every time below is exact.

const watchSeed = `{
  "root_token": "root-SECRET-watch-0001",
  "clients": [{"client_id": "short", "client_secret": "short-SECRET-watch-2", "token_ttl": "2s", "policies": ["app"]}],
  "policies": {"app": [{"path_pattern": "app/**", "permissions": ["read", "list"]},
                       {"path_pattern": "dynamic/**", "permissions": ["dynamic"]}]},
  "secrets": {
    "app/db": {"data": {"password": "pw-SECRET-watch-db-1", "username": "app"}},
    "app/api": {"data": {"value": "key-SECRET-watch-api-1"}, "secret_type": "api_key"},
    "app/conf/a": {"data": {"v": "conf-SECRET-a"}}
  },
  "dynamic": {"db": {"kind": "random", "roles": {
      "renew": {"ttl": "3s", "max_ttl": "1h"},
      "capped": {"ttl": "3s", "max_ttl": "10s"},
      "fixed": {"ttl": "3s", "renewable": false}}}},
  "pki": {"roles": {"svc": {"allowed_domains": ["svc.local"], "allow_subdomains": true, "ttl": "3s"}}}
}`

var (
	srcDB  = fetch.StaticSource("app/db", 0)
	srcAPI = fetch.StaticSource("app/api", 0)
)

func dynSrc(t testing.TB, role string) fetch.Source {
	s, err := fetch.DynamicSource("db", role, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pkiSrc(t testing.TB) fetch.Source {
	s, err := fetch.PKISource("svc", fetch.IssueRequest{CommonName: "a.svc.local"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wwrite(t testing.TB, w *world, path string, data map[string]any) {
	t.Helper()
	for _, v := range data {
		if s, ok := v.(string); ok {
			noteSecret(s)
		}
	}
	if _, err := w.admin().Write(context.Background(), path, fetch.WriteRequest{Data: data}); err != nil {
		t.Fatal(err)
	}
}

func password(t testing.TB, u watch.Update) string {
	t.Helper()
	v, err := u.Snapshot.Value(fetch.Ref{Kind: fetch.Static, Path: "app/db", Key: "password"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWatchPollRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{srcDB, srcAPI}, nil)
		defer wr.stop()

		time.Sleep(time.Second)
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-2", "username": "app"})
		start := time.Now()
		u := wr.next(t, 2*time.Minute)
		if got := time.Since(start); got > 66*time.Second {
			t.Errorf("rotation seen after %v; poll interval 1m (+10%%)", got)
		}
		if want := []string{"secret app/db v1→v2 keys password"}; !slices.Equal(u.Reasons, want) {
			t.Errorf("reasons %q, want %q", u.Reasons, want)
		}
		if got := password(t, u); got != "pw-SECRET-watch-db-2" {
			t.Error("update does not hold the new value")
		}
		if !u.Snapshot.Has(srcAPI) {
			t.Error("update snapshot lacks the unchanged secret")
		}

		// Same data in a new version: no update, over ten polls, one batch
		// read each.
		before := w.srv.Requests("POST /v1/secrets/batch-read")
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-2", "username": "app"})
		wr.none(t, 10*time.Minute)
		if n := w.srv.Requests("POST /v1/secrets/batch-read") - before; n < 9 || n > 11 {
			t.Errorf("%d batch reads in 10 minutes at a 1m poll interval", n)
		}
		// A later real change still compares with the data, not the version.
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-3", "username": "app"})
		if u := wr.next(t, 2*time.Minute); !slices.Equal(u.Reasons, []string{"secret app/db v3→v4 keys password"}) {
			t.Errorf("reasons %q", u.Reasons)
		}
	})
}

func TestWatchEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		wr := w.watch(watch.WatchConfig{PollInterval: time.Hour}, []fetch.Source{srcDB, srcAPI}, nil)
		defer wr.stop()
		synctest.Wait() // connected

		reads := w.srv.Requests("POST /v1/secrets/batch-read")
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-ev", "username": "app"})
		start := time.Now()
		u := wr.next(t, time.Minute)
		if d := time.Since(start); d > 0 {
			t.Errorf("event took %v (fake time) to act on", d)
		}
		if got := password(t, u); got != "pw-SECRET-watch-db-ev" {
			t.Error("update does not hold the new value")
		}
		if n := w.srv.Requests("POST /v1/secrets/batch-read") - reads; n != 1 {
			t.Errorf("%d batch reads for one event, want 1", n)
		}
		// Unwatched paths cause no read and no update.
		wwrite(t, w, "app/conf/a", map[string]any{"v": "conf-SECRET-b"})
		wr.none(t, time.Minute)
		if n := w.srv.Requests("POST /v1/secrets/batch-read") - reads; n != 1 {
			t.Errorf("%d batch reads after an unrelated event, want 1", n)
		}
		// A metadata patch (same version) is read and is a change, for
		// templates that use .Metadata.
		if _, err := w.admin().PatchMetadata(context.Background(), "app/db", map[string]any{"owner": "x"}); err != nil {
			t.Fatal(err)
		}
		u = wr.next(t, time.Minute)
		if !slices.Equal(u.Reasons, []string{"secret app/db v2 metadata"}) {
			t.Errorf("metadata patch: reasons %q", u.Reasons)
		}
		if md := u.Snapshot.Secrets[srcDB].Metadata; md["owner"] != "x" {
			t.Errorf("metadata in the update: %v", md)
		}
		reads++
		// The safety poll runs every 5 minutes while the stream is up.
		time.Sleep(time.Hour - time.Minute)
		if n := w.srv.Requests("POST /v1/secrets/batch-read") - reads; n < 11 || n > 14 {
			t.Errorf("%d batch reads in an hour with events, want about 12", n)
		}
	})
}

// TestWatchEventsNotSupported: a server without /v1/events (404) leaves
// the watcher polling at the poll interval.
func TestWatchEventsNotSupported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		w.srv.SetFaults(devserver.Faults{Rate: 1, Status: 404, PathPrefix: "/v1/events"})
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute}, []fetch.Source{srcDB}, nil)
		defer wr.stop()
		reads := w.srv.Requests("POST /v1/secrets/batch-read")
		time.Sleep(time.Hour)
		if n := w.srv.Requests("POST /v1/secrets/batch-read") - reads; n < 58 || n > 62 {
			t.Errorf("%d batch reads in an hour, want about 60", n)
		}
		if !strings.Contains(w.buf.String(), "the server offers no change events") {
			t.Error("no log line about the missing events")
		}
	})
}

func TestWatchOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		wr := w.watch(watch.WatchConfig{PollInterval: 10 * time.Second, NoEvents: true}, []fetch.Source{srcDB}, nil)
		defer wr.stop()
		w.srv.SetFaults(devserver.Faults{Rate: 1, PathPrefix: "/v1/secrets"})
		wr.none(t, 5*time.Minute)
		w.srv.SetFaults(devserver.Faults{})
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-after", "username": "app"})
		if got := password(t, wr.next(t, time.Minute)); got != "pw-SECRET-watch-db-after" {
			t.Error("rotation after the outage not seen")
		}
		time.Sleep(time.Minute) // fake time: the end is logged once nothing failed for 10s
		log := w.buf.String()
		if n := strings.Count(log, "level=WARN msg=\"scaivault answering with errors; the child keeps running on what it has\" for=10s"); n != 1 {
			t.Errorf("%d warnings at the threshold, want 1", n)
		}
		if n := strings.Count(log, "level=WARN msg=\"scaivault still answering with errors\""); n < 3 || n > 5 {
			t.Errorf("%d repeated warnings in 5 minutes, want about one a minute", n)
		}
		if n := strings.Count(log, "level=INFO msg=\"scaivault answering normally again\""); n != 1 {
			t.Errorf("%d info lines on recovery, want 1", n)
		}
		if strings.Contains(log, "unreachable") {
			t.Error("a server answering 503 logged as unreachable")
		}

	})
}

func TestWatchSecretLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{srcDB, srcAPI}, nil)
		defer wr.stop()
		if err := w.admin().Delete(context.Background(), "app/db", false); err != nil {
			t.Fatal(err)
		}
		wr.none(t, 3*time.Minute+30*time.Second)
		var lost []*watch.LostError
		for len(wr.lost) > 0 {
			lost = append(lost, <-wr.lost)
		}
		if len(lost) != 3 {
			t.Fatalf("%d losses reported in 3 polls, want one per poll", len(lost))
		}
		e := lost[0]
		if e.Source != srcDB || !errors.Is(e, fetch.ErrNotFound) || !strings.Contains(e.Error(), `secret "app/db" lost`) {
			t.Errorf("lost error %v for %v", e, e.Source)
		}
		if n := strings.Count(w.buf.String(), "level=ERROR msg=\"lost for good"); n != 3 {
			t.Errorf("%d error lines, want one per poll (3)", n)
		}
		// Written again: a change.
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-back"})
		u := wr.next(t, 2*time.Minute)
		if got := password(t, u); got != "pw-SECRET-watch-db-back" {
			t.Error("secret written again not picked up")
		}
	})
}

func TestWatchLeaseRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := dynSrc(t, "renew")
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, nil)
		defer wr.stop()
		id := wr.snap.Leases[src].LeaseID
		// Renewals at 2s, 4s, 6s (two thirds of 3s, from each renewal).
		// A renewal is not a change: no Update, so nothing re-renders
		// (a template printing .ExpiresAt would otherwise restart the
		// child on every renewal).
		wr.none(t, 7*time.Second)
		if id != wr.snap.Leases[src].LeaseID {
			t.Fatal("lease changed")
		}
		if n := w.srv.Requests("POST /v1/dynamic/leases/{lease_id}/renew"); n != 3 {
			t.Errorf("%d renewals in 6s, want 3", n)
		}
		time.Sleep(time.Minute)
		if w.srv.ActiveLeases() != 1 {
			t.Errorf("%d active leases after a minute of renewals, want 1", w.srv.ActiveLeases())
		}
		if n := w.srv.Requests("POST /v1/dynamic/{engine}/creds/{role}"); n != 1 {
			t.Errorf("%d generated leases, want 1", n)
		}
	})
}

// TestWatchLeaseReplacement: a lease that cannot be renewed is replaced at
// two thirds of its life, before it ends; the old one is superseded.
func TestWatchLeaseReplacement(t *testing.T) {
	for _, role := range []string{"fixed", "capped"} {
		t.Run(role, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, watchSeed)
				defer w.stop()
				src := dynSrc(t, role)
				wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, nil)
				defer wr.stop()
				old := wr.snap.Leases[src]
				var u watch.Update
				for {
					u = wr.next(t, 15*time.Second)
					if u.Snapshot.Leases[src].LeaseID != old.LeaseID {
						break
					}
				}
				nl := u.Snapshot.Leases[src]
				if len(nl.Data) == 0 {
					t.Fatalf("new lease %s without data", nl.LeaseID)
				}
				if want := fmt.Sprintf("lease %s replaced by %s", old.LeaseID, nl.LeaseID); !slices.Contains(u.Reasons, want) {
					t.Errorf("reasons %q, want %q", u.Reasons, want)
				}
				if _, err := w.c.LookupLease(context.Background(), old.LeaseID); err != nil {
					t.Errorf("old lease already gone when the new one came: %v", err)
				}
				// The child must be on the new credential by the old one's end.
				end := old.ExpiresAt
				if role == "capped" {
					end = old.MaxExpiresAt
				}
				if !u.ActBy.After(time.Now()) || u.ActBy.After(end) || end.Sub(u.ActBy) > time.Second {
					t.Errorf("act by %v; the old lease ends %v (now %v)", u.ActBy, end, time.Now())
				}
				if left := old.MaxExpiresAt.Sub(time.Now()); role == "capped" && left < 600*time.Millisecond {
					t.Errorf("replaced only %v before max_expires_at", left)
				}
			})
		})
	}
}

func TestWatchLeaseRevoked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := dynSrc(t, "renew")
		wr := w.watch(watch.WatchConfig{PollInterval: time.Hour}, []fetch.Source{src}, nil)
		defer wr.stop()
		synctest.Wait()
		old := wr.snap.Leases[src].LeaseID
		if err := w.c.Revoke(context.Background(), old); err != nil {
			t.Fatal(err)
		}
		u := wr.next(t, time.Second)
		if u.Snapshot.Leases[src].LeaseID == old || !slices.ContainsFunc(u.Reasons, func(r string) bool { return strings.HasPrefix(r, "lease "+old+" replaced by ") }) {
			t.Fatalf("revoked lease not replaced: %q", u.Reasons)
		}
		// The old credential no longer works: the child must move at once.
		if u.ActBy.IsZero() || u.ActBy.After(time.Now()) {
			t.Errorf("act by %v for a revoked lease (now %v)", u.ActBy, time.Now())
		}
		e := <-wr.lost
		if e.LeaseID != old || !strings.Contains(e.Error(), "revoked by the server") {
			t.Errorf("lost %v", e)
		}
	})
}

// TestWatchRejectedReplacement: when the receiver rejects the update, the
// new lease is revoked, and the replacement is tried again.
func TestWatchRejectedReplacement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := dynSrc(t, "fixed")
		rejects := 1
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, func(watch.Update) bool {
			rejects--
			return rejects < 0
		})
		defer wr.stop()
		first := wr.next(t, 5*time.Second)
		synctest.Wait()
		if w.srv.ActiveLeases() != 1 {
			t.Errorf("%d active leases after a rejected replacement, want 1 (the old)", w.srv.ActiveLeases())
		}
		second := wr.next(t, 5*time.Second)
		if second.Snapshot.Leases[src].LeaseID == first.Snapshot.Leases[src].LeaseID {
			t.Error("the retry reused the revoked lease")
		}
	})
}

func TestWatchCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := pkiSrc(t)
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, nil)
		defer wr.stop()
		old := wr.snap.Certs[src]
		start := time.Now()
		u := wr.next(t, 5*time.Second)
		// NotAfter is truncated to whole seconds: 2..3s of life, 2/3 of it.
		if d := time.Since(start); d < 1300*time.Millisecond || d > 2*time.Second {
			t.Errorf("re-issued after %v, want about two thirds of 3s", d)
		}
		nc := u.Snapshot.Certs[src]
		if nc.SerialNumber == old.SerialNumber {
			t.Fatal("same serial")
		}
		noteSecret(nc.PrivateKeyPEM, old.PrivateKeyPEM)
		want := fmt.Sprintf("certificate svc serial %s→%s", old.SerialNumber, nc.SerialNumber)
		if !slices.Equal(u.Reasons, []string{want}) {
			t.Errorf("reasons %q, want %q", u.Reasons, want)
		}
		wr.next(t, 5*time.Second) // and again for the new one
	})
}

func TestWatchList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := fetch.ListSource("app/conf/")
		wr := w.watch(watch.WatchConfig{PollInterval: time.Hour}, []fetch.Source{src}, nil)
		defer wr.stop()
		synctest.Wait()
		wwrite(t, w, "app/conf/a", map[string]any{"v": "conf-SECRET-a2"}) // listed already: no change
		wwrite(t, w, "app/conf/b", map[string]any{"v": "conf-SECRET-b"})
		u := wr.next(t, time.Second)
		if want := []string{"list app/conf/: added app/conf/b"}; !slices.Equal(u.Reasons, want) {
			t.Errorf("reasons %q, want %q", u.Reasons, want)
		}
		if n := len(u.Snapshot.Lists[src]); n != 2 {
			t.Errorf("%d entries", n)
		}
		if err := w.admin().Delete(context.Background(), "app/conf/a", false); err != nil {
			t.Fatal(err)
		}
		if u := wr.next(t, time.Second); !slices.Equal(u.Reasons, []string{"list app/conf/: removed app/conf/a"}) {
			t.Errorf("reasons %q", u.Reasons)
		}
	})
}

// TestWatchShortTokens: client credentials whose tokens last 2s, across
// many refreshes (and the events stream that ends with each token): no
// error, no loss, and changes still arrive.
func TestWatchShortTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		c := w.client(fetch.Config{ClientID: "short", ClientSecret: "short-SECRET-watch-2"})
		defer c.Close()
		wr := w.watch(watch.WatchConfig{Client: c, PollInterval: time.Second}, []fetch.Source{srcDB, dynSrc(t, "renew")}, nil)
		defer wr.stop()
		time.Sleep(20 * time.Second)
		if n := w.srv.Requests("POST /v1/auth/token"); n < 8 {
			t.Errorf("%d token exchanges in 20s of 2s tokens", n)
		}
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-tok"})
		for {
			if u := wr.next(t, 5*time.Second); password(t, u) == "pw-SECRET-watch-db-tok" {
				break
			}
		}
		if len(wr.lost) > 0 {
			t.Errorf("lost: %v", <-wr.lost)
		}
		if log := w.buf.String(); strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") {
			t.Errorf("errors with refreshing tokens:\n%s", log)
		}
	})
}

// TestWatchTokenEndpointDown: the token endpoint fails (503) while tokens
// run out: an outage, not a loss; once it answers, changes arrive again.
func TestWatchTokenEndpointDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		c := w.client(fetch.Config{ClientID: "short", ClientSecret: "short-SECRET-watch-2", Retry: fetch.RetryPolicy{MaxRetries: -1}})
		defer c.Close()
		wr := w.watch(watch.WatchConfig{Client: c, PollInterval: time.Second, NoEvents: true}, []fetch.Source{srcDB}, nil)
		defer wr.stop()
		w.srv.SetFaults(devserver.Faults{Rate: 1, PathPrefix: "/v1/auth/token"})
		wr.none(t, 20*time.Second)
		if len(wr.lost) > 0 {
			t.Fatalf("lost: %v", <-wr.lost)
		}
		if !regexp.MustCompile(`level=WARN msg="scaivault answering with errors; .* failing=[a-z,]*token`).MatchString(w.buf.String()) {
			t.Errorf("no outage warning naming the token endpoint:\n%s", w.buf.String())
		}
		w.srv.SetFaults(devserver.Faults{})
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-tok2"})
		if got := password(t, wr.next(t, 5*time.Second)); got != "pw-SECRET-watch-db-tok2" {
			t.Error("rotation after the token endpoint came back not seen")
		}
	})
}

// TestWatchEventsDownPolls: a server (or a proxy) that answers 503 on
// /v1/events only: the watcher polls at the poll interval while the
// stream cannot be held, so a write reaches it within a few intervals,
// not at the next safety poll (5 minutes).
func TestWatchEventsDownPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		// Tokens of 2s end the stream every 2s: it must reconnect.
		c := w.client(fetch.Config{ClientID: "short", ClientSecret: "short-SECRET-watch-2"})
		defer c.Close()
		wr := w.watch(watch.WatchConfig{Client: c, PollInterval: 5 * time.Second}, []fetch.Source{srcDB}, nil)
		defer wr.stop()
		time.Sleep(time.Second) // the stream is up
		w.srv.SetFaults(devserver.Faults{Rate: 1, Status: 503, PathPrefix: "/v1/events"})
		time.Sleep(20 * time.Second) // it dropped, and fails to reconnect
		wwrite(t, w, "app/db", map[string]any{"password": "pw-SECRET-watch-db-evdown"})
		u := wr.next(t, 15*time.Second)
		if got := password(t, u); got != "pw-SECRET-watch-db-evdown" {
			t.Errorf("update without the write: %q", u.Reasons)
		}
	})
}

// TestWatchMetadataPolled: without events, a metadata patch (same version,
// same data) is seen by the next poll and is a change.
func TestWatchMetadataPolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{srcDB}, nil)
		defer wr.stop()
		if _, err := w.admin().PatchMetadata(context.Background(), "app/db", map[string]any{"team": "b"}); err != nil {
			t.Fatal(err)
		}
		u := wr.next(t, 2*time.Minute)
		if !slices.Equal(u.Reasons, []string{"secret app/db v1 metadata"}) {
			t.Errorf("reasons %q", u.Reasons)
		}
		wr.none(t, 3*time.Minute) // seen once, not on every poll
	})
}

// A lease that ends while the server answers only errors is retried with
// the poll's backoff (1 s, doubling, up to the poll interval), not every
// 100 ms: the credential is gone already, and a fleet retrying ten times
// a second each would be what keeps the server down.
func TestWatchLeaseEndedDuringOutageBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		src := dynSrc(t, "renew")
		wr := w.watch(watch.WatchConfig{PollInterval: time.Minute, NoEvents: true}, []fetch.Source{src}, nil)
		defer wr.stop()
		w.srv.SetFaults(devserver.Faults{Rate: 1, PathPrefix: "/v1/dynamic"})
		wr.none(t, 5*time.Minute) // the 3 s lease ends early in it
		n := w.srv.Requests("POST /v1/dynamic/leases/{lease_id}/renew") + w.srv.Requests("POST /v1/dynamic/{engine}/creds/{role}")
		// Before the end: attempts at a third of what is left (a few);
		// after: the backoff, doubling up to one a minute. Each attempt
		// is up to 4 requests (the client's own 3 retries). Every 100 ms
		// would be 3,000 attempts.
		if n > 80 {
			t.Errorf("%d requests in 5 minutes of outage, want the backoff's (about 40)", n)
		}
		w.srv.SetFaults(devserver.Faults{})
		u := wr.next(t, 2*time.Minute)
		if u.Snapshot.Leases[src] == nil || u.Snapshot.Leases[src].LeaseID == wr.snap.Leases[src].LeaseID {
			t.Error("no new lease once the server answered")
		}
	})
}
