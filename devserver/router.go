package devserver

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// route is one call of the API. Its pattern's "{name}" segments match one
// path segment; "{path}" matches one or more (a secret path).
type route struct {
	method  string
	pattern string
	segs    []string
	public  bool // needs no bearer token (the token endpoint)
	dev     bool // root only; not counted, delayed or faulted
	handle  func(*call) *apiError
}

// name is the route's name in request counts: "GET /v1/secrets/{path}".
func (rt *route) name() string { return rt.method + " " + rt.pattern }

func (s *Server) routeTable() []*route {
	rs := []*route{
		{method: "POST", pattern: "/v1/auth/token", public: true, handle: s.handleToken},
		{method: "GET", pattern: "/v1/auth/whoami", handle: s.handleWhoami},
		{method: "GET", pattern: "/v1/secrets", handle: s.handleList},
		{method: "POST", pattern: "/v1/secrets/batch-read", handle: s.handleBatchRead},
		{method: "PATCH", pattern: "/v1/secrets/{path}/metadata", handle: s.handlePatchMetadata},
		{method: "POST", pattern: "/v1/secrets/{path}/rotate", handle: s.handleRotate},
		{method: "GET", pattern: "/v1/secrets/{path}", handle: s.handleRead},
		{method: "PUT", pattern: "/v1/secrets/{path}", handle: s.handleWrite},
		{method: "DELETE", pattern: "/v1/secrets/{path}", handle: s.handleDelete},
		{method: "POST", pattern: "/v1/dynamic/{engine}/creds/{role}", handle: s.handleGenerate},
		{method: "POST", pattern: "/v1/dynamic/leases/{lease_id}/renew", handle: s.handleRenew},
		{method: "GET", pattern: "/v1/dynamic/leases/{lease_id}", handle: s.handleLookup},
		{method: "DELETE", pattern: "/v1/dynamic/leases/{lease_id}", handle: s.handleRevoke},
		{method: "POST", pattern: "/v1/pki/issue/{role}", handle: s.handleIssue},
		{method: "GET", pattern: "/v1/pki/cas/{ca_id}/pem", handle: s.handleCAPEM},
		{method: "GET", pattern: "/v1/acme/accounts", handle: s.handleACMEAccounts},
		{method: "POST", pattern: "/v1/acme/orders", handle: s.handleCreateOrder},
		{method: "GET", pattern: "/v1/acme/orders", handle: s.handleListOrders},
		{method: "GET", pattern: "/v1/acme/orders/{id}", handle: s.handleReadOrder},
		{method: "POST", pattern: "/v1/policies/test", handle: s.handlePolicyTest},
		{method: "GET", pattern: "/v1/rotation/due", handle: s.handleDue},
		{method: "GET", pattern: "/v1/events", handle: s.handleEvents},
		{method: "GET", pattern: "/v1/dev/faults", dev: true, handle: s.handleGetFaults},
		{method: "POST", pattern: "/v1/dev/faults", dev: true, handle: s.handleSetFaults},
		{method: "GET", pattern: "/v1/dev/stats", dev: true, handle: s.handleStats},
		{method: "POST", pattern: "/v1/dev/leases/{lease_id}/expire", dev: true, handle: s.handleExpireLease},
		{method: "POST", pattern: "/v1/dev/tokens/expire", dev: true, handle: s.handleExpireTokens},
		{method: "POST", pattern: "/v1/dev/acme/orders/{id}/renew", dev: true, handle: s.handleRenewOrder},
	}
	for _, rt := range rs {
		rt.segs = strings.Split(strings.TrimPrefix(rt.pattern, "/"), "/")
	}
	return rs
}

// find picks the route of a request. The path is matched in its escaped
// form, so an encoded slash stays inside its segment; wildcard values come
// back still escaped.
func (s *Server) find(method, escapedPath string) (*route, []string, *apiError) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	var allow []string
	for _, rt := range s.routes {
		args, ok := rt.match(segs)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, args, nil
		}
		allow = append(allow, rt.method)
	}
	if len(allow) > 0 {
		sort.Strings(allow)
		e := errValidation("method %s is not allowed here (allowed: %s)", method, strings.Join(allow, ", "))
		e.status = http.StatusMethodNotAllowed
		e.header = map[string]string{"Allow": strings.Join(allow, ", ")}
		return nil, nil, e
	}
	return nil, nil, errNotFound("no such route: %s %s", method, escapedPath)
}

