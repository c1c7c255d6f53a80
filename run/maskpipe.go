package run

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/mask"
)

// DefaultMaskHoldBack is Config.MaskHoldBack's default: how long output
// that may be the start of a concealed value is held back at most before
// it is written as it is, counted from when the oldest byte held arrived
// (a bound on every byte's delay, whatever the child writes after it).
// 10 ms keeps a value that the child writes in pieces within 10 ms
// concealed (BENCHMARKS.md, "--mask"), and delays only output whose end
// may start a value; a line's end ("\n") starts none unless a value has
// a line break in it.
const DefaultMaskHoldBack = 10 * time.Millisecond

// maxDrain bounds what is read after the child exited: everything it wrote
// is in the pipe by then (a pipe takes a write whole or blocks the writer,
// 64 KiB to 1 MiB), and a descendant that keeps writing does not hold up
// the exit.
const maxDrain = 16 << 20

// maxStopWait bounds how long stop waits for the child's output to reach
// our own stream: one that takes nothing (a pipe or terminal nobody reads,
// stopped with ^S) must not keep scaivault-run from its cleanup (leases,
// secret files) for ever. A variable for tests.
var maxStopWait = 5 * time.Second

// maskPipe is one of the child's output streams under --mask: the child
// gets w as its stdout or stderr (every child of the run the same pipe, so
// that a restarted child's output follows its predecessor's in order), and
// one goroutine reads r through a mask.Filter into our own stream. The pipe
// is never waited on for EOF: descendants may hold w open for ever; stop
// drains what is in it instead, once the child has exited.
type maskPipe struct {
	name string
	r, w *os.File
	wfd  uintptr // w's descriptor, in blocking mode, for the child
	f    *mask.Filter
	hold time.Duration
	log  *slog.Logger
	done chan struct{}
	// now and arm are the clock and r's read deadline (tests replace
	// them with a clock of their own).
	now func() time.Time
	arm func(deadline time.Time)

	mu       sync.Mutex // stopping and r's read deadline, between run and stop
	stopping bool
}

// startMaskPipe makes the pipe and starts its reader; stop joins it.
func startMaskPipe(name string, dst io.Writer, set *mask.Set, hold time.Duration, log *slog.Logger) (*maskPipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("--mask: %s pipe: %w", name, err)
	}
	p := &maskPipe{
		name: name, r: r, w: w,
		// Fd puts w in blocking mode, which the child shares: a child
		// must not see EAGAIN on its stdout. r stays non-blocking, in
		// the poller, for its deadlines.
		wfd:  w.Fd(),
		f:    mask.NewFilter(dst, set),
		hold: hold,
		log:  log,
		done: make(chan struct{}),
		now:  time.Now,
		arm:  func(dl time.Time) { r.SetReadDeadline(dl) },
	}
	go p.run()
	return p, nil
}

// run copies r through the filter until stop, or until our own stream
// fails (then r is closed: the child gets EPIPE, as it would have on the
// stream itself).
func (p *maskPipe) run() {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	var held heldReads
	for {
		heldSince := held.since(p.f.Emitted(), p.f.Pending())
		if !p.setDeadline(heldSince) {
			break
		}
		n, err := p.r.Read(buf)
		at := p.now()
		if n > 0 {
			if !p.write(buf[:n]) {
				return
			}
			held.add(p.f.Emitted(), p.f.Pending(), at)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if heldSince := held.since(p.f.Emitted(), p.f.Pending()); !heldSince.IsZero() && !p.isStopping() && !at.Before(heldSince.Add(p.hold)) {
				if !p.flush() {
					return
				}
			}
			continue
		}
		if err != nil {
			p.log.Warn("--mask: reading the child's output", "stream", p.name, "err", err)
			return
		}
	}
	p.drain(buf)
	p.flush()
}

// setDeadline arms r's deadline for the hold-back bound, counted from
// heldSince (none while it is zero: nothing is held); false once stop was
// called.
func (p *maskPipe) setDeadline(heldSince time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return false
	}
	var dl time.Time
	if !heldSince.IsZero() {
		dl = heldSince.Add(p.hold)
	}
	p.arm(dl)
	return true
}

// heldReads are the reads whose bytes the filter still holds, oldest
// first: where each ended in the stream and when it arrived. The
// hold-back bound counts from the arrival of the oldest byte held now,
// so that bytes released by a later read no longer count: a read that
// writes out what was held and ends in a new possible start of a value
// starts the bound again for that.
type heldReads struct {
	reads []heldRead
}

type heldRead struct {
	end int64 // the stream position after the read
	at  time.Time
}

// maxHeldReads bounds heldReads: past it a read joins the one before,
// whose time is earlier, so that its bytes' bound can only come sooner
// (it takes more than that many reads within one held piece).
const maxHeldReads = 64

// add records a read that arrived at at, after which the filter holds
// pending bytes from stream position emitted on.
func (h *heldReads) add(emitted int64, pending int, at time.Time) {
	h.prune(emitted, pending)
	end := emitted + int64(pending)
	switch {
	case pending == 0:
	case len(h.reads) == maxHeldReads:
		h.reads[len(h.reads)-1].end = end
	default:
		h.reads = append(h.reads, heldRead{end, at})
	}
}

// since is when the oldest of the held bytes arrived (pending of them,
// from stream position emitted on): zero when none is held.
func (h *heldReads) since(emitted int64, pending int) time.Time {
	h.prune(emitted, pending)
	if len(h.reads) == 0 {
		return time.Time{}
	}
	return h.reads[0].at
}

// prune forgets the reads whose bytes are all written out.
func (h *heldReads) prune(emitted int64, pending int) {
	if pending == 0 {
		h.reads = h.reads[:0]
		return
	}
	i := 0
	for i < len(h.reads) && h.reads[i].end <= emitted {
		i++
	}
	h.reads = append(h.reads[:0], h.reads[i:]...)
}

func (p *maskPipe) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// drain reads what is in the pipe now, without waiting for more.
func (p *maskPipe) drain(buf []byte) {
	p.r.SetReadDeadline(time.Time{}) // stop's deadline would fail RawConn.Read
	rc, err := p.r.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool {
		for total := 0; total < maxDrain; {
			n, err := syscall.Read(int(fd), buf)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 || !p.write(buf[:n]) {
				break
			}
			total += n
		}
		return true // done, whatever read said: never wait for more
	})
}

// write filters b into our stream; false (and r closed) when the stream
// failed.
func (p *maskPipe) write(b []byte) bool {
	if _, err := p.f.Write(b); err != nil {
		p.fail(err)
		return false
	}
	return true
}

func (p *maskPipe) flush() bool {
	if err := p.f.Flush(); err != nil {
		p.fail(err)
		return false
	}
	return true
}

func (p *maskPipe) fail(err error) {
	p.log.Warn("--mask: writing the child's output failed; the child's writes fail from now on", "stream", p.name, "err", err)
	p.r.Close()
}

// stop drains the pipe (the child has exited: all it wrote is there),
// writes what the filter holds, waits for the reader and closes the pipe.
func (p *maskPipe) stop() {
	p.mu.Lock()
	p.stopping = true
	p.r.SetReadDeadline(time.Unix(1, 0)) // wake a Read in progress
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(maxStopWait):
		// The reader is stuck writing to our stream; it stays so (the
		// process is ending), and what it holds is lost. r stays open:
		// closing it would wait for the drain's read, which holds it.
		p.log.Warn("--mask: the child's output could not be written out before exit: our own stream takes nothing", "stream", p.name, "waited", maxStopWait)
		p.w.Close()
		return
	}
	p.r.Close()
	p.w.Close()
}
