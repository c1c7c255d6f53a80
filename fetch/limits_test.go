package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// setLimit lowers a limit for one test; tests that do so are not parallel.
func setLimit[T any](t *testing.T, v *T, to T) {
	old := *v
	*v = to
	t.Cleanup(func() { *v = old })
}

// endless is a reader that never ends: a hostile server's body, the
// pattern repeated.
type endless struct {
	pattern string
	off     int
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.pattern[e.off]
		e.off = (e.off + 1) % len(e.pattern)
	}
	return len(p), nil
}

// hostileClient is a client of srv with the root token and no retries.
func hostileClient(t *testing.T, h http.HandlerFunc, mut func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := Config{BaseURL: srv.URL, Token: "tok", Retry: RetryPolicy{MaxRetries: -1}}
	if mut != nil {
		mut(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxLimit(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantTooLarge checks a bounded error: it names what and the limit and
// quotes none of the content (the byte 'S' stands for a secret).
func wantTooLarge(t *testing.T, err error, what, limit string) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatal("no error past the limit")
	case !errors.Is(err, errTooLarge):
		t.Fatalf("err = %v, want a too-large error", err)
	case !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), limit):
		t.Errorf("error %q does not name %q and the limit %s", err, what, limit)
	case strings.Contains(err.Error(), "SSS"):
		t.Errorf("error %q quotes the content", err)
	case IsTemporary(err):
		t.Errorf("error %q is temporary: the same answer would be as large again", err)
	}
}

// An endless answer ends in a bounded error at the real limit, after
// reading no more than the limit and a buffer, and is not retried.
func TestResponseBodyLimit(t *testing.T) {
	var sent, requests atomic.Int64
	c := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		n, _ := io.Copy(w, &endless{pattern: "S"})
		sent.Add(n)
	}, func(cfg *Config) { cfg.Retry = RetryPolicy{} }) // the default retries
	// 32 MiB through the race detector on a loaded machine: a generous bound.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := c.Read(ctx, "app/db", ReadOptions{})
	wantTooLarge(t, err, `read secret "app/db": answer to GET /v1/secrets/app/db`, "32 MiB")
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1 (an oversized answer is not retried)", n)
	}
	_, err = c.CAPEM(ctx, "default")
	wantTooLarge(t, err, "answer to GET /v1/pki/cas/default/pem", "32 MiB")
}

// An answer of exactly the limit is read; one byte more is not.
func TestResponseBodyLimitExact(t *testing.T) {
	setLimit(t, &maxResponseBody, 64)
	var size atomic.Int64
	c := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("S", int(size.Load())))
	}, nil)
	size.Store(64)
	if pem, err := c.CAPEM(ctxLimit(t), "default"); err != nil || len(pem) != 64 {
		t.Fatalf("answer of the limit: %d bytes, %v", len(pem), err)
	}
	size.Store(65)
	_, err := c.CAPEM(ctxLimit(t), "default")
	wantTooLarge(t, err, "GET /v1/pki/cas/default/pem", "64 bytes")
}

// One event's data lines add up to the limit however short each line is;
// keep-alive comments do not count, however long the stream lives.
func TestSSEReaderEventLimit(t *testing.T) {
	setLimit(t, &maxEventBytes, 64)
	parse := func(stream io.Reader) ([]sseEvent, error) {
		rd := &sseReader{r: bufio.NewReaderSize(stream, 16)}
		var evs []sseEvent
		for {
			ev, err := rd.next()
			if err != nil {
				return evs, err
			}
			evs = append(evs, ev)
		}
	}
	_, err := parse(strings.NewReader(strings.Repeat("data: SSS\n", 10) + "\n"))
	wantTooLarge(t, err, "an event of GET /v1/events", "64 bytes")
	_, err = parse(strings.NewReader("data: " + strings.Repeat("S", 100) + "\n\n"))
	wantTooLarge(t, err, "an event of GET /v1/events", "64 bytes")
	// A stream of data lines that never ends, with no blank line.
	_, err = parse(&endless{pattern: "data: S\n"})
	wantTooLarge(t, err, "an event of GET /v1/events", "64 bytes")
	// A line with no end, at the real limit.
	setLimit(t, &maxEventBytes, 1<<20)
	_, err = parse(&endless{pattern: "S"})
	wantTooLarge(t, err, "an event of GET /v1/events", "1 MiB")
	setLimit(t, &maxEventBytes, 64)

	stream := strings.Repeat(": keep-alive\n", 20) + strings.Repeat("data: a\n\n", 20) + "event: x\ndata: " +
		strings.Repeat("b", 64-len("event: x\n")-len("data: \n")) + "\n\n"
	evs, err := parse(strings.NewReader(stream))
	if !errors.Is(err, io.EOF) || len(evs) != 21 {
		t.Errorf("comments and events each below the limit: %d events, %v; want 21 and EOF", len(evs), err)
	}
}

