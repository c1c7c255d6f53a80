package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Transport timeouts of the default HTTP client. The per-attempt limit is
// Config.RequestTimeout, applied through the request context so that the
// events stream can live without one.
const (
	dialTimeout         = 10 * time.Second
	dialKeepAlive       = 30 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
	// maxIdlePerHost covers batchConcurrency parallel chunks, an events
	// stream and the odd lease renewal beside them.
	maxIdlePerHost = 2 * batchConcurrency
	maxErrorBody   = 64 << 10
)

// newHTTPClient is the one pooled client of a Client. It has no overall
// Timeout: that would cut the events stream. It follows no redirect (a 3xx
// becomes an *APIError): the API has none, and following one could carry
// the bearer token somewhere unexpected. ct (nil: system roots, no client
// certificate) sets its TLS; with a client certificate the transport is
// swapped when the certificate files change (certTransport).
func newHTTPClient(headerTimeout time.Duration, ct *clientTLS) *http.Client {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive}
	newTransport := func(tc *tls.Config) *http.Transport {
		return &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       tc,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   tlsHandshakeTimeout,
			ResponseHeaderTimeout: headerTimeout,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       idleConnTimeout,
			MaxIdleConns:          4 * maxIdlePerHost,
			MaxIdleConnsPerHost:   maxIdlePerHost,
		}
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	switch {
	case ct == nil:
		hc.Transport = newTransport(nil)
	case ct.certs == nil:
		hc.Transport = newTransport(ct.tlsConfig())
	default:
		hc.Transport = newCertTransport(ct, newTransport)
	}
	return hc
}

// call is one API request as the operations describe it.
type call struct {
	method string
	route  string // escaped path below the base URL, e.g. /v1/secrets/app/db
	// pattern is route's template, e.g. /v1/secrets/{path}: what
	// Config.Observer is told (never a path, which may come from a secret).
	pattern string
	query   url.Values
	body    any // JSON-encoded when non-nil
	header  http.Header
	// creates marks a request that creates something (generate, issue,
	// rotate); see shouldRetry.
	creates bool
	// stream leaves the body open and sets no per-attempt timeout.
	stream bool
}

// response is a successful answer: the body read in full, or, for a
// stream, left open in raw.
type response struct {
	status int
	body   []byte
	raw    *http.Response
}

// send runs a call with the retry policy: it waits for the rate gate, gets
// a token, refreshes it once after a 401 where the credential allows, backs
// off between attempts and never sleeps past ctx's deadline.
func (c *Client) send(ctx context.Context, cl *call) (*response, error) {
	if c.isClosed() {
		return nil, ErrClientClosed
	}
	body, err := encodeBody(cl.body)
	if err != nil {
		return nil, err
	}
	renewed := false
	for attempt, retries := 1, 0; ; attempt++ {
		if err := c.gate.wait(ctx); err != nil {
			return nil, err
		}
		resp, sent, err := c.attempt(ctx, cl, body, attempt)
		if err == nil {
			return resp, nil
		}
		c.noteRateLimit(err)
		if ctx.Err() != nil {
			return nil, err
		}
		if !renewed && c.renewAfter(ctx, err, sent) {
			renewed = true
			continue
		}
		if !shouldRetry(err, cl.creates) {
			return nil, err
		}
		if retries >= c.retry.MaxRetries {
			if attempt == 1 {
				return nil, err // retries are switched off
			}
			return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		wait := retryWait(c.retry, retries, err, rand.Float64())
		if !fitsDeadline(ctx, wait) {
			return nil, fmt.Errorf("giving up after %d attempts, no time left before the deadline: %w", attempt, err)
		}
		// Debug: callers log the outcome (the start-up gate and the
		// watcher rate-limit their own warnings).
		c.log.Debug("scaivault request failed; retrying", "method", cl.method, "route", cl.route,
			"attempt", attempt, "wait", wait, "error", err)
		if serr := sleepCtx(ctx, wait); serr != nil {
			return nil, fmt.Errorf("%w; last attempt: %w", serr, err)
		}
		retries++
	}
}

// renewAfter handles a 401: it reports whether the credential was renewed
// and the request should be repeated.
func (c *Client) renewAfter(ctx context.Context, err error, sent string) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		return false
	}
	ok, rerr := c.auth.renew(ctx, apiErr.Code, sent)
	if rerr != nil {
		c.log.Warn("scaivault credential renewal after 401 failed", "auth", c.auth.describe(), "error", rerr)
		return false
	}
	if ok {
		c.log.Debug("scaivault credential renewed after 401", "auth", c.auth.describe())
	}
	return ok
}

// noteRateLimit closes the client-wide gate for a 429's Retry-After.
func (c *Client) noteRateLimit(err error) {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests && apiErr.RetryAfter > 0 {
		c.gate.hold(time.Now().Add(apiErr.RetryAfter), apiErr)
	}
}

