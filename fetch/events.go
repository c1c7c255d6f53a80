package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultEventsIdleTimeout is three times the server's 10 s keep-alive: a
// stream on which nothing at all arrives for that long is taken for dead.
const DefaultEventsIdleTimeout = 30 * time.Second

// maxEventsBackoffStep caps the exponent of the reconnect backoff; the wait
// itself is capped by RetryPolicy.Max.
const maxEventsBackoffStep = 32

// EventsOptions selects the events stream.
type EventsOptions struct {
	Prefix string
	Since  string // resume cursor; "" starts from now
	// OnConnect, when set, is called each time the stream (re)connects.
	// Events that happened while it was down and before any event id was
	// seen are not replayed, so OnConnect is the moment to poll.
	OnConnect func()
	// OnDrop, when set, is called each time the stream drops and a
	// reconnection is due: the caller's moment to fall back to polling.
	OnDrop func(err error)
	// IdleTimeout: when nothing arrives for this long, not even a keep-alive
	// comment, the stream is dropped and reconnected. 0:
	// DefaultEventsIdleTimeout.
	IdleTimeout time.Duration
}

// errStreamIdle is a stream on which nothing arrived for IdleTimeout.
var errStreamIdle = errors.New("events stream idle past its timeout")

// Events follows GET /v1/events and calls handle for each event, in order,
// from this goroutine. It reconnects with backoff after a drop, resuming with
// since= the last event id. It returns ErrEventsNotSupported at once when the
// server answers 404, a permanent error (401 that cannot be refreshed, 403),
// or ctx.Err() when ctx ends. Close makes it return ErrClientClosed.
// An event whose data is not valid JSON is logged and skipped (its id still
// counts for resuming); the server's retry: field is ignored in favour of
// the client's backoff.
func (c *Client) Events(ctx context.Context, opt EventsOptions, handle func(Event)) error {
	if c.isClosed() {
		return ErrClientClosed
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.closeCtx, func() { cancel(ErrClientClosed) })
	defer stop()

	st := &eventStream{c: c, opt: opt, since: opt.Since, handle: handle, idle: opt.IdleTimeout}
	if st.idle <= 0 {
		st.idle = DefaultEventsIdleTimeout
	}
	failures := 0
	for {
		healthy, err := st.follow(sctx)
		if sctx.Err() == nil {
			if perr := permanentEventsError(err); perr != nil {
				return perr
			}
			if healthy {
				failures = 0
			} else {
				failures = min(failures+1, maxEventsBackoffStep)
			}
			wait := retryBackoff(c.retry, failures, rand.Float64())
			if opt.OnDrop != nil {
				opt.OnDrop(err)
			}
			// Debug: a reconnection is routine (a proxy's cut, a
			// token's end); trouble is the health view's (health.go).
			c.log.Debug("scaivault events stream dropped; reconnecting",
				"since", st.since, "wait", wait, "error", err)
			err = sleepCtx(sctx, wait)
		}
		if sctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return context.Cause(sctx)
		}
	}
}

// permanentEventsError returns the error Events ends with, or nil when the
// stream is worth reconnecting.
func permanentEventsError(err error) error {
	var apiErr *APIError
	var tokErr *tokenFetchError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound:
		return fmt.Errorf("follow events: %w: %w", ErrEventsNotSupported, err)
	case errors.As(err, &apiErr) && !apiErr.Temporary():
		return fmt.Errorf("follow events: %w", err)
	case errors.As(err, &tokErr) && !tokErr.Temporary():
		return fmt.Errorf("follow events: %w", err)
	}
	return nil
}

// eventStream is the state of one Events call across reconnections.
type eventStream struct {
	c      *Client
	opt    EventsOptions
	since  string
	handle func(Event)
	idle   time.Duration
}

