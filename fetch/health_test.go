package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"
)

// The health view's rules (health.go), on fake time: each test reports
// outcomes as the requests would and reads the log.

type healthLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *healthLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *healthLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines are the log lines matching re.
func (l *healthLog) lines(re string) []string {
	return regexp.MustCompile(`(?m)^.*`+re+`.*$`).FindAllString(l.String(), -1)
}

// loggingHealth is a health view with LogOutages in force.
func loggingHealth(t *testing.T, p OutagePolicy) (*health, *healthLog) {
	t.Helper()
	log := &healthLog{}
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", Token: "tok-health", Outage: p,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.LogOutages())
	return c.health, log
}

var (
	errRefused = &transportError{err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	err503     = &APIError{StatusCode: http.StatusServiceUnavailable, Code: "unavailable", Message: "injected fault"}
)

// at sleeps (fake time) until d after start.
func at(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
}

// TestHealthOutage: a server that refuses connections for two minutes:
// one warning at the threshold, one a minute after with the count, one
// line at the end with how long it lasted; nothing at info before it.
func TestHealthOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, log := loggingHealth(t, OutagePolicy{})
		start := time.Now()
		for s := 0; s <= 129; s += 3 { // the events stream reconnecting
			at(start, time.Duration(s)*time.Second)
			h.report("events", unreachable, 0, errRefused)
			if s%30 == 0 { // the polls
				h.report("secrets", unreachable, 0, errRefused)
			}
		}
		at(start, 130*time.Second)
		h.report("events", answered, 200, nil)
		if got := log.lines(`answering normally again`); len(got) != 0 {
			t.Errorf("recovery while the secret reads still fail: %q", got)
		}
		at(start, 131*time.Second)
		h.report("secrets", answered, 200, nil)
		time.Sleep(time.Minute)

		first := log.lines(`level=WARN msg="scaivault unreachable; the child keeps running on what it has"`)
		if len(first) != 1 || !strings.Contains(first[0], " for=10s failures=5 failing=events,secrets ") {
			t.Errorf("first warnings %q, want one at 10s", first)
		}
		still := log.lines(`level=WARN msg="scaivault still unreachable"`)
		if len(still) != 1 || !strings.Contains(still[0], " for=1m12s failures=28 ") {
			t.Errorf("repeated warnings %q, want one at 1m12s with the count", still)
		}
		end := log.lines(`level=INFO msg="scaivault answering normally again"`)
		if len(end) != 1 || !strings.Contains(end[0], " after=2m11s failures=49") {
			t.Errorf("recovery lines %q, want one after 2m11s", end)
		}
		if n := len(log.lines(`level=(INFO|WARN|ERROR)`)); n != 3 {
			t.Errorf("%d lines at info or above, want 3:\n%s", n, log)
		}
		if n := len(log.lines(`answering with errors`)); n != 0 {
			t.Errorf("refused connections logged as errors:\n%s", log)
		}
	})
}

// TestHealthBlip: trouble shorter than the threshold is logged at debug
// only.
func TestHealthBlip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, log := loggingHealth(t, OutagePolicy{})
		for range 5 {
			h.report("events", unreachable, 0, errRefused)
			time.Sleep(time.Second)
		}
		h.report("events", answered, 200, nil)
		time.Sleep(time.Minute)
		if n := len(log.lines(`level=(INFO|WARN|ERROR)`)); n != 0 {
			t.Errorf("a 5s blip logged above debug:\n%s", log)
		}
		if n := len(log.lines(`level=DEBUG msg="scaivault answering normally again" after=5s failures=5`)); n != 1 {
			t.Errorf("no debug line at the blip's end:\n%s", log)
		}
	})
}

// TestHealthErrorsIntermittent: a third of the requests answered 503: one
// trouble, warned as errors (never "unreachable") once a minute at most,
// and over when the errors stop.
func TestHealthErrorsIntermittent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, log := loggingHealth(t, OutagePolicy{})
		start := time.Now()
		for i := range 200 { // every 1.5s, a third of them failing
			at(start, time.Duration(i)*1500*time.Millisecond)
			if i%3 == 0 {
				h.report("leases", erroring, 503, err503)
			} else {
				h.report("leases", answered, 200, nil)
			}
		}
		if n := len(log.lines(`answering normally again`)); n != 0 {
			t.Errorf("trouble ended while a third of the requests fail:\n%s", log)
		}
		time.Sleep(time.Minute)
		if n := len(log.lines(`unreachable`)); n != 0 {
			t.Errorf("503s logged as unreachable:\n%s", log)
		}
		first := log.lines(`level=WARN msg="scaivault answering with errors; the child keeps running on what it has"`)
		if len(first) != 1 || !strings.Contains(first[0], " for=10s failures=3 failing=leases status=503 ") {
			t.Errorf("first warnings %q, want one at 10s", first)
		}
		if n := len(log.lines(`level=WARN msg="scaivault still answering with errors"`)); n != 4 {
			t.Errorf("%d repeated warnings in 5 minutes, want 4 (one a minute):\n%s", n, log)
		}
		if n := len(log.lines(`level=INFO msg="scaivault answering normally again" after=4m58.5s failures=67`)); n != 1 {
			t.Errorf("no single recovery line:\n%s", log)
		}
	})
}