// attempt makes one HTTP request. It returns the token it sent, so that a
// 401 can tell whether the credential changed since.
func (c *Client) attempt(ctx context.Context, cl *call, body []byte, n int) (*response, string, error) {
	tok, err := c.auth.token(ctx)
	if err != nil {
		return nil, "", err
	}
	actx, cancel := ctx, context.CancelFunc(func() {})
	if !cl.stream {
		actx, cancel = context.WithTimeout(ctx, c.reqTimeout)
	}
	var wrote, handshook atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteHeaders:     func() { wrote.Store(true) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) { handshook.Store(err == nil) },
	})
	req, err := c.newRequest(actx, cl, body, tok)
	if err != nil {
		cancel()
		return nil, tok, err
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		c.logAttempt(cl, n, 0, "", start, err)
		c.observe(cl, 0)
		te := c.tls.classify(err)
		if te == nil && handshook.Load() {
			// A connection that dies right after its handshake: maybe
			// a refused client certificate (see probe).
			te = c.tls.probe(ctx, req)
		}
		if te != nil {
			c.health.attempt(ctx, cl.pattern, 0, te)
			return nil, tok, te
		}
		terr := &transportError{err: err, wrote: wrote.Load()}
		c.health.attempt(ctx, cl.pattern, 0, terr)
		return nil, tok, terr
	}
	c.logAttempt(cl, n, resp.StatusCode, resp.Header.Get("X-Request-Id"), start, nil)
	c.observe(cl, resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		defer cancel()
		apiErr := readAPIError(resp)
		c.health.attempt(ctx, cl.pattern, resp.StatusCode, apiErr)
		return nil, tok, apiErr
	}
	if cl.stream {
		c.health.attempt(ctx, cl.pattern, resp.StatusCode, nil)
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return &response{status: resp.StatusCode, raw: resp}, tok, nil
	}
	defer cancel()
	defer resp.Body.Close()
	data, err := readBounded(resp.Body, maxResponseBody)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			c.health.attempt(ctx, cl.pattern, resp.StatusCode, nil)
			return nil, tok, &tooLargeError{what: "answer to " + cl.method + " " + cl.route, limit: maxResponseBody}
		}
		terr := &transportError{err: fmt.Errorf("read answer: %w", err), wrote: true}
		c.health.attempt(ctx, cl.pattern, 0, terr)
		return nil, tok, terr
	}
	c.health.attempt(ctx, cl.pattern, resp.StatusCode, nil)
	return &response{status: resp.StatusCode, body: data}, tok, nil
}

func (c *Client) newRequest(ctx context.Context, cl *call, body []byte, tok string) (*http.Request, error) {
	u := c.baseURL + cl.route
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", c.userAgent)
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (c *Client) logAttempt(cl *call, n, status int, reqID string, start time.Time, err error) {
	attrs := []any{"method", cl.method, "route", cl.route, "attempt", n,
		"status", status, "request_id", reqID, "duration", time.Since(start)}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	c.log.Debug("scaivault request", attrs...)
}

// observe reports one attempt's outcome to Config.Observer.
func (c *Client) observe(cl *call, status int) {
	if c.observer != nil {
		c.observer.ObserveResponse(cl.method, cl.pattern, status)
	}
}

// cancelBody ends a stream's request context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func encodeBody(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return data, nil
}

// readAPIError turns a non-2xx answer into an *APIError. A body that is not
// the contract's error object still gives an APIError with the status.
func readAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	e := &APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil {
		e.Code, e.Message, e.Details = eb.Error.Code, eb.Error.Message, eb.Error.Details
		if e.RequestID == "" {
			e.RequestID = eb.Error.RequestID
		}
	} else if resp.StatusCode == http.StatusBadRequest && resp.Request != nil && resp.Request.URL.Scheme == "http" &&
		(bytes.Contains(data, []byte("HTTP request to an HTTPS server")) || bytes.Contains(data, []byte("plain HTTP request was sent to HTTPS port"))) {
		// Go's and nginx's answers to plain HTTP on a TLS port.
		e.Message = "the server speaks HTTPS: use https:// in " + EnvBaseURL
	} else if resp.StatusCode == http.StatusBadRequest && bytes.Contains(data, []byte("No required SSL certificate was sent")) {
		// nginx with ssl_verify_client on answers a missing certificate so.
		e.Message = "the server requires a client certificate: set " + EnvClientCert + " and " + EnvClientKey
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), e.Details)
	return e
}

// retryAfter reads the Retry-After header (seconds or an HTTP date), else
// details.retry_after. A wait past what a time.Duration holds is capped
// there rather than wrapped around.
func retryAfter(h string, details map[string]any) time.Duration {
	if h != "" {
		if n, err := strconv.ParseInt(h, 10, 64); (err == nil || isRangeErr(err)) && n >= 0 {
			return time.Duration(min(n, maxDurationSeconds)) * time.Second
		}
		if t, err := http.ParseTime(h); err == nil {
			return max(time.Until(t), 0)
		}
	}
	if n, ok := details["retry_after"].(float64); ok && n > 0 {
		return time.Duration(min(n, float64(maxDurationSeconds)) * float64(time.Second))
	}
	return 0
}

// decodeJSON decodes an answer. Its error never quotes the body.
func decodeJSON(data []byte, out any) error {
	if err := json.Unmarshal(data, out); err != nil {
		return &decodeError{err: err}
	}
	return nil
}

// decodeError is an answer that did not decode. encoding/json's messages
// can quote a piece of the input (a secret, maybe), so the message names
// only where it went wrong; the cause stays reachable through Unwrap.
type decodeError struct{ err error }

func (e *decodeError) Unwrap() error { return e.err }

func (e *decodeError) Error() string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(e.err, &se):
		return fmt.Sprintf("decode answer: invalid JSON at offset %d", se.Offset)
	case errors.As(e.err, &te):
		return fmt.Sprintf("decode answer: field %q: want %s", te.Field, te.Type)
	}
	return "decode answer: invalid JSON"
}
