package fetch_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// BenchmarkBatchRead1000 reads 1,000 secrets from the dev server over
// loopback: ten chunks of 100, eight in flight at once.
func BenchmarkBatchRead1000(b *testing.B) {
	const n = 1000
	h := newHarness(b, bulkSeed(n))
	c := h.client(b, func(cfg *fetch.Config) { cfg.Logger = nil })
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("bulk/s%04d", i)
	}
	ctx := context.Background()
	const route = "POST /v1/secrets/batch-read"
	before := h.srv.Requests(route)
	for b.Loop() {
		secrets, errs, err := c.BatchRead(ctx, paths)
		if err != nil || len(secrets) != n || len(errs) != 0 {
			b.Fatalf("%d secrets, %d errors, %v", len(secrets), len(errs), err)
		}
	}
	b.ReportMetric(float64(h.srv.Requests(route)-before)/float64(b.N), "requests/op")
}
