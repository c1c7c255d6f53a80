package mask

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
)

// Limits of a Set.
const (
	// MinLen is the shortest value concealed: shorter ones (and shorter
	// lines of a multi-line value) would conceal ordinary output.
	MinLen = 4
	// MaxPatternLen is the longest byte string searched for: a longer
	// value (or line) is searched as pieces of this length, each
	// overlapping the one before by a byte (the last one by as much as
	// it takes to end where the value ends), so that printed whole it is
	// concealed whole, as one mask.
	MaxPatternLen = 4096
	// MaxTotal bounds the bytes of the byte strings searched for that
	// only superseded values need: past it the oldest of those are dropped
	// (see Update). The current values and the ones the latest change
	// superseded are kept whatever their size. The automaton takes about
	// 30 bytes a byte searched for.
	MaxTotal = 256 << 10
)

// Set is the values to conceal: the current ones (what the child runs on)
// and superseded ones (what a child saw before a change, kept while there
// is room). The zero value is not usable; call NewSet.
type Set struct {
	mu     sync.Mutex
	ents   []entry          // in the order added
	index  map[string]int32 // byte string → its entry
	tags   [][]byte         // by tag index: `<concealed:NAME>`; only ever appended to
	names  []string         // by tag index
	tagOf  map[string]int32
	total  int    // bytes of all entries
	gen    int    // the number of updates that superseded something
	call   uint64 // the number of Add and Update calls
	budget int    // of the automaton's dense rows; 0 means denseBudget (tests set it)

	m atomic.Pointer[built]
}

// entry is one byte string searched for.
type entry struct {
	b    string
	tag  int32
	call uint64 // the last call that gave it (current values)
	// superseded is 0 while the byte string is part of a current value,
	// else the generation (Set.gen) that superseded it.
	superseded int
}

// built is one immutable version of a Set: its automaton and tags (only
// ever appended to from one version to the next).
type built struct {
	m    *matcher
	tags [][]byte
	ver  uint64
}

// NewSet returns an empty set.
func NewSet() *Set {
	s := &Set{index: map[string]int32{}, tagOf: map[string]int32{}}
	s.m.Store(&built{m: newMatcher(nil, denseBudget)})
	return s
}

// Value is one value to conceal and the name its mask shows.
type Value struct {
	Name  string
	Value []byte
}

// Add adds values to the current ones (see Update); it supersedes none.
// It returns the names of superseded values dropped to make room.
func (s *Set) Add(vals ...Value) (dropped []string) { return s.update(vals, false) }

// Update makes vals the current values: the set's values are vals, and
// every value of an earlier call that vals does not repeat is superseded.
//
// A value is searched for as a whole (but a final line break) and, for a
// multi-line value (a PEM key), as each of its lines that is specific to
// it, without the spaces, tabs and "\r" around it (not blank, not PEM
// armor, of at least 3 distinct bytes); each of at least MinLen bytes. A
// byte string already in the set keeps its first name.
//
// Current values are always concealed. Superseded ones stay concealed
// (the child that saw them may still print them, or its output may still
// be on its way) while the set is within MaxTotal; past it, the values
// superseded longest ago are dropped first, never those that the latest
// superseding update superseded. Update returns the names of the values
// it dropped (never a value). The automaton is rebuilt once per call, and
// only when something changed.
func (s *Set) Update(vals ...Value) (dropped []string) { return s.update(vals, true) }

func (s *Set) update(vals []Value, supersede bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.call++
	changed := false
	for _, v := range vals {
		tag := int32(-1)
		for _, p := range s.pieces(v.Value) {
			if i, ok := s.index[string(p)]; ok {
				e := &s.ents[i]
				e.call, e.superseded = s.call, 0
				continue
			}
			if tag < 0 {
				tag = s.tag(v.Name)
			}
			k := string(p)
			s.index[k] = int32(len(s.ents))
			s.ents = append(s.ents, entry{b: k, tag: tag, call: s.call})
			s.total += len(k)
			changed = true
		}
	}
	if supersede {
		next := s.gen + 1
		for i := range s.ents {
			if e := &s.ents[i]; e.call != s.call && e.superseded == 0 {
				e.superseded = next
				s.gen = next
			}
		}
	}
	dropped := s.drop()
	if changed || len(dropped) > 0 {
		pats := make([]pattern, len(s.ents))
		for i, e := range s.ents {
			pats[i] = pattern{b: e.b, tag: e.tag}
		}
		budget := s.budget
		if budget == 0 {
			budget = denseBudget
		}
		s.m.Store(&built{m: newMatcher(pats, budget), tags: s.tags[:len(s.tags):len(s.tags)], ver: s.call})
	}
	return dropped
}

