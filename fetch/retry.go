package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Defaults of RetryPolicy (scaivault-api.md, "Errors").
const (
	defaultMaxRetries = 3
	defaultInitial    = 200 * time.Millisecond
	defaultMultiplier = 1.5
	defaultMaxWait    = 30 * time.Second
)

// withDefaults fills the zero fields of p with the documented defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = defaultMaxRetries
	}
	if p.MaxRetries < 0 {
		p.MaxRetries = 0
	}
	if p.Initial == 0 {
		p.Initial = defaultInitial
	}
	if p.Multiplier == 0 {
		p.Multiplier = defaultMultiplier
	}
	if p.Max == 0 {
		p.Max = defaultMaxWait
	}
	return p
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxRetries < -1:
		return fmt.Errorf("retry policy: MaxRetries %d (want -1 for none, 0 for the default, or more)", p.MaxRetries)
	case p.Initial < 0, p.Max < 0:
		return errors.New("retry policy: negative wait")
	case p.Multiplier != 0 && p.Multiplier < 1:
		return fmt.Errorf("retry policy: multiplier %g below 1", p.Multiplier)
	}
	return nil
}

// retryBackoff is the wait before retry number n (0 for the first retry):
// Initial·Multiplier^n, with ±20% jitter from rnd in [0,1), never above Max.
// p must have its defaults filled in.
func retryBackoff(p RetryPolicy, n int, rnd float64) time.Duration {
	return Backoff(n+1, p.Initial, p.Multiplier, p.Max, rnd)
}

// retryWait is the wait before retry number n after err: the server's
// Retry-After when it sent one, else the backoff.
func retryWait(p RetryPolicy, n int, err error, rnd float64) time.Duration {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return apiErr.RetryAfter
	}
	return retryBackoff(p, n, rnd)
}

// shouldRetry reports whether a failed attempt may be repeated. creates marks
// a request that creates something on the server (generate, issue, rotate):
// it is repeated only when the server cannot have acted on it — a 429 or 503
// answer, a failure to get a token, or a transport error before any byte of
// the request was written. Everything else is idempotent and is also
// repeated after a 500, 502 or 504 and after any transport error or timeout.
func shouldRetry(err error, creates bool) bool {
	if IsTLS(err) {
		return false // the same handshake again fails the same way
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return true
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
			return !creates
		}
		return false
	}
	var tokErr *tokenFetchError
	if errors.As(err, &tokErr) {
		return tokErr.Temporary()
	}
	var tErr *transportError
	if errors.As(err, &tErr) {
		return !creates || !tErr.wrote
	}
	return false
}

// transportError is a failed attempt that got no HTTP answer: a connection
// error, a per-attempt timeout, or a body cut off while being read.
type transportError struct {
	err   error
	wrote bool // some of the request was written, so the server may have acted
}

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// rateGate holds back every request of a client, and of the clients
// derived from it, until a 429's Retry-After has passed.
type rateGate struct {
	mu    sync.Mutex
	until time.Time
	cause error
}

// hold extends the gate to until; cause is the 429 that asked for it.
func (g *rateGate) hold(until time.Time, cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if until.After(g.until) {
		g.until, g.cause = until, cause
	}
}

func (g *rateGate) state() (time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until, g.cause
}

// wait blocks until the gate is open. When ctx's deadline comes before
// that, it returns at once with the 429 that closed the gate, wrapped.
func (g *rateGate) wait(ctx context.Context) error {
	for {
		until, cause := g.state()
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		if deadline, ok := ctx.Deadline(); ok && deadline.Before(until) {
			return fmt.Errorf("held back until %s by the server's Retry-After: %w",
				until.UTC().Format(time.RFC3339), cause)
		}
		if err := sleepCtx(ctx, d); err != nil {
			return err
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fitsDeadline reports whether waiting d still leaves ctx time to try again.
func fitsDeadline(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Now().Add(d).Before(deadline)
}