// An oversized event drops the stream as unhealthy: Events reconnects
// with a backoff that grows (and OnDrop hears the bounded error).
func TestEventsOversizedEventDrops(t *testing.T) {
	setLimit(t, &maxEventBytes, 64)
	c := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\ndata: "+strings.Repeat("S", 100)+"\n\n")
	}, nil)
	ctx, cancel := context.WithCancel(ctxLimit(t))
	defer cancel()
	drops := make(chan error, 1)
	err := c.Events(ctx, EventsOptions{OnDrop: func(err error) {
		select {
		case drops <- err:
		default:
		}
		cancel()
	}}, func(Event) { t.Error("an oversized event was handled") })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Events = %v", err)
	}
	wantTooLarge(t, <-drops, "an event of GET /v1/events", "64 bytes")
}

// The follow of one connection reports an oversized event as unhealthy.
func TestFollowOversizedUnhealthy(t *testing.T) {
	setLimit(t, &maxEventBytes, 64)
	c := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, ": hello\ndata: "+strings.Repeat("S", 100)+"\n\n")
	}, nil)
	st := &eventStream{c: c, handle: func(Event) {}, idle: time.Minute}
	healthy, err := st.follow(ctxLimit(t))
	if healthy {
		t.Error("a stream that sent an oversized event counts as healthy: no backoff growth")
	}
	wantTooLarge(t, err, "an event of GET /v1/events", "64 bytes")
}

// listServer answers every page with has_more and the cursor next(n) for
// page n (counted from 1).
func listServer(t *testing.T, perPage int, next func(n int) string) (*Client, *atomic.Int64) {
	var pages atomic.Int64
	c := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
		n := int(pages.Add(1))
		var entries []string
		for i := range perPage {
			entries = append(entries, fmt.Sprintf(`{"path":"app/p%d-%d","version":1}`, n, i))
		}
		fmt.Fprintf(w, `{"data":[%s],"has_more":true,"cursor":%q}`, strings.Join(entries, ","), next(n))
	}, nil)
	return c, &pages
}

func TestListRepeatedCursor(t *testing.T) {
	c, pages := listServer(t, 1, func(n int) string { return fmt.Sprint("c", min(n, 3)) })
	_, err := c.List(ctxLimit(t), "app/")
	if err == nil || !strings.Contains(err.Error(), `list secrets under "app/"`) ||
		!strings.Contains(err.Error(), "page 4") || !strings.Contains(err.Error(), "repeats a cursor") {
		t.Errorf("err = %v, want a repeated cursor on page 4, naming the prefix", err)
	}
	if pages.Load() != 4 {
		t.Errorf("%d pages read, want 4", pages.Load())
	}
}

func TestListPageLimit(t *testing.T) {
	setLimit(t, &maxListPages, 5)
	c, pages := listServer(t, 1, func(n int) string { return fmt.Sprint("c", n) })
	_, err := c.List(ctxLimit(t), "app/")
	if err == nil || !strings.Contains(err.Error(), `list secrets under "app/"`) ||
		!strings.Contains(err.Error(), "more than 5 pages") {
		t.Errorf("err = %v, want the page limit, naming the prefix", err)
	}
	if pages.Load() != 5 {
		t.Errorf("%d pages read, want 5", pages.Load())
	}
}

func TestListEntryLimit(t *testing.T) {
	setLimit(t, &maxListEntries, 25)
	c, pages := listServer(t, 10, func(n int) string { return fmt.Sprint("c", n) })
	_, err := c.List(ctxLimit(t), "")
	if err == nil || !strings.Contains(err.Error(), "list secrets:") ||
		!strings.Contains(err.Error(), "more than 25 entries") {
		t.Errorf("err = %v, want the entry limit", err)
	}
	if pages.Load() != 3 {
		t.Errorf("%d pages read, want 3", pages.Load())
	}
}

func TestTokenFileLimit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	big := strings.Repeat("S", int(maxTokenFile)+1)
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{BaseURL: "http://127.0.0.1:1", TokenFile: path})
	wantTooLarge(t, err, fmt.Sprintf("token file %q", path), "64 KiB")

	// At the limit, with its newline, the token is read.
	if err := os.WriteFile(path, []byte(big[:maxTokenFile-1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", TokenFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Grown past the limit: the reload fails and the token stays.
	if err := os.WriteFile(path, []byte(big+"x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantTooLarge(t, c.ReloadToken(), "token file", "64 KiB")
	if tok, _ := c.auth.token(context.Background()); tok != big[:maxTokenFile-1] {
		t.Errorf("the previous token was not kept (%d bytes)", len(tok))
	}
}

// A token file that never ends (a device, a FIFO fed forever) is read no
// further than the limit.
func TestTokenFileEndless(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, err := New(Config{BaseURL: "http://127.0.0.1:1", TokenFile: "/dev/zero"})
	wantTooLarge(t, err, `token file "/dev/zero"`, "64 KiB")
}
