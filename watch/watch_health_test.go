package watch_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// What a watcher logs about the server's health (fetch/health.go) while
// the dev server refuses connections or fails requests, on fake time.

// switchTransport is memTransport with a server that can be stopped:
// while down, every request is refused as a closed port refuses it, and
// going down cuts the answers in flight (the events stream, a renewal)
// as a connection closed mid-answer does.
type switchTransport struct {
	mem  memTransport
	down atomic.Bool
	mu   sync.Mutex
	open map[*trackedBody]bool
}

func (t *switchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	}
	resp, err := t.mem.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b := &trackedBody{body: resp.Body, t: t}
	t.mu.Lock()
	t.open[b] = true
	t.mu.Unlock()
	resp.Body = b
	return resp, nil
}

// stop refuses connections from now on and cuts those open.
func (t *switchTransport) stop() {
	t.down.Store(true)
	t.mu.Lock()
	open := t.open
	t.open = map[*trackedBody]bool{}
	t.mu.Unlock()
	for b := range open {
		b.cut.Store(true)
		b.body.Close()
	}
}

func (t *switchTransport) start() { t.down.Store(false) }

type trackedBody struct {
	body interface {
		Read([]byte) (int, error)
		Close() error
	}
	t   *switchTransport
	cut atomic.Bool
}

// Read ends as a connection cut mid-answer ends.
func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && b.cut.Load() {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *trackedBody) Close() error {
	b.t.mu.Lock()
	delete(b.t.open, b)
	b.t.mu.Unlock()
	return b.body.Close()
}

// runningClient is a client as run makes it for watching: no retries
// within a call, over tr.
func runningClient(t *testing.T, w *world, tr http.RoundTripper) *fetch.Client {
	t.Helper()
	c, err := fetch.New(fetch.Config{BaseURL: "http://127.0.0.1:8200", Token: w.srv.RootToken(),
		HTTPClient: &http.Client{Transport: tr}, Logger: w.log, Retry: fetch.RetryPolicy{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logLines are the lines of log matching re.
func logLines(log, re string) []string {
	return regexp.MustCompile(`(?m)^.*`+re+`.*$`).FindAllString(log, -1)
}

var afterRx = regexp.MustCompile(` after=(\S+) `)

// TestWatchHealthRefused: the server stops (its port refuses) for five
// minutes while a watcher follows the events stream and renews a lease:
// one warning once it has lasted 10s, then one a minute with the count,
// one line when it answers again with how long it did not; no reconnect
// at info; the lease renewed after.
func TestWatchHealthRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		tr := &switchTransport{mem: memTransport{w.srv.Handler()}, open: map[*trackedBody]bool{}}
		c := runningClient(t, w, tr)
		defer c.Close()
		wr := w.watch(watch.WatchConfig{Client: c}, []fetch.Source{srcDB, dynSrc(t, "renew")}, nil)
		defer wr.stop()
		time.Sleep(9500 * time.Millisecond) // the stream is up, the lease renewed (every 2s)
		before := len(w.buf.String())

		tr.stop()
		time.Sleep(5 * time.Minute)
		during := w.buf.String()[before:]
		tr.start()
		time.Sleep(2 * time.Minute)
		log := w.buf.String()

		first := logLines(log, `level=WARN msg="scaivault unreachable; the child keeps running on what it has"`)
		if len(first) != 1 || !strings.Contains(first[0], " for=10s ") || !strings.Contains(first[0], "connection refused") {
			t.Errorf("first warnings %q, want one at 10s naming the refusal", first)
		}
		still := logLines(log, `level=WARN msg="scaivault still unreachable" for=\S+ failures=\d+ `)
		if len(still) < 3 || len(still) > 5 {
			t.Errorf("%d repeated warnings in 5 minutes, want about one a minute:\n%s", len(still), strings.Join(still, "\n"))
		}
		end := logLines(log, `level=INFO msg="scaivault answering normally again"`)
		if len(end) != 1 {
			t.Fatalf("%d recovery lines, want 1:\n%s", len(end), log)
		}
		if d, err := time.ParseDuration(afterRx.FindStringSubmatch(end[0] + " ")[1]); err != nil || d < 5*time.Minute-5*time.Second || d > 6*time.Minute {
			t.Errorf("recovery line %q: want the outage's length, about 5 minutes (from the first failure to the last reconnection)", end[0])
		}
		if n := len(logLines(during, `level=(INFO|WARN|ERROR)`)); n != 1+len(still) {
			t.Errorf("%d lines at info or above during the outage, want only the %d warnings:\n%s", n, 1+len(still),
				strings.Join(logLines(during, `level=(INFO|WARN|ERROR)`), "\n"))
		}
		if n := len(logLines(log, `answering with errors`)); n != 0 {
			t.Error("refused connections logged as errors")
		}
		if n := len(logLines(log[before:], `level=DEBUG msg="scaivault events stream dropped; reconnecting"`)); n < 5 {
			t.Errorf("%d reconnect lines at debug, want every attempt", n)
		}
		if n := len(logLines(log[len(during)+before:], `level=INFO msg="lease renewed"`)); n == 0 {
			t.Error("no renewal after the outage")
		}
	})
}

// TestWatchHealthErrors: the server answers 30% of requests with 503
// for five minutes: never "unreachable", warnings a minute apart at
// least, and the trouble over once the errors stop.
func TestWatchHealthErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		c := runningClient(t, w, memTransport{w.srv.Handler()})
		defer c.Close()
		// Polls every 2s, and a 3s lease renewed every 2s: requests
		// enough that one kind or another fails most of the time.
		wr := w.watch(watch.WatchConfig{Client: c, PollInterval: 2 * time.Second, NoEvents: true},
			[]fetch.Source{srcDB, srcAPI, dynSrc(t, "renew")}, nil)
		defer wr.stop()
		time.Sleep(10 * time.Second)
		w.srv.SetFaults(devserver.Faults{Rate: 0.3})
		time.Sleep(5 * time.Minute)
		w.srv.SetFaults(devserver.Faults{})
		time.Sleep(2 * time.Minute)
		log := w.buf.String()

		if n := len(logLines(log, `unreachable`)); n != 0 {
			t.Errorf("a server answering 503 logged as unreachable:\n%s", strings.Join(logLines(log, `unreachable`), "\n"))
		}
		warns := logLines(log, `level=WARN`)
		if len(warns) == 0 || len(warns) > 6 {
			t.Errorf("%d warnings in 5 minutes, want 1 to 6", len(warns))
		}
		var last time.Time
		for _, l := range warns {
			if !strings.Contains(l, `msg="scaivault answering with errors; the child keeps running on what it has"`) &&
				!strings.Contains(l, `msg="scaivault still answering with errors"`) {
				t.Errorf("a warning other than the health view's: %s", l)
			}
			at, err := time.Parse(time.RFC3339, strings.TrimPrefix(strings.Fields(l)[0], "time="))
			if err != nil {
				t.Fatal(err)
			}
			if !last.IsZero() && at.Sub(last) < time.Minute {
				t.Errorf("two warnings %v apart:\n%s", at.Sub(last), strings.Join(warns, "\n"))
			}
			last = at
		}
		ends := logLines(log, `level=INFO msg="scaivault answering normally again"`)
		firsts := logLines(log, `level=WARN msg="scaivault answering with errors; the child`)
		if len(ends) != len(firsts) {
			t.Errorf("%d troubles warned about, %d ends logged", len(firsts), len(ends))
		}
		// A 3s lease whose renewals fail until it ends is lost (404)
		// and replaced, at error level: a loss, not the health view's.
		for _, l := range logLines(log, `level=ERROR`) {
			if !strings.Contains(l, `msg="lost for good; the child keeps running on what it has"`) || !strings.Contains(l, "not found") {
				t.Errorf("an error logged for 503s: %s", l)
			}
		}
	})
}

