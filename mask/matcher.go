package mask

// matcher is an immutable Aho–Corasick automaton over a set of patterns.
//
// Its states are numbered breadth-first (shallow states first), and the
// first ones, up to a memory budget, are dense: every one has a transition
// for every byte class (the failure links folded in at build time), so a
// step from one is two loads. These are the states a scan spends nearly
// all its time in: the start, and the first few bytes of a value. The
// deeper states are sparse: each keeps its own edges (one, for most: the
// rest of one value) and a failure link, followed until a state has an
// edge for the byte or is dense. A dense state costs 4 bytes per byte
// class (up to 257), a sparse one about 25 bytes, so that the automaton
// of long values (certificates, keys) stays a small multiple of their
// size and builds in time linear in it.
//
// A state is named by a code: for a dense state its row offset
// (state×ncls), for a sparse one dense+index; a transition's code has the
// sign bit set when the next state ends a pattern, so the scanning loop
// needs no second table to know whether a step found something.
type matcher struct {
	cls   [256]int32 // byte → class; 0 for bytes no pattern uses
	ncls  int32
	dense int32   // codes below this are dense rows; ndense×ncls
	trans []int32 // dense rows: row + class → next code, | matchBit when it ends a pattern
	// Sparse states, by code-dense: edges[i]:edges[i+1] are state i's
	// edges, each a byte and the next code (| matchBit); fail[i] the
	// code of its longest proper suffix that is a state.
	edges []int32
	elab  []byte
	enext []int32
	fail  []int32
	// By state (dense ones first, then sparse ones, as numbered):
	depth  []int32 // the length of the longest pattern prefix it stands for
	outLen []int32 // the longest pattern that is a suffix of it; 0 none
	outTag []int32 // that pattern's tag
	ndense int32
	maxLen int // the longest pattern
}

const (
	matchBit = int32(-1 << 31)
	rowMask  = ^matchBit
)

// DenseBudget bounds the bytes of an automaton's dense rows: 1 MiB holds
// every state of 100 values of 64 bytes over the base64 alphabet.
const denseBudget = 1 << 20

// pattern is one byte string to find, with the index of its tag.
type pattern struct {
	b   string
	tag int32
}

// newMatcher builds the automaton of pats (none empty, no two equal), with
// dense rows of at most budget bytes (at least the start state's).
func newMatcher(pats []pattern, budget int) *matcher {
	m := &matcher{}
	var used [256]bool
	total := 0
	for _, p := range pats {
		total += len(p.b)
		m.maxLen = max(m.maxLen, len(p.b))
		for i := 0; i < len(p.b); i++ {
			used[p.b[i]] = true
		}
	}
	m.ncls = 1
	for c := range used {
		if used[c] {
			m.cls[c] = m.ncls
			m.ncls++
		}
	}
	t := buildTrie(pats, total)
	order := t.breadthFirst()
	states := len(order)
	n := int(m.ncls)
	m.ndense = int32(min(states, max(1, budget/(4*n))))
	m.dense = m.ndense * m.ncls
	nsparse := states - int(m.ndense)

	// Codes, by trie node.
	code := make([]int32, states)
	for id, u := range order {
		if id < int(m.ndense) {
			code[u] = int32(id) * m.ncls
		} else {
			code[u] = m.dense + int32(id) - m.ndense
		}
	}
	m.depth = make([]int32, states)
	m.outLen = make([]int32, states)
	m.outTag = make([]int32, states)
	m.trans = make([]int32, int(m.ndense)*n)
	m.edges = make([]int32, nsparse+1)
	m.elab = make([]byte, 0, max(0, states-int(m.ndense)))
	m.enext = make([]int32, 0, max(0, states-int(m.ndense)))
	for id := int(m.ndense); id < states; id++ {
		m.edges[id-int(m.ndense)] = int32(len(m.elab))
		for v := t.child[order[id]]; v != 0; v = t.sib[v] {
			m.elab = append(m.elab, t.lab[v])
			m.enext = append(m.enext, code[v])
		}
	}
	m.edges[nsparse] = int32(len(m.elab))
	m.fail = make([]int32, nsparse)

	// Failure links and outputs breadth-first: a state's failure state is
	// shallower, so it is complete when the state is reached.
	fail := make([]int32, states) // by state id, as a code
	for id, u := range order {
		if t.outLen[u] > 0 {
			m.outLen[id], m.outTag[id] = t.outLen[u], t.outTag[u]
		} else if id > 0 {
			f := m.id(fail[id])
			m.outLen[id], m.outTag[id] = m.outLen[f], m.outTag[f]
		}
		var row []int32
		if id < int(m.ndense) {
			row = m.trans[id*n : (id+1)*n]
			if id > 0 {
				f := fail[id]
				copy(row, m.trans[f:f+m.ncls]) // a dense state's failure state is dense
			}
		} else {
			m.fail[id-int(m.ndense)] = fail[id]
		}
		for v := t.child[u]; v != 0; v = t.sib[v] {
			cv := m.id(code[v])
			m.depth[cv] = m.depth[id] + 1
			if id == 0 {
				fail[cv] = 0
			} else {
				fail[cv] = m.step(fail[id], t.lab[v]) & rowMask
			}
			if row != nil {
				row[m.cls[t.lab[v]]] = code[v]
			}
		}
	}
	// The match bits, now that every state's output is known.
	mark := func(c int32) int32 {
		if m.outLen[m.id(c)] > 0 {
			return c | matchBit
		}
		return c
	}
	for i, c := range m.trans {
		m.trans[i] = mark(c)
	}
	for i, c := range m.enext {
		m.enext[i] = mark(c)
	}
	return m
}

