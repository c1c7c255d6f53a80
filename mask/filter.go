package mask

import (
	"io"
)

// DefaultMaxPending is Filter.MaxPending's default.
const DefaultMaxPending = 64 << 10

// Filter is one output stream through a Set. Create it with NewFilter.
//
// Positions below are absolute offsets in the stream written so far.
type Filter struct {
	// MaxPending bounds the bytes held while a mask is open (a run of
	// overlapping occurrences that may still grow): past it the open
	// masks are written, and the run goes on as a new mask. The held
	// possible start of a value is never released by it. 0 means
	// DefaultMaxPending.
	MaxPending int

	w   io.Writer
	set *Set
	// b is the set's version during a call (between calls the filter
	// holds none: an idle stream does not keep a replaced automaton
	// alive); ver is the version row is a state of.
	b   *built
	ver uint64

	row     int32 // the automaton's state, as a code
	now     int64 // bytes written to the filter
	emitted int64 // bytes of input accounted for in the output
	pend    []byte
	ivs     []interval // occurrences not written yet: sorted, disjoint
	tail    []byte     // the last bytes of input, for a new automaton
	out     []byte
	err     error
}

// interval is a run of overlapping occurrences [s, e), named by the one
// that starts first (the longest of those): sLen is that one's length.
type interval struct {
	s, e int64
	sLen int32
	tag  int32
}

// NewFilter returns a filter writing to w.
func NewFilter(w io.Writer, set *Set) *Filter {
	return &Filter{w: w, set: set, ver: set.current().ver}
}

// Write filters p. It returns len(p) unless the next writer failed; every
// later call then returns that error.
func (f *Filter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if b := f.set.current(); b.ver != f.ver {
		f.rebase(b)
	} else {
		f.b = b
	}
	defer func() { f.b = nil }()
	m := f.b.m
	row, trans, cls, dense := f.row, m.trans, &m.cls, m.dense
	base := f.now
	for i, c := range p {
		var v int32
		if row < dense {
			v = trans[row+cls[c]]
		} else {
			v = m.sparseStep(row, c)
		}
		row = v & rowMask
		if v < 0 {
			f.found(base+int64(i)+1, m.id(row))
		}
	}
	f.row = row
	f.now += int64(len(p))
	f.keepTail(p)
	var buf []byte
	if len(f.pend) == 0 {
		buf = p
	} else {
		f.pend = append(f.pend, p...)
		buf = f.pend
	}
	safe := f.now - int64(m.depth[m.id(row)])
	f.emit(buf, func(iv interval) bool { return iv.e <= safe }, safe)
	if f.err == nil && int(f.now-f.emitted) > f.maxPending() {
		f.emit(f.pend, func(interval) bool { return true }, safe)
	}
	if f.err != nil {
		return 0, f.err
	}
	return len(p), nil
}

func (f *Filter) maxPending() int {
	if f.MaxPending > 0 {
		return f.MaxPending
	}
	return DefaultMaxPending
}

// Pending is the number of bytes written to the filter and not yet to the
// next writer (held as a possible start of a value, or inside an open mask).
func (f *Filter) Pending() int { return int(f.now - f.emitted) }

// Emitted is the number of bytes written to the filter that are accounted
// for in what it wrote: the held bytes are the Pending ones after them.
func (f *Filter) Emitted() int64 { return f.emitted }

// Flush writes everything held: open masks as they are, a possible start
// of a value as it is (should the rest of a value follow, what follows is
// still concealed, from where the flushed bytes end).
func (f *Filter) Flush() error {
	if f.err != nil {
		return f.err
	}
	f.b = f.set.current() // for its tags: a newer version's are a superset
	f.emit(f.pend, func(interval) bool { return true }, f.now)
	f.b = nil
	return f.err
}

// Close flushes; the filter must not be written to afterwards. It does not
// close the next writer.
func (f *Filter) Close() error { return f.Flush() }

// found records the longest occurrence ending at e in state st.
func (f *Filter) found(e int64, st int32) {
	n := f.b.m.outLen[st]
	f.add(interval{s: e - int64(n), e: e, sLen: n, tag: f.b.m.outTag[st]})
}

