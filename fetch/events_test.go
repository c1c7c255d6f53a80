package fetch_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// recv waits a bounded time for a value.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// follow runs Events on a goroutine; the returned channels carry events,
// connections and the final error.
func follow(t *testing.T, ctx context.Context, c *fetch.Client, opt fetch.EventsOptions) (<-chan fetch.Event, <-chan struct{}, <-chan error) {
	events := make(chan fetch.Event, 100)
	connects := make(chan struct{}, 100)
	done := make(chan error, 1)
	opt.OnConnect = func() { connects <- struct{}{} }
	go func() {
		err := c.Events(ctx, opt, func(ev fetch.Event) { events <- ev })
		noteErr(err)
		done <- err
	}()
	return events, connects, done
}

func write(t *testing.T, h *harness, path string) int {
	t.Helper()
	res, err := h.admin().Write(context.Background(), path, fetch.WriteRequest{Data: map[string]any{"v": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Version
}

func TestEventsStreamAndResume(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	var conns atomic.Int32
	sinces := make(chan string, 10)
	dropFirst := make(chan struct{})
	proceed := make(chan struct{})
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/events" {
			return false
		}
		sinces <- r.URL.Query().Get("since")
		switch conns.Add(1) {
		case 1: // served until the test drops it
			ctx, cancel := context.WithCancel(r.Context())
			go func() { <-dropFirst; cancel() }()
			h.srv.Handler().ServeHTTP(w, r.WithContext(ctx))
			return true
		case 2: // held until the test has written while the client was away
			<-proceed
		}
		return false
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, connects, done := follow(t, ctx, c, fetch.EventsOptions{Prefix: "app/"})
	recv(t, connects, "first connection")
	if s := recv(t, sinces, "first request"); s != "" {
		t.Errorf("first connection since=%q, want none", s)
	}

	v := write(t, h, "app/db")
	ev := recv(t, events, "secret.updated")
	if ev.Type != fetch.EventSecretUpdated || ev.Data.Path != "app/db" || ev.Data.Version != v || ev.ID == "" || ev.Data.At.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	write(t, h, "other/x") // outside the prefix
	write(t, h, "app/other")
	ev = recv(t, events, "second event")
	if ev.Data.Path != "app/other" {
		t.Fatalf("event %+v, want app/other (other/x is outside the prefix)", ev)
	}

	close(dropFirst)
	if s := recv(t, sinces, "reconnection"); s != ev.ID {
		t.Errorf("reconnected with since=%q, want the last id %q", s, ev.ID)
	}
	v = write(t, h, "app/db") // while the client is away
	close(proceed)
	recv(t, connects, "second connection")
	ev = recv(t, events, "event written while away")
	if ev.Data.Path != "app/db" || ev.Data.Version != v {
		t.Fatalf("replayed event %+v, want app/db v%d", ev, v)
	}
	if _, err := h.admin().Rotate(ctx, "app/db", fetch.RotateRequest{}); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events, "secret.rotated"); ev.Type != fetch.EventSecretRotated {
		t.Errorf("event %+v", ev)
	}
	cancel()
	if err := recv(t, done, "Events to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Events returned %v, want context.Canceled", err)
	}
}

func TestEventsLeaseRevokedAndDelete(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, connects, _ := follow(t, ctx, c, fetch.EventsOptions{Prefix: "app/"})
	recv(t, connects, "connection")
	l, err := c.Generate(ctx, "support-db", "readonly", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	ev := recv(t, events, "lease.revoked")
	if ev.Type != fetch.EventLeaseRevoked || ev.Data.LeaseID != l.LeaseID || ev.Data.Engine != "support-db" || ev.Data.Role != "readonly" {
		t.Fatalf("event %+v", ev)
	}
	if err := h.admin().Delete(ctx, "app/db", true); err != nil {
		t.Fatal(err)
	}
	ev = recv(t, events, "secret.deleted")
	if ev.Type != fetch.EventSecretDeleted || ev.Data.Path != "app/db" || ev.Data.Permanent == nil || !*ev.Data.Permanent {
		t.Fatalf("event %+v", ev)
	}
}

func TestEventsNotSupported(t *testing.T) {
	h := newHarness(t, "")
	var hits atomic.Int32
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/events" {
			return false
		}
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_404")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"not_found","message":"no route","details":{},"request_id":"req_404"}}`))
		return true
	})
	c := h.client(t, nil)
	err := c.Events(ctxT(t), fetch.EventsOptions{}, func(fetch.Event) { t.Error("event from a 404") })
	mustFail(t, err, fetch.ErrEventsNotSupported)
	if !errors.Is(err, fetch.ErrNotFound) || hits.Load() != 1 {
		t.Errorf("err %v after %d requests, want 1", err, hits.Load())
	}
}

func TestEventsDeadStreamReconnects(t *testing.T) {
	h := newHarness(t, "")
	var conns atomic.Int32
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/events" || conns.Add(1) > 1 {
			return false
		}
		// A stream that goes silent: headers, then nothing, not even a comment.
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	})
	c := h.client(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	events, connects, _ := follow(t, ctx, c, fetch.EventsOptions{IdleTimeout: 300 * time.Millisecond})
	recv(t, connects, "silent connection")
	recv(t, connects, "reconnection after the idle timeout")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("reconnected after %v, before the idle timeout", d)
	}
	write(t, h, "app/db")
	if ev := recv(t, events, "event on the new stream"); ev.Data.Path != "app/db" {
		t.Errorf("event %+v", ev)
	}
}

func TestEventsAuthFailureIsFinal(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, func(cfg *fetch.Config) { cfg.Token = "bogus-SECRET-token-ev" })
	err := c.Events(ctxT(t), fetch.EventsOptions{}, func(fetch.Event) {})
	mustFail(t, err, fetch.ErrAuthentication)
	if n := h.srv.Requests("GET /v1/events"); n != 1 {
		t.Errorf("%d events requests, want 1", n)
	}
}

func TestEventsEndOnClose(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, nil)
	_, connects, done := follow(t, context.Background(), c, fetch.EventsOptions{})
	recv(t, connects, "connection")
	c.Close()
	if err := recv(t, done, "Events to return"); !errors.Is(err, fetch.ErrClientClosed) {
		t.Errorf("Events returned %v, want ErrClientClosed", err)
	}
	_, err := c.Read(context.Background(), "app/db", fetch.ReadOptions{})
	mustFail(t, err, fetch.ErrClientClosed)
}
