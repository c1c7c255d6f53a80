package mask

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"testing"
)

// testPatterns are up to n distinct patterns of 1 to maxLen bytes over
// alpha.
func testPatterns(r *rand.Rand, n, maxLen int, alpha string) []pattern {
	seen := map[string]bool{}
	var pats []pattern
	for try := 0; len(pats) < n && try < 100*n; try++ {
		b := make([]byte, 1+r.IntN(maxLen))
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			pats = append(pats, pattern{string(b), int32(len(pats))})
		}
	}
	return pats
}

// The automaton is the same whatever part of it is dense: every step of a
// scan gives the same depth, match and output with only the start state
// dense, some states, or all.
func TestMatcherSparse(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for round := range 200 {
		alpha := "abc"[:1+round%3] + "xyz"[:round%2]
		pats := testPatterns(r, 1+r.IntN(20), 1+r.IntN(12), alpha)
		full := newMatcher(pats, 1<<30)
		if int(full.ndense) != len(full.depth) {
			t.Fatalf("budget 1 GiB: %d of %d states dense", full.ndense, len(full.depth))
		}
		in := make([]byte, 2000)
		for i := range in {
			in[i] = (alpha + "!")[r.IntN(len(alpha)+1)]
		}
		for _, budget := range []int{0, 4 * int(full.ncls) * 3, 4 * int(full.ncls) * len(full.depth) / 2} {
			m := newMatcher(pats, budget)
			a, b := int32(0), int32(0)
			for i, c := range in {
				va, vb := full.step(a, c), m.step(b, c)
				a, b = va&rowMask, vb&rowMask
				ia, ib := full.id(a), m.id(b)
				if (va < 0) != (vb < 0) || full.depth[ia] != m.depth[ib] || full.outLen[ia] != m.outLen[ib] || full.outTag[ia] != m.outTag[ib] {
					t.Fatalf("round %d, budget %d, byte %d of %q: dense (%v %d %d %d), sparse (%v %d %d %d); patterns %q",
						round, budget, i, in[:i+1], va < 0, full.depth[ia], full.outLen[ia], full.outTag[ia], vb < 0, m.depth[ib], m.outLen[ib], m.outTag[ib], pats)
				}
			}
		}
	}
}

// The automaton of long values is a small multiple of their size: 256 KiB
// of base64 (64 byte classes) would take 4 bytes × 65 classes a byte if
// every state were dense.
func TestMatcherMemory(t *testing.T) {
	s := NewSet()
	s.Add(largeValues(4, 64<<10)...)
	m := s.current().m
	total := 0
	for _, p := range s.patterns() {
		total += len(p.b)
	}
	if per := float64(m.size()) / float64(total); per > 40 {
		t.Errorf("%d bytes of patterns: an automaton of %d bytes, %.0f a byte", total, m.size(), per)
	}
}

// largeValues are n values of about size bytes of base64, as long keys
// and certificates are.
func largeValues(n, size int) []Value {
	r := rand.New(rand.NewPCG(5, 6))
	vals := make([]Value, n)
	for i := range vals {
		raw := make([]byte, size*3/4)
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		vals[i] = Value{fmt.Sprintf("BIG_%d", i), []byte(base64.StdEncoding.EncodeToString(raw))}
	}
	return vals
}
