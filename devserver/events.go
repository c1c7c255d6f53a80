package devserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// subscriberBuffer is how many events a stream may fall behind before it is
// ended (the client resumes with since=).
const subscriberBuffer = 256

type storedEvent struct {
	seq  int64
	typ  string
	data fetch.EventData
	enc  []byte // JSON of data
}

// eventHub numbers events, keeps the last ones in a ring for since=
// resumes, and fans them out to subscribers without ever blocking.
type eventHub struct {
	mu     sync.Mutex
	seq    int64
	ring   []storedEvent // the newest len(ring) events, oldest first after start
	start  int
	size   int
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch chan storedEvent
}

func newEventHub(size int) *eventHub {
	return &eventHub{size: max(size, 1), subs: map[*subscriber]struct{}{}}
}

// publish records an event and offers it to every subscriber; one that is
// too far behind is dropped (its channel closed).
func (h *eventHub) publish(typ string, data fetch.EventData) {
	enc, _ := json.Marshal(data)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ev := storedEvent{seq: h.seq, typ: typ, data: data, enc: enc}
	if len(h.ring) < h.size {
		h.ring = append(h.ring, ev)
	} else {
		h.ring[h.start] = ev
		h.start = (h.start + 1) % h.size
	}
	for sub := range h.subs {
		select {
		case sub.ch <- ev:
		default:
			delete(h.subs, sub)
			close(sub.ch)
		}
	}
}

// subscribe returns the kept events after since (since < 0: none) and a
// subscriber for what follows, atomically so that nothing falls between.
func (h *eventHub) subscribe(since int64) ([]storedEvent, *subscriber, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false
	}
	var replay []storedEvent
	if since >= 0 {
		for i := range h.ring {
			ev := h.ring[(h.start+i)%len(h.ring)]
			if ev.seq > since {
				replay = append(replay, ev)
			}
		}
	}
	sub := &subscriber{ch: make(chan storedEvent, subscriberBuffer)}
	h.subs[sub] = struct{}{}
	return replay, sub, true
}

func (h *eventHub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		close(sub.ch)
	}
}

// close ends every stream and refuses new ones.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub.ch)
	}
}

func (h *eventHub) lastSeq() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

func (h *eventHub) setSeq(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq = n
}

// visible decides whether a subscriber sees an event: secret events under
// its prefix on paths it may read or list; lease.revoked whatever the prefix
// when it holds the dynamic permission on the lease's role; acme.renewed
// whatever the prefix when it holds the acme permission on the account.
func (s *Server) visible(who *identity, prefix string, ev storedEvent) bool {
	switch ev.typ {
	case fetch.EventLeaseRevoked:
		return who.can(permDynamic, "dynamic/"+ev.data.Engine+"/"+ev.data.Role)
	case fetch.EventACMERenewed:
		a := s.cfg.acmeByID[ev.data.AccountID]
		return a != nil && who.can(permACME, a.resource())
	}
	p := ev.data.Path
	return strings.HasPrefix(p, prefix) && (who.can(permRead, p) || who.can(permList, p))
}

func (s *Server) handleEvents(c *call) *apiError {
	q, aerr := c.query()
	if aerr != nil {
		return aerr
	}
	since := int64(-1)
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errValidation("since: not an event id of this server")
		}
		since = n
	}
	replay, sub, ok := s.hub.subscribe(since)
	if !ok {
		return newAPIError(fetch.CodeUnavailable, "server is shutting down")
	}
	defer s.hub.unsubscribe(sub)
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	prefix := q.Get("prefix")
	for _, ev := range replay {
		if s.visible(c.who, prefix, ev) && writeEvent(c.w, ev) != nil {
			return nil
		}
	}
	c.w.Flush()
	s.streamEvents(c, sub, prefix)
	return nil
}

// streamEvents writes events and keep-alive comments until the client goes,
// the subscriber is dropped, the token expires or the server closes.
func (s *Server) streamEvents(c *call, sub *subscriber, prefix string) {
	tick := time.NewTicker(s.keepAlive)
	defer tick.Stop()
	var expired <-chan time.Time
	if !c.who.root {
		t := time.NewTimer(c.who.expiresAt.Sub(s.now()))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				return
			}
			if !s.visible(c.who, prefix, ev) {
				continue
			}
			if writeEvent(c.w, ev) != nil {
				return
			}
		case <-tick.C:
			if _, err := fmt.Fprint(c.w, ": keep-alive\n\n"); err != nil {
				return
			}
		case <-expired:
			return
		case <-c.r.Context().Done():
			return
		}
		c.w.Flush()
	}
}

func writeEvent(w http.ResponseWriter, ev storedEvent) error {
	_, err := fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", ev.typ, ev.seq, ev.enc)
	return err
}
