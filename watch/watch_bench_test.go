package watch_test

import (
	"context"
	"github.com/scailabs/scaivault-run/devserver"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// Requests per hour of one idle launcher at the default settings.

const batchRoute = "POST /v1/secrets/batch-read"

// TestWatchIdleBudget counts the batch reads of an idle hour at the
// default settings, on the fake clock: about 60 when polling every 60s
// (± 10%), about 12 with events (a 5 min safety poll, plus one when the
// stream connects).
func TestWatchIdleBudget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noEvents bool
		lo, hi   int64
	}{
		{"poll", true, 58, 62},
		{"events", false, 12, 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, watchSeed)
				defer w.stop()
				wr := w.watch(watch.WatchConfig{NoEvents: tc.noEvents}, []fetch.Source{srcDB, srcAPI}, nil)
				defer wr.stop()
				time.Sleep(time.Hour)
				if n := w.srv.Requests(batchRoute); n < tc.lo || n > tc.hi {
					t.Errorf("%d batch reads in an idle hour, want %d..%d", n, tc.lo, tc.hi)
				}
				if n := w.srv.Requests(""); n > tc.hi+3 {
					t.Errorf("%d requests in all in an idle hour", n)
				}
			})
		})
	}
}

// BenchmarkIdleRequestsPerHour reports the batch reads per hour of an idle
// launcher at the default settings, computed from the schedule (the mean
// of NextPoll over its jitter), and measured in real time on a run scaled
// down 1000 times (a 60ms poll, a 300ms safety poll, 3.6s).
func BenchmarkIdleRequestsPerHour(b *testing.B) {
	for range b.N {
		b.ReportMetric(perHour(watch.DefaultPollInterval), "computed-reads/h")
		b.ReportMetric(perHour(watch.DefaultSafetyPoll)+1, "computed-reads/h-events")
		b.ReportMetric(scaledReads(b, true), "measured-reads/h")
		b.ReportMetric(scaledReads(b, false), "measured-reads/h-events")
	}
}

func perHour(interval time.Duration) float64 {
	const steps = 1000
	var sum time.Duration
	t0 := time.Unix(0, 0)
	for i := range steps {
		sum += watch.NextPoll(t0, interval, (float64(i)+0.5)/steps).Sub(t0)
	}
	return float64(time.Hour) / (float64(sum) / steps)
}

// scaledReads runs a watcher at a thousandth of the default intervals for
// a thousandth of an hour and returns the batch reads it made.
func scaledReads(b *testing.B, noEvents bool) float64 {
	h := newHarness(b, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := h.client(b, nil)
	srcs := []fetch.Source{fetch.StaticSource("app/db", 0), fetch.StaticSource("app/api-key", 0)}
	snap, err := (&fetch.Resolver{Client: c}).Resolve(ctx, srcs, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := watch.NewWatcher(watch.WatchConfig{Client: c, NoEvents: noEvents,
		PollInterval: watch.DefaultPollInterval / 1000, SafetyPoll: watch.DefaultSafetyPoll / 1000}, snap, srcs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	before := h.srv.Requests(batchRoute)
	time.Sleep(time.Hour / 1000)
	n := h.srv.Requests(batchRoute) - before
	cancel()
	<-done
	return float64(n)
}

// benchHarness is the dev server with its demo data behind httptest.
type benchHarness struct {
	srv *devserver.Server
	hs  *httptest.Server
}

func newHarness(b *testing.B, _ string) *benchHarness {
	b.Helper()
	srv, err := devserver.New(devserver.Options{Seed: devserver.DefaultSeed()})
	if err != nil {
		b.Fatal(err)
	}
	h := &benchHarness{srv: srv, hs: httptest.NewServer(srv.Handler())}
	b.Cleanup(func() {
		srv.Close()
		h.hs.Close()
	})
	return h
}

func (h *benchHarness) client(b *testing.B, _ func(*fetch.Config)) *fetch.Client {
	c, err := fetch.New(fetch.Config{BaseURL: h.hs.URL, Token: h.srv.RootToken()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}