// id is the state of a code (without its match bit).
func (m *matcher) id(code int32) int32 {
	if code < m.dense {
		return code / m.ncls
	}
	return m.ndense + code - m.dense
}

// step is the transition from the state of code on c: the next code,
// with the match bit when it ends a pattern.
func (m *matcher) step(code int32, c byte) int32 {
	if code < m.dense {
		return m.trans[code+m.cls[c]]
	}
	return m.sparseStep(code, c)
}

// sparseStep is step from a sparse state: its edge for c, else its failure
// state's transition.
func (m *matcher) sparseStep(code int32, c byte) int32 {
	for {
		i := code - m.dense
		for e := m.edges[i]; e < m.edges[i+1]; e++ {
			if m.elab[e] == c {
				return m.enext[e]
			}
		}
		if code = m.fail[i]; code < m.dense {
			return m.trans[code+m.cls[c]]
		}
	}
}

// size is the automaton's memory in bytes (its slices).
func (m *matcher) size() int {
	return 4*(len(m.trans)+len(m.edges)+len(m.enext)+len(m.fail)+len(m.depth)+len(m.outLen)+len(m.outTag)) + len(m.elab)
}

// trie is the patterns' trie, built before the automaton: node 0 the
// root, each node's children a list (first child, next sibling).
type trie struct {
	child, sib     []int32
	lab            []byte
	outLen, outTag []int32
	root           [256]int32 // the root's children, by byte
}

func buildTrie(pats []pattern, total int) *trie {
	t := &trie{
		child:  make([]int32, 1, total+1),
		sib:    make([]int32, 1, total+1),
		lab:    make([]byte, 1, total+1),
		outLen: make([]int32, 1, total+1),
		outTag: make([]int32, 1, total+1),
	}
	for _, p := range pats {
		u := int32(0)
		for i := 0; i < len(p.b); i++ {
			u = t.childOf(u, p.b[i])
		}
		t.outLen[u], t.outTag[u] = int32(len(p.b)), p.tag
	}
	return t
}

// childOf is u's child on c, added if it has none.
func (t *trie) childOf(u int32, c byte) int32 {
	if u == 0 {
		if v := t.root[c]; v != 0 {
			return v
		}
	} else {
		for v := t.child[u]; v != 0; v = t.sib[v] {
			if t.lab[v] == c {
				return v
			}
		}
	}
	v := int32(len(t.child))
	t.child = append(t.child, 0)
	t.sib = append(t.sib, t.child[u])
	t.lab = append(t.lab, c)
	t.outLen = append(t.outLen, 0)
	t.outTag = append(t.outTag, 0)
	t.child[u] = v
	if u == 0 {
		t.root[c] = v
	}
	return v
}

// breadthFirst is the trie's nodes in breadth-first order.
func (t *trie) breadthFirst() []int32 {
	order := make([]int32, 1, len(t.child))
	for i := 0; i < len(order); i++ {
		for v := t.child[order[i]]; v != 0; v = t.sib[v] {
			order = append(order, v)
		}
	}
	return order
}