func (rt *route) match(segs []string) ([]string, bool) {
	multi := -1
	for i, p := range rt.segs {
		if p == "{path}" {
			multi = i
		}
	}
	if multi < 0 {
		if len(segs) != len(rt.segs) {
			return nil, false
		}
		return matchFixed(rt.segs, segs, nil)
	}
	suffix := rt.segs[multi+1:]
	if len(segs) < len(rt.segs) {
		return nil, false
	}
	args, ok := matchFixed(rt.segs[:multi], segs[:multi], nil)
	if !ok {
		return nil, false
	}
	end := len(segs) - len(suffix)
	args = append(args, strings.Join(segs[multi:end], "/"))
	return matchFixed(suffix, segs[end:], args)
}

func matchFixed(pat, segs, args []string) ([]string, bool) {
	for i, p := range pat {
		switch {
		case strings.HasPrefix(p, "{"):
			args = append(args, segs[i])
		case p != segs[i]:
			return nil, false
		}
	}
	return args, true
}

// counters counts requests per route; the map's keys are fixed by New.
type counters struct {
	total   atomic.Int64
	byRoute map[string]*atomic.Int64
}

func newCounters(routes []*route) *counters {
	c := &counters{byRoute: make(map[string]*atomic.Int64, len(routes))}
	for _, rt := range routes {
		c.byRoute[rt.name()] = new(atomic.Int64)
	}
	return c
}

func (c *counters) add(rt *route) {
	c.total.Add(1)
	if rt != nil {
		c.byRoute[rt.name()].Add(1)
	}
}

// Requests is the number of requests served on a route, named like
// "POST /v1/secrets/batch-read" or "GET /v1/secrets/{path}"; "" is the total
// (unknown routes included). Requests to /v1/dev/ are not counted.
func (s *Server) Requests(route string) int64 {
	if route == "" {
		return s.counts.total.Load()
	}
	if n, ok := s.counts.byRoute[route]; ok {
		return n.Load()
	}
	return 0
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{s: s, r: r, rid: newRequestID(), w: &statusWriter{ResponseWriter: w}}
	h := c.w.Header()
	h.Set("X-Request-Id", c.rid)
	h.Set("Cache-Control", "no-store")
	defer s.finish(c, start)
	rt, args, aerr := s.find(r.Method, r.URL.EscapedPath())
	c.args = args
	if !strings.HasPrefix(r.URL.Path, "/v1/dev/") {
		s.counts.add(rt)
		if s.applyFaults(c) {
			return
		}
	}
	if aerr != nil {
		c.fail(aerr)
		return
	}
	r.Body = http.MaxBytesReader(c.w, r.Body, s.maxBody)
	if !rt.public {
		if c.who, aerr = s.authenticate(r); aerr != nil {
			c.fail(aerr)
			return
		}
		if rt.dev && !c.who.root {
			c.fail(errDenied("root", "dev"))
			return
		}
	}
	if aerr := rt.handle(c); aerr != nil {
		c.fail(aerr)
	}
}

// finish turns a panic into a 500 (never a stack trace) and logs the request.
func (s *Server) finish(c *call, start time.Time) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		// Only a runtime error's text is logged: it holds no request data.
		msg := "panic"
		if re, ok := v.(runtime.Error); ok {
			msg = re.Error()
		}
		s.logger.Error("handler panic", "method", c.r.Method, "path", c.r.URL.EscapedPath(),
			"request_id", c.rid, "panic", msg)
		if !c.w.wrote {
			c.fail(errInternal("internal error"))
		}
	}
	status := c.w.status
	if !c.w.wrote {
		status = http.StatusOK
	}
	attrs := []slog.Attr{slog.String("method", c.r.Method), slog.String("path", c.r.URL.EscapedPath()),
		slog.Int("status", status), slog.String("request_id", c.rid),
		slog.Duration("duration", time.Since(start))}
	if c.r.TLS != nil && len(c.r.TLS.PeerCertificates) > 0 {
		attrs = append(attrs, slog.String("client_cert", c.r.TLS.PeerCertificates[0].Subject.String()))
	}
	s.logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

func newRequestID() string { return "req_" + randomHex(10) }
