package devserver

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

type sseEvent struct {
	typ, id string
	data    fetch.EventData
	comment bool
}

type sseStream struct {
	t  *testing.T
	ch chan sseEvent
}

// events opens GET /v1/events and parses it in a goroutine. When it
// returns, the server has subscribed the stream.
func (h *harness) events(query, token string) *sseStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/v1/events"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := h.ts.Client().Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Request-Id") == "" {
		cancel()
		h.t.Fatalf("events: %d %v", res.StatusCode, res.Header)
	}
	s := &sseStream{t: h.t, ch: make(chan sseEvent, 100)}
	go s.read(res)
	h.t.Cleanup(func() { cancel(); res.Body.Close() })
	return s
}

func (s *sseStream) read(res *http.Response) {
	defer close(s.ch)
	sc := bufio.NewScanner(res.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.typ != "" || ev.comment {
				s.ch <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			ev.comment = true
		case strings.HasPrefix(line, "event: "):
			ev.typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
		}
	}
}

func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.ch:
		if !ok {
			s.t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		s.t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

// expect takes the next event and checks its type, path and version.
func (s *sseStream) expect(typ, path string, version int) sseEvent {
	s.t.Helper()
	ev := s.next()
	if ev.typ != typ || ev.data.Path != path || ev.data.Version != version || ev.data.At.IsZero() || ev.id == "" {
		s.t.Fatalf("event %+v, want %s %s v%d", ev, typ, path, version)
	}
	return ev
}

func (s *sseStream) ended() {
	s.t.Helper()
	for {
		select {
		case _, ok := <-s.ch:
			if !ok {
				return
			}
		case <-time.After(5 * time.Second):
			s.t.Fatal("stream still open 5s after it should have ended")
		}
	}
}

func TestEventsStream(t *testing.T) {
	h := newHarness(t, testSeed())
	st := h.events("?prefix=app/", rootTok)
	first := h.write("app/db", map[string]any{"data": map[string]any{"password": "pw2"}})
	e1 := st.expect(fetch.EventSecretUpdated, "app/db", first.Version)
	h.do("PATCH", "/v1/secrets/app/db/metadata", rootTok, map[string]any{"metadata": map[string]any{"a": "b"}}).want(t, 200)
	st.expect(fetch.EventSecretUpdated, "app/db", 2)
	h.write("other/secret", map[string]any{"data": map[string]any{}}) // outside the prefix
	h.do("POST", "/v1/secrets/app/db/rotate", rootTok, nil).want(t, 200)
	e3 := st.expect(fetch.EventSecretRotated, "app/db", 3)
	if a, _ := strconv.Atoi(e1.id); a <= 0 || atoi(e3.id) <= a {
		t.Fatalf("ids %q then %q", e1.id, e3.id)
	}
	h.do("DELETE", "/v1/secrets/app/db", rootTok, nil).want(t, 204)
	if ev := st.expect(fetch.EventSecretDeleted, "app/db", 3); ev.data.Permanent == nil || *ev.data.Permanent {
		t.Fatalf("soft delete event %+v", ev.data)
	}
	h.do("DELETE", "/v1/secrets/app/db?permanent=true", rootTok, nil).want(t, 204)
	if ev := st.expect(fetch.EventSecretDeleted, "app/db", 3); ev.data.Permanent == nil || !*ev.data.Permanent {
		t.Fatalf("permanent delete event %+v", ev.data)
	}
	// lease.revoked comes whatever the prefix; lease expiry sends nothing.
	l := h.generate("support-db/creds/readonly", rootTok, nil)
	gone := h.generate("support-db/creds/readonly", rootTok, nil)
	h.do("POST", "/v1/dev/leases/"+gone.LeaseID+"/expire", rootTok, nil).want(t, 200)
	h.do("DELETE", "/v1/dynamic/leases/"+gone.LeaseID, rootTok, nil).want(t, 204)
	h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 204)
	ev := st.next()
	if ev.typ != fetch.EventLeaseRevoked || ev.data.LeaseID != l.LeaseID || ev.data.Engine != "support-db" ||
		ev.data.Role != "readonly" || ev.data.At.IsZero() {
		t.Fatalf("lease event %+v", ev)
	}
}

func TestEventsResume(t *testing.T) {
	h := newHarness(t, testSeed())
	h.s.hub = newEventHub(3) // before any request: keeps the last 3 events
	for i := 0; i < 5; i++ {
		h.write("app/r", map[string]any{"data": map[string]any{"i": i}})
	}
	st := h.events("?since=3", rootTok)
	st.expect(fetch.EventSecretUpdated, "app/r", 4)
	st.expect(fetch.EventSecretUpdated, "app/r", 5)
	// A since older than the buffer replays from the oldest kept event.
	old := h.events("?since=1", rootTok)
	old.expect(fetch.EventSecretUpdated, "app/r", 3)
	// Without since: from now on only.
	live := h.events("", rootTok)
	h.write("app/r", map[string]any{"data": map[string]any{"i": 6}})
	live.expect(fetch.EventSecretUpdated, "app/r", 6)
	for _, q := range []string{"?since=x", "?since=-2"} {
		h.do("GET", "/v1/events"+q, rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	}
}

func TestEventsPermissionsAndKeepAlive(t *testing.T) {
	h := newHarness(t, testSeed())
	h.s.keepAlive = 20 * time.Millisecond
	app := h.events("", h.token("app", "app-secret"))
	ops := h.events("", h.token("ops", "ops-secret"))
	h.write("other/secret", map[string]any{"data": map[string]any{}})
	l := h.generate("support-db/creds/readonly", rootTok, nil)
	h.do("DELETE", "/v1/dynamic/leases/"+l.LeaseID, rootTok, nil).want(t, 204)
	h.write("app/db", map[string]any{"data": map[string]any{}})
	for {
		ev := app.next()
		if ev.comment {
			continue
		}
		if ev.typ != fetch.EventSecretUpdated || ev.data.Path != "app/db" {
			t.Fatalf("app saw %+v", ev)
		}
		break
	}
	for {
		ev := ops.next()
		if ev.comment {
			continue
		}
		if ev.typ != fetch.EventLeaseRevoked {
			t.Fatalf("ops saw %+v", ev)
		}
		break
	}
	// app/db is readable by ops too.
	for ev := ops.next(); ; ev = ops.next() {
		if !ev.comment {
			if ev.data.Path != "app/db" {
				t.Fatalf("ops saw %+v", ev)
			}
			break
		}
	}
	if ev := app.next(); !ev.comment {
		t.Fatalf("want a keep-alive comment, got %+v", ev)
	}
}

func TestEventsEndAtClose(t *testing.T) {
	h := newHarness(t, testSeed())
	st := h.events("", rootTok)
	h.s.Close()
	st.ended()
	h.do("GET", "/v1/events", rootTok, nil).wantErr(t, 503, fetch.CodeUnavailable)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