// TestWatchHealthRenewalNotRecovery: renewals that work while every
// secret read fails do not end the trouble; the reads working again do.
func TestWatchHealthRenewalNotRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, watchSeed)
		defer w.stop()
		c := runningClient(t, w, memTransport{w.srv.Handler()})
		defer c.Close()
		wr := w.watch(watch.WatchConfig{Client: c, PollInterval: 10 * time.Second, NoEvents: true},
			[]fetch.Source{srcDB, dynSrc(t, "renew")}, nil)
		defer wr.stop()
		w.srv.SetFaults(devserver.Faults{Rate: 1, PathPrefix: "/v1/secrets"})
		time.Sleep(3 * time.Minute)
		log := w.buf.String()
		if n := len(logLines(log, `level=INFO msg="lease renewed"`)); n < 30 {
			t.Errorf("%d renewals in 3 minutes of a 3s lease", n)
		}
		if n := len(logLines(log, `level=WARN msg="scaivault answering with errors; .* failing=secrets status=503`)); n != 1 {
			t.Errorf("%d warnings naming the secret reads, want 1", n)
		}
		if n := len(logLines(log, `answering normally again`)); n != 0 {
			t.Errorf("a renewal ended the trouble while the secret reads fail:\n%s", strings.Join(logLines(log, `answering normally again`), "\n"))
		}
		w.srv.SetFaults(devserver.Faults{})
		time.Sleep(time.Minute)
		if n := len(logLines(w.buf.String(), `level=INFO msg="scaivault answering normally again"`)); n != 1 {
			t.Errorf("%d recovery lines once the reads work, want 1", n)
		}
	})
}
