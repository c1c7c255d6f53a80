package watch_test

import (
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

func TestACMEPollAt(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name     string
		c        *fetch.Cert
		received time.Time
		now      time.Time
		interval time.Duration
		rnd      float64
		want     time.Duration
	}{
		// 90 days left: a twentieth is 4.5 days, capped at 12 intervals.
		{"far from the end", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(90 * day)}, t0, t0, time.Minute, 0.5, 12 * time.Minute},
		{"far, events up", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(90 * day)}, t0, t0, 5 * time.Minute, 0.5, time.Hour},
		// 2h left: a twentieth is 6 minutes.
		{"near the end", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(90 * day)}, t0, t0.Add(90*day - 2*time.Hour), time.Minute, 0.5, 6 * time.Minute},
		// 10 minutes left: a twentieth is 30s, never sooner than an interval.
		{"at the end", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}, t0, t0.Add(50 * time.Minute), time.Minute, 0.5, time.Minute},
		{"past its end", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}, t0, t0.Add(2 * time.Hour), time.Minute, 0.5, time.Minute},
		{"jitter low", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(90 * day)}, t0, t0, time.Minute, 0, 12 * time.Minute * 9 / 10},
		{"jitter high", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(90 * day)}, t0, t0, time.Minute, 0.999999, 12 * time.Minute * 11 / 10},
		{"no interval", &fetch.Cert{IssuedAt: t0, ExpiresAt: t0.Add(time.Second)}, t0, t0, 0, 0.5, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := watch.ACMEPollAt(tc.c, tc.received, tc.now, tc.interval, tc.rnd).Sub(tc.now)
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("+%v, want +%v", got, tc.want)
			}
		})
	}
}
