//go:build linux

package run

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

// BenchmarkRotationToChild: from a write on the server to the new child
// running with the new value (the kill, the wait, the start of the test
// binary as the child included). Targets: under 500 ms with events; within
// one poll interval and a second when polling.
//
//	go test ./run -run '^$' -bench RotationToChild -benchtime 20x
func BenchmarkRotationToChild(b *testing.B) {
	for _, bc := range []struct {
		name string
		poll time.Duration
	}{
		{"events", time.Hour},
		{"poll=200ms", 200 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := startPhase(b, refDBPassword, func(_ *phase, o *Options) {
				o.PollInterval = bc.poll
				o.Supervisor.KillTimeout = 5 * time.Second
			})
			if bc.poll != time.Hour {
				p.pollOnly()
			}
			pid := p.ready("pw-SECRET-1")
			if bc.poll == time.Hour {
				p.log.await(b, `msg="following change events"`, 1)
			} else {
				p.awaitPolling()
			}
			var worst time.Duration
			b.ResetTimer()
			for i := range b.N {
				val := fmt.Sprintf("pw-SECRET-bench-%d", i)
				start := time.Now()
				p.write("app/db", map[string]any{"password": val, "username": "app"})
				pid = p.restarted(pid, val)
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/rotation")
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
		})
	}
}

// BenchmarkRotationMemory: heap after a GC, before and after b.N rotations
// through the watcher and the refresher (every Change read and applied,
// its superseded leases revoked), with the dev server in the process too.
// The heap should not grow with the number of rotations.
//
//	go test ./run -run '^$' -bench RotationMemory -benchtime 10000x
func BenchmarkRotationMemory(b *testing.B) {
	rotate := watchedRotations(b)
	// Warm-up: buffers, pools, the server's version history and its ring
	// of the last 1024 events.
	for i := range 1100 {
		rotate(-1 - i)
	}
	before := heapAfterGC()
	goroutines := runtime.NumGoroutine()
	b.ResetTimer()
	for i := range b.N {
		rotate(i)
	}
	b.StopTimer()
	after := heapAfterGC()
	b.ReportMetric(float64(int64(after)-int64(before))/1024, "heap-growth-KiB")
	b.ReportMetric(float64(after)/1024, "heap-KiB")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines), "goroutine-growth")
}

// watchedRotations starts a dev server and the watching of a run (no
// child: the benchmark reads the Changes and applies them) and returns a
// function that rotates app/db and waits for the Change it makes.
func watchedRotations(b *testing.B) func(i int) {
	seed, err := devserver.ParseSeed([]byte(phaseSeed), "seed.json")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	st, err := prepare(ctx, Options{
		Client:       fetch.Config{BaseURL: hs.URL, Token: srv.RootToken()},
		Env:          template.EnvSpec{Env: []string{"V=" + refDBPassword, "U=" + refRenew}},
		PollInterval: time.Hour,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	adm := &devserver.Admin{BaseURL: hs.URL, Token: srv.RootToken()}
	changes := make(chan Change, 1)
	wt := st.startWatching(ctx, changes, func() {}, nil)
	b.Cleanup(func() {
		cancel()
		wt.stop()
		st.cleanup()
		srv.Close()
		hs.Close()
	})
	return func(i int) {
		want := fmt.Sprintf("V=pw-%d", i)
		if _, err := adm.Write(ctx, "app/db", fetch.WriteRequest{Data: map[string]any{"password": want[2:]}}); err != nil {
			b.Fatal(err)
		}
		for {
			select {
			case c := <-changes:
				if c.Applied != nil {
					c.Applied()
				}
				if slices.Contains(c.Env, want) {
					return
				}
			case <-time.After(20 * time.Second):
				b.Fatalf("rotation %d not seen", i)
			}
		}
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
