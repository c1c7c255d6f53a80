package mask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// benchValues are n values of 8 to 64 bytes from the base64 alphabet, as
// generated passwords and API keys are.
func benchValues(n int) []Value {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]Value, n)
	for i := range vals {
		b := make([]byte, 8+r.IntN(57))
		for j := range b {
			b[j] = alpha[r.IntN(len(alpha))]
		}
		vals[i] = Value{fmt.Sprintf("SECRET_%d", i), b}
	}
	return vals
}

// benchInput is log-like text of about size bytes, with one of the values
// in about one line in 50.
func benchInput(vals []Value, size int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "2026-12-07T10:%02d:%02d.%06dZ INFO request id=%08x path=/api/v1/items/%d status=200 bytes=%d", i%60, i%60, i, r.Uint32(), r.IntN(100000), r.IntN(1<<20))
		if i%50 == 0 {
			b.WriteString(" token=")
			b.Write(vals[r.IntN(len(vals))].Value)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkFilter is the throughput through the mask, in 32 KiB writes
// (what the supervisor's pump reads at once), with 100 values.
func BenchmarkFilter(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			vals := benchValues(n)
			set := NewSet()
			set.Add(vals...)
			in := benchInput(vals, 4<<20)
			f := NewFilter(discard{}, set)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				for p := in; len(p) > 0; {
					n := min(len(p), 32<<10)
					f.Write(p[:n])
					p = p[n:]
				}
			}
		})
	}
}

// BenchmarkFilterNoNewline is the worst case for the hold-back: every byte
// the start of a value (a stream of "a"s with values of "a"s).
func BenchmarkFilterNoNewline(b *testing.B) {
	set := NewSet()
	set.Add(Value{"A", bytes.Repeat([]byte("a"), 64)}, Value{"B", []byte("aaab")})
	in := bytes.Repeat([]byte("a"), 32<<10)
	f := NewFilter(discard{}, set)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		f.Write(in)
	}
}

// BenchmarkSetAdd is the cost of building the automaton for 100 values
// (at start-up, and again on each rotation).
func BenchmarkSetAdd(b *testing.B) {
	vals := benchValues(100)
	for b.Loop() {
		NewSet().Add(vals...)
	}
}

// BenchmarkSetAddLarge is the cost of building the automaton for 240 KiB
// of values (four keys or certificates of 60 KiB), and the heap it keeps
// per byte of value.
func BenchmarkSetAddLarge(b *testing.B) {
	vals := largeValues(4, 60<<10)
	size := 0
	for _, v := range vals {
		size += len(v.Value)
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	keep := NewSet()
	keep.Add(vals...)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	runtime.KeepAlive(keep)
	for b.Loop() {
		NewSet().Add(vals...)
	}
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/float64(size), "heap-B/value-byte")
}
