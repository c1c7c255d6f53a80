package run

import (
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestReloadGrace(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	lease := func(left time.Duration) *fetch.Lease { return &fetch.Lease{ExpiresAt: now.Add(left)} }
	cases := []struct {
		leases []*fetch.Lease
		want   time.Duration
	}{
		{[]*fetch.Lease{lease(time.Hour)}, maxReloadGrace},
		{[]*fetch.Lease{lease(20 * time.Second)}, 10 * time.Second},
		{[]*fetch.Lease{lease(time.Hour), lease(4 * time.Second)}, 2 * time.Second},
		{[]*fetch.Lease{lease(-time.Second)}, 0},
	}
	for i, c := range cases {
		if got := reloadGrace(c.leases, now); got != c.want {
			t.Errorf("case %d: grace %v, want %v", i, got, c.want)
		}
	}
}
