package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"
)

func TestRetryBackoffSchedule(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	if p.MaxRetries != 3 || p.Initial != 200*time.Millisecond || p.Multiplier != 1.5 || p.Max != 30*time.Second {
		t.Fatalf("defaults = %+v", p)
	}
	tests := []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{0, 0.5, 200 * time.Millisecond},
		{1, 0.5, 300 * time.Millisecond},
		{2, 0.5, 450 * time.Millisecond},
		{0, 0, 160 * time.Millisecond},          // -20% jitter
		{0, 0.9999, 239_992 * time.Microsecond}, // +20% jitter, just under
		{20, 0.5, 30 * time.Second},             // capped
		{20, 0.9999, 30 * time.Second},          // jitter never passes the cap
		{1000, 0.5, 30 * time.Second},           // no overflow
	}
	for _, tt := range tests {
		got := retryBackoff(p, tt.n, tt.rnd)
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("retryBackoff(n=%d, rnd=%v) = %v, want %v", tt.n, tt.rnd, got, tt.want)
		}
	}
	if got := (RetryPolicy{MaxRetries: -1}).withDefaults().MaxRetries; got != 0 {
		t.Errorf("MaxRetries -1 gives %d retries", got)
	}
}

func TestRetryWaitHonoursRetryAfter(t *testing.T) {
	p := RetryPolicy{}.withDefaults()
	err := &APIError{StatusCode: 429, RetryAfter: 7 * time.Second}
	if got := retryWait(p, 0, err, 0.5); got != 7*time.Second {
		t.Errorf("wait = %v, want the Retry-After", got)
	}
	if got := retryWait(p, 1, &APIError{StatusCode: 503}, 0.5); got != 300*time.Millisecond {
		t.Errorf("wait = %v, want the backoff", got)
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	bad := []RetryPolicy{{MaxRetries: -2}, {Initial: -1}, {Max: -1}, {Multiplier: 0.5}}
	for _, p := range bad {
		if p.validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
	if err := (RetryPolicy{MaxRetries: -1, Multiplier: 2}).validate(); err != nil {
		t.Error(err)
	}
}

func TestShouldRetry(t *testing.T) {
	api := func(s int) error { return &APIError{StatusCode: s} }
	netErr := &url.Error{Op: "Get", URL: "http://x", Err: errors.New("connection refused")}
	tests := []struct {
		name    string
		err     error
		creates bool
		want    bool
	}{
		{"429", api(429), false, true},
		{"429 create", api(429), true, true},
		{"503 create", api(503), true, true},
		{"500", api(500), false, true},
		{"500 create", api(500), true, false},
		{"502 create", api(502), true, false},
		{"504", api(504), false, true},
		{"400", api(400), false, false},
		{"401", api(401), false, false},
		{"403", api(403), false, false},
		{"404", api(404), false, false},
		{"409", api(409), false, false},
		{"conn before write create", &transportError{err: netErr}, true, true},
		{"conn after write create", &transportError{err: netErr, wrote: true}, true, false},
		{"conn after write read", &transportError{err: netErr, wrote: true}, false, true},
		{"wrapped", errorsWrap(api(503)), false, true},
		{"token endpoint down", &tokenFetchError{err: netErr}, true, true},
		{"token rejected", &tokenFetchError{err: retrieveErr(401, `{"error":"invalid_client"}`)}, false, false},
		{"token endpoint 503", &tokenFetchError{err: retrieveErr(503, "")}, false, true},
		{"other", errors.New("boom"), false, false},
	}
	for _, tt := range tests {
		if got := shouldRetry(tt.err, tt.creates); got != tt.want {
			t.Errorf("%s: shouldRetry = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func errorsWrap(err error) error { return &transportWrap{err} }

type transportWrap struct{ err error }

func (w *transportWrap) Error() string { return "wrapped: " + w.err.Error() }
func (w *transportWrap) Unwrap() error { return w.err }

func retrieveErr(status int, body string) *oauth2.RetrieveError {
	re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: status, Status: http.StatusText(status)}, Body: []byte(body)}
	var te TokenError
	if json.Unmarshal([]byte(body), &te) == nil {
		re.ErrorCode, re.ErrorDescription = te.Error, te.ErrorDescription
	}
	return re
}

func TestRetryAfterParsing(t *testing.T) {
	if got := retryAfter("3", nil); got != 3*time.Second {
		t.Errorf("header: %v", got)
	}
	if got := retryAfter("", map[string]any{"retry_after": float64(2)}); got != 2*time.Second {
		t.Errorf("details: %v", got)
	}
	if got := retryAfter("soon", nil); got != 0 {
		t.Errorf("garbage: %v", got)
	}
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got := retryAfter(date, nil); got < 59*time.Minute || got > time.Hour {
		t.Errorf("date: %v", got)
	}
	// Past what a time.Duration holds: capped, never wrapped around to a
	// negative or short wait (found by FuzzDecodeAnswers).
	capped := time.Duration(maxDurationSeconds) * time.Second
	for _, h := range []string{"9223372037", "99999999999999999999"} {
		if got := retryAfter(h, nil); got != capped {
			t.Errorf("header %s: %v, want %v", h, got, capped)
		}
	}
	if got := retryAfter("", map[string]any{"retry_after": 1e300}); got != capped {
		t.Errorf("details 1e300: %v, want %v", got, capped)
	}
}

func TestReadAPIError(t *testing.T) {
	mk := func(status int, body string, h http.Header) *APIError {
		if h == nil {
			h = http.Header{}
		}
		return readAPIError(&http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))})
	}
	e := mk(404, `{"error":{"code":"not_found","message":"secret app/x not found","details":{},"request_id":"req_1"}}`,
		http.Header{"X-Request-Id": {"req_1"}})
	if e.Code != CodeNotFound || e.RequestID != "req_1" || !errors.Is(e, ErrNotFound) {
		t.Errorf("parsed %+v", e)
	}
	if got := e.Error(); got != "secret app/x not found (req_1)" {
		t.Errorf("message %q", got)
	}
	e = mk(502, `<html>bad gateway</html>`, nil)
	if e.StatusCode != 502 || e.Code != "" || !strings.EqualFold(e.Error(), "bad gateway") || !e.Temporary() {
		t.Errorf("unparsable body gave %+v (%q)", e, e.Error())
	}
	e = mk(429, `{"error":{"code":"rate_limited","message":"slow down","details":{"retry_after":4}}}`, nil)
	if e.RetryAfter != 4*time.Second || e.RequestID != "" {
		t.Errorf("retry after from details: %+v", e)
	}
}

func TestRateGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g rateGate
		cause := &APIError{StatusCode: 429, Code: CodeRateLimited}
		start := time.Now()
		g.hold(start.Add(2*time.Second), cause)
		g.hold(start.Add(time.Second), cause) // never shortens
		if err := g.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("waited %v, want 2s", got)
		}
		g.hold(time.Now().Add(5*time.Second), cause)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		before := time.Now()
		err := g.wait(ctx)
		if !errors.Is(err, ErrRateLimited) || time.Since(before) != 0 {
			t.Errorf("gate past the deadline: err %v after %v, want ErrRateLimited at once", err, time.Since(before))
		}
	})
}

