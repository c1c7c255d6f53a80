package fetch

import (
	"math"
	"time"
)

// Backoff is the project's one backoff: the wait after the n-th failure
// in a row (n ≥ 1) is first·factor^(n-1), spread by ±20% with rnd in
// [0,1), never above limit. The client's retries, the start-up's, the
// watcher's and the lease ledger's all use it, each with its own first
// wait and limit.
func Backoff(n int, first time.Duration, factor float64, limit time.Duration, rnd float64) time.Duration {
	base := float64(first) * math.Pow(factor, float64(max(n, 1)-1))
	if base > float64(limit) || math.IsInf(base, 0) || math.IsNaN(base) {
		base = float64(limit)
	}
	return min(time.Duration(base*(0.8+0.4*rnd)), limit)
}
