package devserver

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// Faults are the fault-injection knobs (also POST /v1/dev/faults).
type Faults struct {
	Rate       float64       // fraction of requests answered with Status
	Latency    time.Duration // added before every answer
	Status     int           // 0: 503
	RetryAfter int           // seconds for the Retry-After header; 0: none for 503, 1 for 429
	Next       int           // answer exactly the next N requests with Status, then stop
	PathPrefix string        // only requests whose URL path starts with this; "" all
}

type faultKnobs struct {
	mu sync.Mutex
	f  Faults
}

func (k *faultKnobs) set(f Faults) {
	k.mu.Lock()
	k.f = f
	k.mu.Unlock()
}

func (k *faultKnobs) get() Faults {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f
}

// take decides the fate of one request: the latency to add and whether it
// is answered with an injected error.
func (k *faultKnobs) take(path string) (f Faults, hit bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f = k.f
	if f.PathPrefix != "" && !strings.HasPrefix(path, f.PathPrefix) {
		return Faults{}, false
	}
	switch {
	case k.f.Next > 0:
		k.f.Next--
		hit = true
	case f.Rate > 0:
		hit = rand.Float64() < f.Rate
	}
	return f, hit
}

// SetFaults replaces the fault knobs; the zero Faults turns injection off.
func (s *Server) SetFaults(f Faults) { s.faults.set(f) }

// applyFaults adds the latency and answers an injected error; it reports
// whether the request was answered.
func (s *Server) applyFaults(c *call) bool {
	f, hit := s.faults.take(c.r.URL.Path)
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
		case <-s.done:
		}
		t.Stop()
	}
	if !hit {
		return false
	}
	status := f.Status
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	e := &apiError{status: status, code: codeForStatus(status), msg: "injected fault", retryAfter: f.RetryAfter}
	if status == http.StatusTooManyRequests && e.retryAfter == 0 {
		e.retryAfter = 1
	}
	c.fail(e)
	return true
}

// codeForStatus is the contract's code for an injected status; 401 is
// invalid_token, so that clients exercise their token refresh.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return fetch.CodeValidation
	case http.StatusUnauthorized:
		return fetch.CodeInvalidToken
	case http.StatusForbidden:
		return fetch.CodeAccessDenied
	case http.StatusNotFound:
		return fetch.CodeNotFound
	case http.StatusConflict:
		return fetch.CodeConflict
	case http.StatusTooManyRequests:
		return fetch.CodeRateLimited
	case http.StatusServiceUnavailable:
		return fetch.CodeUnavailable
	}
	return fetch.CodeInternal
}

// faultsJSON is the wire form of Faults.
type faultsJSON struct {
	Rate       float64 `json:"rate"`
	Latency    string  `json:"latency"`
	Status     int     `json:"status"`
	RetryAfter int     `json:"retry_after"`
	Next       int     `json:"next"`
	PathPrefix string  `json:"path_prefix"`
}

func (s *Server) handleGetFaults(c *call) *apiError {
	c.json(http.StatusOK, faultsToJSON(s.faults.get()))
	return nil
}

func faultsToJSON(f Faults) faultsJSON {
	return faultsJSON{Rate: f.Rate, Latency: f.Latency.String(), Status: f.Status,
		RetryAfter: f.RetryAfter, Next: f.Next, PathPrefix: f.PathPrefix}
}

func (s *Server) handleSetFaults(c *call) *apiError {
	var req faultsJSON
	if aerr := c.decode(&req, true); aerr != nil {
		return aerr
	}
	f := Faults{Rate: req.Rate, Status: req.Status, RetryAfter: req.RetryAfter, Next: req.Next, PathPrefix: req.PathPrefix}
	switch {
	case req.Rate < 0 || req.Rate > 1:
		return errValidation("rate: want 0 to 1")
	case req.Status != 0 && (req.Status < 400 || req.Status > 599):
		return errValidation("status: want an HTTP error status (400-599)")
	case req.RetryAfter < 0:
		return errValidation("retry_after: want 0 or more seconds")
	case req.Next < 0:
		return errValidation("next: want 0 or more")
	}
	if req.Latency != "" {
		d, err := fetch.ParseDuration(req.Latency)
		if err != nil {
			return errValidation("latency: %v", err)
		}
		f.Latency = d
	}
	s.SetFaults(f)
	c.json(http.StatusOK, faultsToJSON(f))
	return nil
}

func (s *Server) handleStats(c *call) *apiError {
	routes := map[string]int64{}
	for name, n := range s.counts.byRoute {
		if v := n.Load(); v > 0 {
			routes[name] = v
		}
	}
	c.json(http.StatusOK, map[string]any{"total": s.counts.total.Load(), "routes": routes})
	return nil
}

// handleExpireLease ends a lease now, or {"in": "2s"} from now (its
// max_expires_at too, so that no renewal passes it). No event is sent.
func (s *Server) handleExpireLease(c *call) *apiError {
	id, aerr := c.name(0, "lease_id")
	if aerr != nil {
		return aerr
	}
	var req struct {
		In string `json:"in"`
	}
	if aerr := c.decode(&req, true); aerr != nil {
		return aerr
	}
	var in time.Duration
	if req.In != "" {
		d, err := fetch.ParseDuration(req.In)
		if err != nil {
			return errValidation("in: %v", err)
		}
		in = d
	}
	s.mu.Lock()
	l := s.leases[id]
	if l == nil || !l.alive(s.now()) {
		s.mu.Unlock()
		return errNotFound("lease %s not found (expired or revoked)", id)
	}
	l.ExpiresAt = s.now().Add(in)
	if l.MaxExpiresAt.After(l.ExpiresAt) {
		l.MaxExpiresAt = l.ExpiresAt
	}
	fl := l.wire(s.now(), false)
	s.mu.Unlock()
	s.kick()
	return s.saved(c, http.StatusOK, fl)
}

// handleExpireTokens expires every client token, or {"client_id": "app"}'s.
func (s *Server) handleExpireTokens(c *call) *apiError {
	var req struct {
		ClientID string `json:"client_id"`
	}
	if aerr := c.decode(&req, true); aerr != nil {
		return aerr
	}
	n := 0
	s.mu.Lock()
	now := s.now()
	for _, t := range s.tokens {
		if (req.ClientID == "" || t.ClientID == req.ClientID) && t.ExpiresAt.After(now) {
			t.ExpiresAt = now
			n++
		}
	}
	s.mu.Unlock()
	return s.saved(c, http.StatusOK, map[string]any{"expired": n})
}