// add merges an occurrence into f.ivs. What was written already stays
// written: an occurrence is cut to start where the output stands.
func (f *Filter) add(o interval) {
	if o.s < f.emitted {
		o.s = f.emitted
	}
	if o.s >= o.e {
		return
	}
	// Occurrences come in the order of their ends, except on a rebase: the
	// general case merges with every interval it overlaps.
	i := len(f.ivs)
	for i > 0 && f.ivs[i-1].e > o.s {
		i--
	}
	j := i
	for j < len(f.ivs) && f.ivs[j].s < o.e {
		iv := f.ivs[j]
		if iv.s < o.s || iv.s == o.s && iv.sLen > o.sLen {
			o.s, o.sLen, o.tag = iv.s, iv.sLen, iv.tag
		}
		o.e = max(o.e, iv.e)
		j++
	}
	if i == len(f.ivs) {
		f.ivs = append(f.ivs, o)
		return
	}
	f.ivs[i] = o
	f.ivs = append(f.ivs[:i+1], f.ivs[j:]...)
}

// emit writes buf (the input from f.emitted on) up to the intervals for
// which final is true, each replaced by its mask, then the input up to
// rawEnd or the next interval; the rest is kept in f.pend.
func (f *Filter) emit(buf []byte, final func(interval) bool, rawEnd int64) {
	cursor := f.emitted
	at := func(pos int64) int { return int(pos - f.emitted) }
	k := 0
	f.out = f.out[:0]
	for k < len(f.ivs) && final(f.ivs[k]) {
		iv := f.ivs[k]
		f.out = append(f.out, buf[at(cursor):at(iv.s)]...)
		f.out = append(f.out, f.b.tags[iv.tag]...)
		cursor = iv.e
		k++
	}
	limit := rawEnd
	if k < len(f.ivs) && f.ivs[k].s < limit {
		limit = f.ivs[k].s
	}
	var chunk []byte
	if k == 0 {
		chunk = buf[:at(max(limit, cursor))] // nothing replaced: no copy
	} else {
		if limit > cursor {
			f.out = append(f.out, buf[at(cursor):at(limit)]...)
		}
		chunk = f.out
	}
	cursor = max(cursor, limit)
	f.ivs = append(f.ivs[:0], f.ivs[k:]...)
	if len(chunk) > 0 {
		if _, err := f.w.Write(chunk); err != nil {
			f.err = err
		}
	}
	rest := buf[at(cursor):]
	f.emitted = cursor
	if len(rest) == 0 {
		f.pend = f.pend[:0]
	} else {
		f.pend = append(f.pend[:0], rest...) // copy handles the overlap when buf is f.pend
	}
	if cap(f.pend) > 4*f.maxPending() && len(f.pend) < f.maxPending() {
		f.pend = append([]byte(nil), f.pend...) // give back a one-off large buffer
	}
	if cap(f.out) > 4*f.maxPending() {
		f.out = nil
	}
}

// keepTail keeps the last m.maxLen bytes of input.
func (f *Filter) keepTail(p []byte) {
	n := f.b.m.maxLen
	if n == 0 {
		return
	}
	if len(p) >= n {
		f.tail = append(f.tail[:0], p[len(p)-n:]...)
		return
	}
	f.tail = append(f.tail, p...)
	if len(f.tail) > n {
		f.tail = append(f.tail[:0], f.tail[len(f.tail)-n:]...)
	}
}

// rebase moves the filter to a new version of its set (values were added):
// the new automaton's state is found by scanning again the input that can
// still be part of an occurrence, and what it finds there is recorded.
func (f *Filter) rebase(b *built) {
	f.b, f.ver = b, b.ver
	m := b.m
	scan := f.tail
	if len(f.pend) > len(scan) {
		scan = f.pend
	}
	row := int32(0)
	base := f.now - int64(len(scan))
	for i, c := range scan {
		v := m.step(row, c)
		row = v & rowMask
		if v < 0 {
			f.found(base+int64(i)+1, m.id(row))
		}
	}
	f.row = row
}
