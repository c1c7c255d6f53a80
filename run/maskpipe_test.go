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

// Our own stream taking nothing (a pipe nobody reads) does not keep stop,
// and so scaivault-run's cleanup and exit, waiting for ever.
func TestMaskPipeStopDoesNotHangOnABlockedStream(t *testing.T) {
	defer func(d time.Duration) { maxStopWait = d }(maxStopWait)
	maxStopWait = 50 * time.Millisecond
	blocked := make(chan struct{})
	defer close(blocked)
	p := startTestPipe(t, blockingWriter(blocked), maskSet(t, "P", "hunter22"), time.Millisecond)
	if _, err := p.w.Write([]byte("line hunter22\n")); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("stop waits for a stream that takes nothing")
	}
}

// blockingWriter's writes block until the channel is closed.
type blockingWriter chan struct{}

func (b blockingWriter) Write(p []byte) (int, error) {
	<-b
	return 0, io.ErrClosedPipe
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

// stepClock runs a maskPipe's reader in lockstep with a test: each time
// the reader arms its read deadline the test is told the deadline, and
// each time it asks the time (after every read) the test answers. The
// reader's reads block until data arrives or the test wakes them, so no
// real time is involved.
type stepClock struct {
	t     *testing.T
	p     *maskPipe
	now   time.Time
	dl    time.Time // the last armed deadline
	asks  chan struct{}
	times chan time.Time
	armed chan time.Time
	free  chan struct{} // closed: the reader runs on its own (stop)
}

func useStepClock(t *testing.T, p *maskPipe) *stepClock {
	c := &stepClock{t: t, p: p, now: time.Unix(1e9, 0),
		asks: make(chan struct{}), times: make(chan time.Time), armed: make(chan time.Time), free: make(chan struct{})}
	p.now = func() time.Time {
		select {
		case c.asks <- struct{}{}:
			return <-c.times
		case <-c.free:
			return time.Now()
		}
	}
	p.arm = func(dl time.Time) {
		p.r.SetReadDeadline(time.Time{})
		select {
		case c.armed <- dl:
		case <-c.free:
		}
	}
	return c
}

// start takes the reader's first arming; startTestPipe's reader may
// have armed with the real clock already, so a write gets it going.
func (c *stepClock) start() { c.dl = <-c.armed }

// write writes b for the reader and lets it read it at the current time.
func (c *stepClock) write(b string) {
	c.p.w.WriteString(b)
	<-c.asks
	c.times <- c.now
	c.dl = <-c.armed
}

// advance moves the time on by d, waking the reader if its deadline is
// reached.
func (c *stepClock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	if !c.dl.IsZero() && !c.now.Before(c.dl) {
		c.p.r.SetReadDeadline(time.Unix(1, 0))
		<-c.asks
		c.times <- c.now
		c.dl = <-c.armed
	}
}

func (c *stepClock) release() { close(c.free) }

// startStepPipe is a maskPipe on a stepClock, writing to dst.
func startStepPipe(t *testing.T, dst io.Writer, set *mask.Set, hold time.Duration) (*maskPipe, *stepClock) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &maskPipe{name: "stdout", r: r, w: w, wfd: w.Fd(), f: mask.NewFilter(dst, set), hold: hold,
		log: slog.New(slog.DiscardHandler), done: make(chan struct{})}
	c := useStepClock(t, p)
	go p.run()
	c.start()
	return p, c
}