// follow connects once and reads events until the stream ends. healthy
// reports that the connection carried something before it ended.
func (s *eventStream) follow(ctx context.Context) (healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := url.Values{}
	if s.opt.Prefix != "" {
		q.Set("prefix", s.opt.Prefix)
	}
	if s.since != "" {
		q.Set("since", s.since)
	}
	resp, err := s.c.send(ctx, &call{method: http.MethodGet, route: "/v1/events", pattern: "/v1/events", query: q,
		header: http.Header{"Accept": {"text/event-stream"}}, stream: true})
	if err != nil {
		return false, err
	}
	body := resp.raw.Body
	defer body.Close()
	s.c.log.Debug("scaivault events stream connected", "prefix", s.opt.Prefix, "since", s.since)
	if s.opt.OnConnect != nil {
		s.opt.OnConnect()
	}
	// The watchdog runs from the answer (and OnConnect) on; until then the
	// transport's response header timeout applies.
	var idled atomic.Bool
	watchdog := time.AfterFunc(s.idle, func() { idled.Store(true); cancel() })
	defer watchdog.Stop()
	defer func() {
		if err != nil && idled.Load() {
			err = fmt.Errorf("%w: %w", errStreamIdle, err)
		}
	}()
	rd := &sseReader{r: bufio.NewReader(body), onLine: func() {
		healthy = true
		watchdog.Reset(s.idle)
	}}
	for {
		ev, err := rd.next()
		if rd.lastID != "" {
			s.since = rd.lastID
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("events stream ended")
			}
			if errors.Is(err, errTooLarge) {
				// Not healthy: a server that sends the same event again
				// on resuming is followed again with a growing backoff,
				// not at once.
				return false, err
			}
			return healthy, err
		}
		watchdog.Stop() // a slow handler is not a dead stream
		s.dispatch(ev)
		watchdog.Reset(s.idle)
	}
}

func (s *eventStream) dispatch(raw sseEvent) {
	ev := Event{Type: raw.typ, ID: raw.id}
	if raw.data != "" {
		if err := decodeJSON([]byte(raw.data), &ev.Data); err != nil {
			s.c.log.Warn("scaivault event skipped: invalid data", "event", raw.typ, "id", raw.id, "error", err)
			return
		}
	}
	s.handle(ev)
}

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	typ, id, data string
}

// sseReader parses text/event-stream (WHATWG HTML, "Server-sent events"):
// lines end in LF or CRLF; a blank line dispatches; lines starting with ':'
// are comments; "data" lines join with LF; "id" sets the last event id
// (unless it holds NUL); an event without data is not dispatched; an
// unfinished event at the end of the stream is dropped. onLine is called
// for every line, comments included. An event longer than maxEventBytes,
// or any longer line, is an error (see maxEventBytes); the stream is then
// dropped and followed again after a backoff.
type sseReader struct {
	r      *bufio.Reader
	onLine func()
	lastID string
}

// readLine reads one line without its end; a line of more than
// maxEventBytes bytes (its LF included, a CR before it not) is a
// *tooLargeError, read no further.
func (p *sseReader) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := p.r.ReadSlice('\n')
		if len(buf)+len(chunk) > maxEventBytes+1 {
			return "", eventTooLarge()
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		line := strings.TrimSuffix(string(buf[:len(buf)-1]), "\r")
		return line, nil
	}
}

// eventTooLarge names the limit as it is now (tests lower it).
func eventTooLarge() error {
	return &tooLargeError{what: "an event of GET /v1/events", limit: int64(maxEventBytes)}
}

// next returns the next dispatched event.
func (p *sseReader) next() (sseEvent, error) {
	var (
		typ     string
		data    strings.Builder
		hasData bool
		used    int // bytes of this event's field lines so far
	)
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if p.onLine != nil {
			p.onLine()
		}
		if line == "" {
			used = 0
			if !hasData {
				typ = ""
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return sseEvent{typ: typ, id: p.lastID, data: data.String()}, nil
		}
		if line[0] == ':' {
			continue
		}
		if used += len(line) + 1; used > maxEventBytes {
			return sseEvent{}, eventTooLarge()
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.lastID = value
			}
		}
	}
}