func TestTokenFetchErrorNeverQuotesBody(t *testing.T) {
	const secret = "tok-SECRET-123"
	errs := []*tokenFetchError{
		{url: "http://127.0.0.1/v1/auth/token", err: retrieveErr(500, `{"access_token":"`+secret+`"`)},
		{url: "http://127.0.0.1/v1/auth/token", err: errors.New("oauth2: cannot parse json: " + secret)},
		{url: "http://127.0.0.1/v1/auth/token", err: retrieveErr(401, `{"error":"invalid_client","error_description":"bad client"}`)},
	}
	for _, e := range errs {
		if strings.Contains(e.Error(), secret) {
			t.Errorf("message quotes the body: %q", e.Error())
		}
	}
	if !errors.Is(errs[2], ErrAuthentication) || errs[2].Temporary() {
		t.Error("invalid_client is not a permanent authentication error")
	}
	if !strings.Contains(errs[2].Error(), "invalid_client: bad client") {
		t.Errorf("message %q lacks the RFC 6749 code", errs[2].Error())
	}
	if errors.Is(errs[0], ErrAuthentication) || !errs[0].Temporary() {
		t.Error("a 500 from the token endpoint is temporary")
	}
}

func TestDecodeErrorNeverQuotesBody(t *testing.T) {
	for _, body := range []string{`{"data": x-SECRET}`, `{"version": "SECRET"}`, `SECRET`} {
		var s Secret
		err := decodeJSON([]byte(body), &s)
		if err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "'x'") {
			t.Errorf("decode %q: %v", body, err)
		}
	}
}

func TestRefreshTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, e := refreshTimes(t0, time.Hour)
	if !r.Equal(t0.Add(48*time.Minute)) || !e.Equal(t0.Add(time.Hour)) {
		t.Errorf("1h token: refresh %v expire %v", r, e)
	}
	if r, e := refreshTimes(t0, 0); !r.IsZero() || !e.IsZero() {
		t.Error("unknown lifetime must mean no scheduled refresh")
	}
}

func TestCheckToken(t *testing.T) {
	for _, tok := range []string{"", "a b", "a\nb", "a\x7f"} {
		err := checkToken(tok)
		if err == nil || (tok != "" && strings.Contains(err.Error(), tok)) {
			t.Errorf("checkToken(%q) = %v", tok, err)
		}
	}
	if err := checkToken("dev-root.abc_123~"); err != nil {
		t.Error(err)
	}
}