// TestHealthOtherKindNoRecovery: renewals that work while the secret
// reads fail do not end the trouble.
func TestHealthOtherKindNoRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, log := loggingHealth(t, OutagePolicy{})
		start := time.Now()
		for s := 0; s < 180; s++ {
			at(start, time.Duration(s)*time.Second)
			if s%2 == 0 {
				h.report("leases", answered, 200, nil)
			}
			if s%5 == 0 {
				h.report("secrets", erroring, 503, err503)
			}
		}
		if n := len(log.lines(`answering normally again`)); n != 0 {
			t.Errorf("a renewal ended the trouble while the secret reads fail:\n%s", log)
		}
		if n := len(log.lines(`level=WARN msg="scaivault answering with errors; .* failing=secrets status=503`)); n != 1 {
			t.Errorf("no warning naming the secret reads:\n%s", log)
		}
		h.report("secrets", answered, 200, nil)
		time.Sleep(time.Minute)
		if n := len(log.lines(`level=INFO msg="scaivault answering normally again"`)); n != 1 {
			t.Errorf("no recovery once the secret reads work:\n%s", log)
		}
	})
}

// TestHealthForget: a kind that failed and is not tried again holds the
// trouble open for outageForget at most while others are answered.
func TestHealthForget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, log := loggingHealth(t, OutagePolicy{})
		h.report("leases", erroring, 503, err503)
		for range 11 {
			time.Sleep(30 * time.Second)
			h.report("secrets", answered, 200, nil)
		}
		time.Sleep(time.Second)
		if n := len(log.lines(`level=WARN msg="scaivault answering with errors`)); n != 1 {
			t.Errorf("%d warnings, want the one at 10s:\n%s", n, log)
		}
		if n := len(log.lines(`level=INFO msg="scaivault answering normally again" after=5m0s failures=1`)); n != 1 {
			t.Errorf("the untried kind held the trouble open past 5 minutes:\n%s", log)
		}
	})
}

// TestHealthEveryAcrossTroubles: a new trouble soon after one that was
// warned about waits out the minute since that warning.
func TestHealthEveryAcrossTroubles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, log := loggingHealth(t, OutagePolicy{})
		start := time.Now()
		h.report("events", unreachable, 0, errRefused)
		at(start, 20*time.Second)
		h.report("events", answered, 200, nil)
		// The first trouble ended at 20s: nothing failed since 10s before.
		for s := 35; s <= 80; s++ {
			at(start, time.Duration(s)*time.Second)
			h.report("events", unreachable, 0, errRefused)
		}
		warns := log.lines(`level=WARN`)
		if len(warns) != 2 || !strings.Contains(warns[1], "msg=\"scaivault unreachable; the child keeps running on what it has\" for=35s") {
			t.Errorf("warnings %q, want the second trouble's at 1m10s, a minute after the first", warns)
		}
	})
}

// TestHealthQuiet: nothing is logged or tracked without LogOutages, after
// its stop, or for a context that ended.
func TestHealthQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &healthLog{}
		c, err := New(Config{BaseURL: "http://127.0.0.1:1", Token: "tok-health",
			Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		h := c.health
		fail := func(ctx context.Context) {
			for range 30 {
				h.attempt(ctx, "/v1/events", 0, errRefused)
				time.Sleep(time.Second)
			}
		}
		fail(context.Background())
		stop := c.LogOutages()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		fail(ctx)
		stop()
		fail(context.Background())
		time.Sleep(time.Minute)
		if s := log.String(); strings.Contains(s, "scaivault") && strings.Contains(s, "level=WARN") {
			t.Errorf("logged without LogOutages or for an ended context:\n%s", s)
		}
		d, err := c.WithRetry(RetryPolicy{MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer d.LogOutages()()
		fail(context.Background())
		if n := len(log.lines(`level=WARN msg="scaivault unreachable`)); n != 1 {
			t.Errorf("a derived client's LogOutages: %d warnings, want 1", n)
		}
	})
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want outcome
	}{
		{nil, answered},
		{errRefused, unreachable},
		{fmt.Errorf("giving up after 4 attempts: %w", errRefused), unreachable},
		{&transportError{err: context.DeadlineExceeded}, unreachable},
		{&TLSError{msg: "handshake"}, unreachable},
		{err503, erroring},
		{&APIError{StatusCode: 429}, erroring},
		{&APIError{StatusCode: 502}, erroring},
		{&APIError{StatusCode: 404}, answered},
		{&APIError{StatusCode: 403}, answered},
		{&tokenFetchError{err: &oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}}}, erroring},
		{&tokenFetchError{err: &oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}}}, answered},
		{&decodeError{err: errors.New("x")}, answered},
		{errors.Join(errRefused, err503), erroring}, // an answer came
	} {
		if got := outcomeOf(tc.err); got != tc.want {
			t.Errorf("outcomeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHealthTokenEndpoint: a token endpoint answering 503 is trouble of
// kind token, logged with the redacted error (oauth2's quotes the body).
func TestHealthTokenEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &healthLog{}
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Request: r,
				Header: http.Header{"Content-Type": {"text/plain"}},
				Body:   io.NopCloser(strings.NewReader("upstream down: BODY-tok-LEAK"))}, nil
		})}
		c, err := New(Config{BaseURL: "http://127.0.0.1:1", ClientID: "id", ClientSecret: "secret-LEAK", HTTPClient: hc,
			Outage: OutagePolicy{After: time.Second}, Retry: RetryPolicy{MaxRetries: -1},
			Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		defer c.LogOutages()()
		for range 3 {
			if _, err := c.Whoami(context.Background()); err == nil {
				t.Fatal("whoami without a token")
			}
			time.Sleep(time.Second)
		}
		warns := log.lines(`level=WARN msg="scaivault answering with errors; the child keeps running on what it has"`)
		if len(warns) != 1 || !strings.Contains(warns[0], "failing=token status=503") {
			t.Errorf("warnings %q, want one naming the token endpoint", warns)
		}
		if s := log.String(); strings.Contains(s, "LEAK") {
			t.Errorf("the answer's body or the secret in the log:\n%s", s)
		}
	})
}
