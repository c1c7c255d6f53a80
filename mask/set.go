package mask

import (
	"bytes"
	"errors"
	"fmt"
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
	// MaxTotal bounds the bytes of all patterns together (the automaton's
	// size is about 30 bytes a byte of pattern).
	MaxTotal = 256 << 10
)

// Set is the values to conceal. The zero value is not usable; call NewSet.
type Set struct {
	mu    sync.Mutex
	pats  []pattern
	seen  map[string]bool
	tags  [][]byte // by tag index: `<concealed:NAME>`
	tagOf map[string]int32
	total int

	m atomic.Pointer[built]
}

// built is one immutable version of a Set: its automaton and tags.
type built struct {
	m    *matcher
	tags [][]byte
}

// NewSet returns an empty set.
func NewSet() *Set {
	s := &Set{seen: map[string]bool{}, tagOf: map[string]int32{}}
	s.m.Store(&built{m: newMatcher(nil, denseBudget)})
	return s
}

// Value is one value to conceal and the name its mask shows.
type Value struct {
	Name  string
	Value []byte
}

// Add adds each value under its name: the whole value (but a final line
// break) and, for a multi-line value (a PEM key), each of its lines that
// is specific to it, without the spaces, tabs and "\r" around it (not
// blank, not PEM armor, of at least 3 distinct bytes), each of at least
// MinLen bytes; a byte string already in the set keeps its first name. The automaton is rebuilt once per call. A value that would make the
// set outgrow MaxTotal is left out, with an error that names it (never its
// value); the others are added.
func (s *Set) Add(vals ...Value) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	added := false
	for _, v := range vals {
		pieces := s.pieces(v.Value)
		size := 0
		for _, p := range pieces {
			size += len(p)
		}
		if len(pieces) == 0 {
			continue
		}
		if s.total+size > MaxTotal {
			errs = append(errs, fmt.Errorf("conceal %s: the set of values to conceal is full (%d bytes)", v.Name, MaxTotal))
			continue
		}
		tag, ok := s.tagOf[v.Name]
		if !ok {
			tag = int32(len(s.tags))
			s.tags = append(s.tags, []byte("<concealed:"+v.Name+">"))
			s.tagOf[v.Name] = tag
		}
		for _, p := range pieces {
			s.seen[string(p)] = true
			s.pats = append(s.pats, pattern{b: string(p), tag: tag})
		}
		s.total += size
		added = true
	}
	if added {
		s.m.Store(&built{m: newMatcher(s.pats, denseBudget), tags: s.tags[:len(s.tags):len(s.tags)]})
	}
	return errors.Join(errs...)
}

// pieces are the byte strings to search for value that the set lacks.
func (s *Set) pieces(value []byte) [][]byte {
	var out [][]byte
	add := func(piece []byte) {
		if s.seen[string(piece)] || slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, piece) }) {
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
	return len(s.pats)
}

func (s *Set) current() *built { return s.m.Load() }

// patterns are the byte strings searched for, with their tags.
func (s *Set) patterns() []pattern {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pats)
}
