package run

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/mask"
)

func maskSet(t testing.TB, kv ...string) *mask.Set {
	t.Helper()
	s := mask.NewSet()
	for i := 0; i < len(kv); i += 2 {
		s.Add(mask.Value{Name: kv[i], Value: []byte(kv[i+1])})
	}
	return s
}

// outPipe is our own stream as a test sees it: a pipe read line by line.
func outPipe(t testing.TB) (*os.File, *bufio.Reader) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return w, bufio.NewReader(r)
}

func startTestPipe(t testing.TB, dst io.Writer, set *mask.Set, hold time.Duration) *maskPipe {
	t.Helper()
	p, err := startMaskPipe("stdout", dst, set, hold, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readN(t *testing.T, r *bufio.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A possible start of a value is held back for the bound at most, then
// written; the rest of the value after it is still concealed. A value in
// two writes within the bound is concealed whole.
func TestMaskPipeHoldBack(t *testing.T) {
	const hold = 50 * time.Millisecond
	dst, out := outPipe(t)
	p := startTestPipe(t, dst, maskSet(t, "P", "hunter22"), hold)
	defer p.stop()

	p.w.WriteString("hun")
	time.Sleep(time.Millisecond) // the point: a value in two writes 1 ms apart
	p.w.WriteString("ter22\n")
	if got := readN(t, out, len("<concealed:P>\n")); got != "<concealed:P>\n" {
		t.Errorf("split value: %q", got)
	}

	start := time.Now()
	p.w.WriteString("x hunt")
	if got := readN(t, out, 2); got != "x " {
		t.Errorf("before the held bytes: %q", got)
	}
	if got := readN(t, out, 4); got != "hunt" {
		t.Errorf("held bytes: %q", got)
	}
	if d := time.Since(start); d < hold {
		t.Errorf("held bytes written after %v, before the bound %v", d, hold)
	}
	p.w.WriteString("er22 y\n")
	if got, _ := out.ReadString('\n'); got != "<concealed:P> y\n" {
		t.Errorf("after the held bytes: %q", got)
	}
}

// stop writes out everything the child wrote before it exited, though the
// pipe is still open (descendants may hold it): nothing waits for EOF.
func TestMaskPipeDrain(t *testing.T) {
	var dst syncBuffer
	p := startTestPipe(t, &dst, maskSet(t, "P", "hunter22"), time.Hour)
	var want bytes.Buffer
	for i := range 50000 {
		fmt.Fprintf(&want, "line %d hunter22\n", i)
	}
	want.WriteString("the end hunt") // held back: written by stop
	if _, err := p.w.Write(want.Bytes()); err != nil {
		t.Fatal(err)
	}
	p.stop()
	exp := strings.ReplaceAll(want.String(), "hunter22", "<concealed:P>")
	if got := dst.String(); got != exp {
		t.Errorf("got %d bytes, want %d; ends %q", len(got), len(exp), got[max(0, len(got)-40):])
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// When our own stream fails, the child's writes fail too (EPIPE), as they
// would on the stream itself, instead of blocking for ever.
func TestMaskPipeOutputFails(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	p := startTestPipe(t, w, maskSet(t, "P", "hunter22"), time.Millisecond)
	defer p.stop()
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		_, werr = p.w.Write(bytes.Repeat([]byte("x"), 32<<10))
	}
	if werr == nil {
		t.Fatal("the child's writes never failed")
	}
}

// benchSet is 100 values of 8 to 64 bytes.
func benchSet(b *testing.B) (*mask.Set, [][]byte) {
	s := mask.NewSet()
	var vals [][]byte
	for i := range 100 {
		v := []byte(fmt.Sprintf("%0*x", 8+i%57, uint64(i)*0x9e3779b97f4a7c15))
		vals = append(vals, v)
		s.Add(mask.Value{Name: fmt.Sprintf("SECRET_%d", i), Value: v})
	}
	return s, vals
}

// BenchmarkMaskPipe is the throughput of one stream through the pipe and
// the filter, 100 values, log-like lines with a value in one in 50.
func BenchmarkMaskPipe(b *testing.B) {
	set, vals := benchSet(b)
	var in bytes.Buffer
	for i := 0; in.Len() < 1<<20; i++ {
		fmt.Fprintf(&in, "2026-12-07T10:00:00.%06dZ INFO request path=/api/v1/items/%d status=200", i, i*7919)
		if i%50 == 0 {
			in.WriteString(" token=")
			in.Write(vals[i%len(vals)])
		}
		in.WriteByte('\n')
	}
	dst, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	p := startTestPipe(b, dst, set, DefaultMaskHoldBack)
	b.SetBytes(int64(in.Len()))
	for b.Loop() {
		p.w.Write(in.Bytes())
	}
	p.stop()
}

// BenchmarkMaskPipeLatency is the time from a child's write of a line to
// the line's arrival on our stream, through the mask (100 values).
func BenchmarkMaskPipeLatency(b *testing.B) {
	set, _ := benchSet(b)
	dst, out := outPipe(b)
	p := startTestPipe(b, dst, set, DefaultMaskHoldBack)
	defer p.stop()
	line := []byte("2026-12-07T10:00:00.000000Z INFO request path=/api/v1/items/42 status=200\n")
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		p.w.Write(line)
		if _, err := out.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "µs-median")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "µs-p99")
}
