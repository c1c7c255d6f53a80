package mask

// matcher is an immutable Aho–Corasick automaton over a set of patterns,
// built as a dense DFA: every state has a transition for every byte class
// (the failure links are folded in at build time), so a step is two loads.
//
// Transitions are stored premultiplied (the row offset of the next state,
// state×ncls) with the sign bit set when the next state ends a pattern, so
// the scanning loop needs neither a multiplication nor a second table to
// know whether a step found something.
type matcher struct {
	cls    [256]int32 // byte → class; 0 for bytes no pattern uses
	ncls   int32
	trans  []int32 // row + class → next row, | matchBit when it ends a pattern
	depth  []int32 // by state: the length of the longest pattern prefix it stands for
	outLen []int32 // by state: the longest pattern that is a suffix of it; 0 none
	outTag []int32 // by state: that pattern's tag
	maxLen int     // the longest pattern
}

const (
	matchBit = int32(-1 << 31)
	rowMask  = ^matchBit
)

// pattern is one byte string to find, with the index of its tag.
type pattern struct {
	b   []byte
	tag int32
}

// newMatcher builds the automaton of pats (none empty, no two equal).
func newMatcher(pats []pattern) *matcher {
	m := &matcher{}
	var used [256]bool
	states := 1
	for _, p := range pats {
		states += len(p.b)
		m.maxLen = max(m.maxLen, len(p.b))
		for _, c := range p.b {
			used[c] = true
		}
	}
	m.ncls = 1
	for c := range used {
		if used[c] {
			m.cls[c] = m.ncls
			m.ncls++
		}
	}
	n := int(m.ncls)
	goto_ := make([]int32, states*n) // trie first: -1 where there is no child
	for i := range goto_ {
		goto_[i] = -1
	}
	m.depth = make([]int32, states)
	m.outLen = make([]int32, states)
	m.outTag = make([]int32, states)
	next := int32(1)
	for _, p := range pats {
		s := int32(0)
		for _, c := range p.b {
			i := int(s)*n + int(m.cls[c])
			if goto_[i] < 0 {
				goto_[i] = next
				m.depth[next] = m.depth[s] + 1
				next++
			}
			s = goto_[i]
		}
		m.outLen[s], m.outTag[s] = int32(len(p.b)), p.tag
	}
	states = int(next)
	goto_ = goto_[:states*n]
	m.depth, m.outLen, m.outTag = m.depth[:states], m.outLen[:states], m.outTag[:states]
	m.buildDFA(goto_, states)
	return m
}

// buildDFA folds the failure links into goto_ in breadth-first order and
// stores it premultiplied, with the match bits, as m.trans.
func (m *matcher) buildDFA(goto_ []int32, states int) {
	n := int(m.ncls)
	fail := make([]int32, states)
	queue := make([]int32, 0, states)
	for c := 0; c < n; c++ {
		if t := goto_[c]; t < 0 {
			goto_[c] = 0
		} else {
			queue = append(queue, t) // fail[t] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		// The longest pattern ending here: its own, else its failure
		// state's (already final: shallower states come first).
		if m.outLen[s] == 0 {
			m.outLen[s], m.outTag[s] = m.outLen[fail[s]], m.outTag[fail[s]]
		}
		row, frow := int(s)*n, int(fail[s])*n
		for c := 0; c < n; c++ {
			if t := goto_[row+c]; t < 0 {
				goto_[row+c] = goto_[frow+c]
			} else {
				fail[t] = goto_[frow+c]
				queue = append(queue, t)
			}
		}
	}
	m.trans = goto_
	for i, t := range m.trans {
		v := t * m.ncls
		if m.outLen[t] > 0 {
			v |= matchBit
		}
		m.trans[i] = v
	}
}

// state is the state of a premultiplied row.
func (m *matcher) state(row int32) int32 { return row / m.ncls }