// The hold-back bound counts from when the bytes held now arrived, not
// from when the pipe began holding something: a read that releases the
// held bytes and ends in a new possible start of a value starts the
// bound again for those. Before, a value split like this 6 ms apart
// (hold 10 ms) showed its first part: the timer kept the first piece's
// start, and when every read ends in a possible start it never reset.
func TestMaskPipeHoldBackCountsFromTheHeldBytes(t *testing.T) {
	const v, hold = "hunter2secret", 10 * time.Millisecond
	head, tail := v[:len(v)-2], v[len(v)-2:]
	tests := []struct {
		name   string
		writes []string // gap apart
		gap    time.Duration
		want   string
	}{
		{"the reviewer's A/B", []string{"A:" + head, tail + " B:" + head, tail + "\n"}, 6 * time.Millisecond,
			"A:<concealed:V> B:<concealed:V>\n"},
		{"every read ends in a start", []string{"0:" + v[:9], v[9:] + " 1:" + v[:9], v[9:] + " 2:" + v[:9], v[9:] + " 3:" + v[:9], v[9:] + " 4:" + v[:9], v[9:] + "\n"}, 3 * time.Millisecond,
			"0:<concealed:V> 1:<concealed:V> 2:<concealed:V> 3:<concealed:V> 4:<concealed:V>\n"},
		{"within the bound", []string{"x " + head, tail + "\n"}, hold - time.Nanosecond, "x <concealed:V>\n"},
		{"past the bound", []string{"x " + head, tail + "\n"}, hold, "x " + head + "<concealed:V>\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst syncBuffer
			p, c := startStepPipe(t, &dst, maskSet(t, "V", v), hold)
			for i, w := range tt.writes {
				if i > 0 {
					c.advance(tt.gap)
				}
				c.write(w)
			}
			c.release()
			p.stop()
			if got := dst.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// The bound is per held piece: output is never held longer, even while
// the child goes on writing what may still be the start of a value. The
// price: a value written a byte every millisecond shows what came in the
// first 10 ms (the rest is still concealed).
func TestMaskPipeHoldBackIsABound(t *testing.T) {
	const v, hold = "hunter2secret", 10 * time.Millisecond
	var dst syncBuffer
	p, c := startStepPipe(t, &dst, maskSet(t, "V", v), hold)
	for i := range 10 {
		if i > 0 {
			c.advance(time.Millisecond)
		}
		c.write(v[i : i+1])
	}
	if got := dst.String(); got != "" {
		t.Errorf("after 9 ms: %q written", got)
	}
	c.advance(time.Millisecond)
	if got := dst.String(); got != v[:10] {
		t.Errorf("after 10 ms: %q written, want %q", got, v[:10])
	}
	c.write(v[10:] + "\n")
	c.release()
	p.stop()
	if got, want := dst.String(), v[:10]+"<concealed:V>\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// heldReads: the bound counts from the oldest read with a byte still
// held; a read past its capacity joins the one before (an earlier bound,
// never a later one); written-out reads never hold a new one back.
func TestHeldReads(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var h heldReads
	if !h.since(0, 0).IsZero() {
		t.Error("nothing held")
	}
	h.add(2, 11, ms(0))  // "A:" out, 11 held
	h.add(17, 11, ms(6)) // all of those out, 11 new held
	if got := h.since(17, 11); !got.Equal(ms(6)) {
		t.Errorf("since = %v, want the second read's", got.Sub(t0))
	}
	h.add(17, 14, ms(8)) // the held piece grows
	if got := h.since(17, 14); !got.Equal(ms(6)) {
		t.Errorf("a growing piece: since = %v, want its first read's", got.Sub(t0))
	}
	h.add(20, 11, ms(9)) // 3 of the second read's bytes out, the rest still held
	if got := h.since(20, 11); !got.Equal(ms(6)) {
		t.Errorf("partly out: since = %v", got.Sub(t0))
	}
	h.add(31, 0, ms(10))
	if !h.since(31, 0).IsZero() || len(h.reads) != 0 {
		t.Error("all out")
	}
	for i := range 2 * maxHeldReads {
		h.add(100, i+1, ms(20+i))
	}
	if len(h.reads) != maxHeldReads || !h.since(100, 2*maxHeldReads).Equal(ms(20)) {
		t.Errorf("%d reads kept, since %v", len(h.reads), h.since(100, 2*maxHeldReads).Sub(t0))
	}
	// Stale reads at capacity: a new read is not merged into them.
	h.add(1000, 4, ms(500))
	if got := h.since(1000, 4); !got.Equal(ms(500)) {
		t.Errorf("after stale reads: since = %v", got.Sub(t0))
	}
}