// tag is the index of name's mask, added if new.
func (s *Set) tag(name string) int32 {
	tag, ok := s.tagOf[name]
	if !ok {
		tag = int32(len(s.tags))
		s.tags = append(s.tags, []byte("<concealed:"+name+">"))
		s.names = append(s.names, name)
		s.tagOf[name] = tag
	}
	return tag
}

// drop removes, while the set outgrows MaxTotal, the values superseded
// longest ago (all the entries of a name that one generation superseded
// together), but not those of the latest generation; it returns their
// names, sorted.
func (s *Set) drop() []string {
	if s.total <= MaxTotal {
		return nil
	}
	type group struct{ superseded, tag int }
	var old []group // superseded before the latest generation
	size := map[group]int{}
	for _, e := range s.ents {
		if g := (group{e.superseded, int(e.tag)}); e.superseded > 0 && e.superseded < s.gen {
			if _, ok := size[g]; !ok {
				old = append(old, g)
			}
			size[g] += len(e.b)
		}
	}
	slices.SortStableFunc(old, func(a, b group) int { return a.superseded - b.superseded })
	gone := map[group]bool{}
	var names []string
	for _, g := range old {
		if s.total <= MaxTotal {
			break
		}
		gone[g] = true
		s.total -= size[g]
		names = append(names, s.names[g.tag])
	}
	if len(gone) == 0 {
		return nil
	}
	kept := s.ents[:0]
	for _, e := range s.ents {
		if !gone[group{e.superseded, int(e.tag)}] {
			kept = append(kept, e)
		}
	}
	clear(s.ents[len(kept):])
	s.ents = kept
	clear(s.index)
	for i, e := range s.ents {
		s.index[e.b] = int32(i)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// pieces are the byte strings to search for value.
func (s *Set) pieces(value []byte) [][]byte {
	var out [][]byte
	add := func(piece []byte) {
		if slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, piece) }) {
			return
		}
		out = append(out, piece)
	}
	consider := func(b []byte) {
		if len(b) < MinLen {
			return
		}
		// Pieces overlap by a byte, so that printed whole the value is
		// one run of overlapping occurrences (one mask), and the last
		// piece is the last MaxPatternLen bytes: no end is left over.
		for len(b) > MaxPatternLen {
			add(b[:MaxPatternLen])
			b = b[MaxPatternLen-1:]
		}
		add(b)
	}
	// A final line break is not concealed: the output keeps its lines.
	value = bytes.TrimRight(value, "\r\n")
	consider(value)
	if bytes.IndexByte(value, '\n') >= 0 {
		for line := range bytes.SplitSeq(value, []byte("\n")) {
			if line = bytes.Trim(line, " \t\r"); specific(line) {
				consider(line)
			}
		}
	}
	return out
}

// specific tells whether a line of a multi-line value (trimmed) is worth
// searching for alone: not PEM armor ("-----BEGIN RSA PRIVATE KEY-----",
// the same in every key), and of at least 3 distinct bytes (not an
// underline, "====", or padding). Others would conceal ordinary output;
// the whole value is searched for anyway.
func specific(line []byte) bool {
	if bytes.HasSuffix(line, []byte("-----")) && (bytes.HasPrefix(line, []byte("-----BEGIN ")) || bytes.HasPrefix(line, []byte("-----END "))) {
		return false
	}
	var seen [256]bool
	distinct := 0
	for _, c := range line {
		if !seen[c] {
			seen[c] = true
			if distinct++; distinct == 3 {
				return true
			}
		}
	}
	return false
}

// Len is the number of byte strings searched for.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ents)
}

func (s *Set) current() *built { return s.m.Load() }

// patterns are the byte strings searched for, with their tags.
func (s *Set) patterns() []pattern {
	s.mu.Lock()
	defer s.mu.Unlock()
	pats := make([]pattern, len(s.ents))
	for i, e := range s.ents {
		pats[i] = pattern{b: e.b, tag: e.tag}
	}
	return pats
}
