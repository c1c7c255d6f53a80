package mask

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"weak"
)

// value is one value of a test set.
type value struct{ name, v string }

func newTestSet(t testing.TB, vals ...value) *Set {
	t.Helper()
	return newSparseSet(t, 0, vals...)
}

// newSparseSet is a set whose automaton has at most budget bytes of dense
// rows (0: the default; 1: only the start state is dense).
func newSparseSet(t testing.TB, budget int, vals ...value) *Set {
	t.Helper()
	s := NewSet()
	s.budget = budget
	for _, v := range vals {
		if dropped := s.Add(Value{v.name, []byte(v.v)}); dropped != nil {
			t.Fatal(dropped)
		}
	}
	return s
}

// run writes the chunks through a new filter on s and returns the output.
func run(t testing.TB, s *Set, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	f := NewFilter(&out, s)
	for _, c := range chunks {
		if n, err := f.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestFilter(t *testing.T) {
	vals := []value{
		{"DB_PASSWORD", "hunter22"},
		{"API_KEY", "k-123456"},
		{"SHORT", "abc"}, // below MinLen: not concealed
		{"OVER1", "overlapXY"},
		{"OVER2", "XYtail-end"},
		{"INNER", "lapX"}, // inside OVER1
	}
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"whole", []string{"hunter22\n"}, "<concealed:DB_PASSWORD>\n"},
		{"inside a longer line", []string{"login ok pw=hunter22 key=k-123456!\n"}, "login ok pw=<concealed:DB_PASSWORD> key=<concealed:API_KEY>!\n"},
		{"split across writes", []string{"pw=hun", "ter22 done"}, "pw=<concealed:DB_PASSWORD> done"},
		{"one byte at a time", strings.Split("a hunter22 b", ""), "a <concealed:DB_PASSWORD> b"},
		{"twice, adjacent", []string{"hunter22hunter22"}, "<concealed:DB_PASSWORD><concealed:DB_PASSWORD>"},
		{"a prefix that is not one", []string{"hunter2", "3 hunte", "r"}, "hunter23 hunter"},
		{"short values pass", []string{"abc abcd"}, "abc abcd"},
		{"overlap: the union", []string{"<overlapXYtail-end>"}, "<<concealed:OVER1>>"},
		{"overlap split", []string{"overla", "pXYta", "il-end."}, "<concealed:OVER1>."},
		{"nested", []string{"..lapX.."}, "..<concealed:INNER>.."},
		{"nested in a longer one", []string{"overlapXY"}, "<concealed:OVER1>"},
		{"later one starting earlier", []string{"_lapX", "_overlapX", "Y"}, "_<concealed:INNER>_<concealed:OVER1>"},
		{"nothing", []string{"", "plain text\n"}, "plain text\n"},
	}
	// The default automaton (all dense here), and one with only its start
	// state dense.
	for _, budget := range []int{0, 1} {
		set := newSparseSet(t, budget, vals...)
		for _, tt := range tests {
			t.Run(fmt.Sprint(tt.name, "/budget=", budget), func(t *testing.T) {
				if got := run(t, set, tt.chunks...); got != tt.want {
					t.Errorf("got  %q\nwant %q", got, tt.want)
				}
				if got, want := run(t, set, strings.Join(tt.chunks, "")), reference([]byte(strings.Join(tt.chunks, "")), set); got != string(want) {
					t.Errorf("whole %q, reference %q", got, want)
				}
			})
		}
	}
}

func TestFilterPEMLines(t *testing.T) {
	pem := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQgabcdefghijklmnop\n-----END PRIVATE KEY-----\n"
	set := newTestSet(t, value{"TLS_KEY", pem})
	// Whole, and each line alone in another context (a log line, a
	// child printing it line by line with its own prefix).
	got := run(t, set, "key:\n"+pem, "line: AwEHBG0wawIBAQQgabcdefghijklmnop (end)\n")
	want := "key:\n<concealed:TLS_KEY>\nline: <concealed:TLS_KEY> (end)\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Each line of the key alone, indented too; the armor lines are the
	// same in every key and are not concealed alone.
	for l := range strings.Lines(pem) {
		out := run(t, set, ">   "+l)
		if armor := strings.HasPrefix(l, "-----"); strings.Contains(out, strings.TrimSpace(l)) != armor {
			t.Errorf("line %q: %q", l, out)
		}
	}
}

func TestFilterBinary(t *testing.T) {
	secret := "s\x00cr\x00t\xff"
	set := newTestSet(t, value{"BIN", secret}, value{"TXT", "pass-word"})
	in := []byte("\x00\x01\x02" + secret + "\x00\xfe\xffpass-word\x00\r\n\x00")
	want := []byte("\x00\x01\x02<concealed:BIN>\x00\xfe\xff<concealed:TXT>\x00\r\n\x00")
	for cut := range len(in) + 1 {
		got := run(t, set, string(in[:cut]), string(in[cut:]))
		if got != string(want) {
			t.Fatalf("cut %d: got %q\nwant %q", cut, got, want)
		}
	}
}

// A value added while the stream runs (a rotation) is concealed from then
// on, the old one still.
func TestFilterRotation(t *testing.T) {
	set := newTestSet(t, value{"DB_PASSWORD", "old-secret"})
	var out bytes.Buffer
	f := NewFilter(&out, set)
	f.Write([]byte("v1=old-secret new-sec"))
	set.Update(Value{"DB_PASSWORD", []byte("new-secret")})
	f.Write([]byte("ret\nv2=new-secret old=old-secret\n"))
	f.Close()
	// "new-sec" was written before the value was known, and stays; what
	// came after is concealed.
	want := "v1=<concealed:DB_PASSWORD> new-sec<concealed:DB_PASSWORD>\nv2=<concealed:DB_PASSWORD> old=<concealed:DB_PASSWORD>\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}

// Only a possible start of a value is held back, and Flush releases it.
func TestFilterHoldsOnlyAPrefix(t *testing.T) {
	set := newTestSet(t, value{"P", "hunter22"})
	var out bytes.Buffer
	f := NewFilter(&out, set)
	f.Write([]byte("line one\nabc hunt"))
	if got := out.String(); got != "line one\nabc " {
		t.Errorf("written before the flush: %q", got)
	}
	if f.Pending() != 4 {
		t.Errorf("Pending = %d, want 4", f.Pending())
	}
	f.Flush()
	if got := out.String(); got != "line one\nabc hunt" {
		t.Errorf("after the flush: %q", got)
	}
	// The rest of a value after a flush is still concealed.
	f.Write([]byte("er22 x"))
	f.Close()
	if got := out.String(); got != "line one\nabc hunt<concealed:P> x" {
		t.Errorf("after the rest: %q", got)
	}
}

// Memory stays bounded whatever the child writes: a long stream of
// possible prefixes and overlapping occurrences, no newline.
func TestFilterBoundedMemory(t *testing.T) {
	set := newTestSet(t, value{"A", "aaaa"}, value{"B", strings.Repeat("ab", 32)}, value{"C", "abababab!"})
	f := NewFilter(discard{}, set)
	chunk := []byte(strings.Repeat("ab", 16<<10))
	chunk2 := []byte(strings.Repeat("a", 32<<10))
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	const total = 64 << 20
	for n := 0; n < total; n += 2 * len(chunk) {
		f.Write(chunk)
		f.Write(chunk2)
		if f.Pending() > f.maxPending()+MaxPatternLen || cap(f.pend) > 4*f.maxPending()+len(chunk) {
			t.Fatalf("held %d bytes (cap %d) after %d", f.Pending(), cap(f.pend), n)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grow := int64(ms.HeapAlloc) - int64(before); grow > 4<<20 {
		t.Errorf("heap grew by %d bytes over %d MiB written", grow, total>>20)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestSetAdd(t *testing.T) {
	s := NewSet()
	s.Add(Value{"A", []byte("same-value")})
	s.Add(Value{"B", []byte("same-value")}) // first name wins
	s.Add(Value{"C", []byte("ab")})         // too short
	s.Add(Value{"D", []byte("line-one\r\nxy\nline-three")})
	if got := run(t, s, "same-value line-one xy line-three"); got != "<concealed:A> <concealed:D> xy <concealed:D>" {
		t.Errorf("got %q", got)
	}
	if s.Len() != 4 { // same-value, the multi-line value, line-one, line-three
		t.Errorf("Len = %d, want 4", s.Len())
	}
	var long []byte // not periodic: its pieces occur once each
	for i := range 2000 {
		long = fmt.Appendf(long, "%04x", i)
	}
	s.Add(Value{"LONG", long})
	if got := run(t, s, "<"+string(long)+">"); got != "<<concealed:LONG>>" {
		t.Errorf("a long value printed whole: %q", got[:min(len(got), 200)])
	}
}

// reference is the filter's meaning, computed on the whole input: every
// occurrence of every pattern, overlapping runs merged, each run replaced
// by the mask of the occurrence that starts first (the longest of those).
func reference(data []byte, s *Set) []byte {
	b := s.current()
	type occ struct {
		s, e int
		tag  int32
	}
	var occs []occ
	for _, p := range s.patterns() {
		for i := 0; i+len(p.b) <= len(data); {
			j := bytes.Index(data[i:], []byte(p.b))
			if j < 0 {
				break
			}
			occs = append(occs, occ{i + j, i + j + len(p.b), p.tag})
			i += j + 1
		}
	}
	slices.SortFunc(occs, func(a, b occ) int {
		if a.s != b.s {
			return a.s - b.s
		}
		return b.e - a.e
	})
	var out []byte
	pos := 0
	for i := 0; i < len(occs); {
		run := occs[i]
		for i++; i < len(occs) && occs[i].s < run.e; i++ {
			run.e = max(run.e, occs[i].e)
		}
		out = append(out, data[pos:run.s]...)
		out = append(out, b.tags[run.tag]...)
		pos = run.e
	}
	return append(out, data[pos:]...)
}

// A value longer than MaxPatternLen is searched as pieces of that length,
// the last one overlapping the one before: printed whole, none of its
// bytes is shown, whatever its length.
func TestSetLongValue(t *testing.T) {
	for _, n := range []int{MaxPatternLen + 1, MaxPatternLen + 2, MaxPatternLen + 3, MaxPatternLen + 4, 2*MaxPatternLen - 1, 2 * MaxPatternLen, 2*MaxPatternLen + 1, 3*MaxPatternLen + 2} {
		var v []byte // not periodic
		for i := 0; len(v) < n; i++ {
			v = fmt.Appendf(v, "%x.", i*2654435761)
		}
		v = v[:n]
		v[n-2], v[n-1] = 'Q', 'Z'
		s := newTestSet(t, value{"A", string(v)})
		got := run(t, s, "<"+string(v)+">")
		if shown := strings.ReplaceAll(got, "<concealed:A>", ""); shown != "<>" {
			t.Errorf("%d bytes printed whole: %q shown", n, shown)
		} else if got != "<<concealed:A>>" {
			t.Errorf("%d bytes printed whole: %q, want one mask", n, got)
		}
	}
}

// A line of a multi-line value is searched for alone only when it is
// specific to it: not blank, not PEM armor, not a line of one or two
// repeated characters (an underline, a closing brace). The whole value
// still is.
func TestSetLinesNotConcealedAlone(t *testing.T) {
	pem := "-----BEGIN RSA PRIVATE KEY-----\r\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\r\n-----END RSA PRIVATE KEY-----\r\n"
	cfg := "server:\n    \n\t\t\n  port: 8080\n  },\n========\nend\n"
	s := newTestSet(t, value{"KEY", pem}, value{"CFG", cfg})
	for _, in := range []string{
		"-----BEGIN RSA PRIVATE KEY-----\n", // another key's armor
		"-----END RSA PRIVATE KEY-----\n",
		"x    y\n", // 4 spaces anywhere
		"\t\t\tz\n",
		"  },\n",
		"==========\n",
	} {
		if got := run(t, s, in); got != in {
			t.Errorf("%q concealed: %q", in, got)
		}
	}
	if got := run(t, s, "key: MIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nport:  port: 8080\n"); got != "key: <concealed:KEY>\nport:  <concealed:CFG>\n" {
		t.Errorf("the lines specific to a value: %q", got)
	}
	if got := run(t, s, pem+cfg); got != "<concealed:KEY>\r\n<concealed:CFG>\n" {
		t.Errorf("the values whole: %q", got)
	}
}

// blob is a value of n bytes, distinct for each seed, not periodic.
func blob(seed, n int) string {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "%x.", (seed*1000003+i)*2654435761)
	}
	return string(b[:n])
}

// Update: current values are always concealed; superseded ones while
// there is room, the oldest dropped first (by name), never those the
// latest change superseded.
func TestSetUpdate(t *testing.T) {
	concealed := func(s *Set, v string) bool { return !strings.Contains(run(t, s, "["+v+"]"), v) }
	s := NewSet()
	const size = 60 << 10
	var big []string
	for i := range 10 {
		big = append(big, blob(i, size))
	}
	if d := s.Update(Value{"BIG", []byte(big[0])}, Value{"PW", []byte("pw-one")}); d != nil {
		t.Fatalf("dropped %v", d)
	}
	// Nothing changes: no new automaton.
	b := s.current()
	s.Update(Value{"PW", []byte("pw-one")}, Value{"BIG", []byte(big[0])})
	if s.current() != b {
		t.Error("the same values rebuilt the automaton")
	}
	for i := 1; i < len(big); i++ {
		dropped := s.Update(Value{"BIG", []byte(big[i])}, Value{"PW", []byte("pw-one")})
		if !concealed(s, big[i]) || !concealed(s, big[i-1]) || !concealed(s, "pw-one") {
			t.Fatalf("update %d: the current value or the one it replaced is shown", i)
		}
		// Four values of 60 KiB fit in MaxTotal with what they overlap:
		// from the fifth on, the oldest goes.
		if want := i >= 4; (len(dropped) > 0) != want || want && !slices.Equal(dropped, []string{"BIG"}) {
			t.Errorf("update %d dropped %v", i, dropped)
		}
		for j := range i - 1 {
			if kept := j >= i-3; concealed(s, big[j]) != kept {
				t.Errorf("update %d: value %d concealed: %v, want %v", i, j, !kept, kept)
			}
		}
	}
	// A superseded value current again is kept as current.
	s.Update(Value{"BIG", []byte(big[7])})
	for i := range 3 {
		s.Update(Value{"BIG", []byte(big[7])}, Value{"OTHER", []byte(blob(100+i, size))})
	}
	if !concealed(s, big[7]) {
		t.Error("a value current again was dropped")
	}
	// Current values beyond MaxTotal are all concealed; so are the ones
	// the update superseded.
	var many []Value
	for i := range 6 {
		many = append(many, Value{fmt.Sprint("V", i), []byte(blob(200+i, size))})
	}
	s.Update(many...)
	for _, v := range many {
		if !concealed(s, string(v.Value)) {
			t.Errorf("current %s shown", v.Name)
		}
	}
	if !concealed(s, big[7]) || !concealed(s, blob(102, size)) {
		t.Errorf("the values the latest update superseded are shown")
	}
	// Add supersedes nothing.
	s.Add(Value{"NEW", []byte("new-value")})
	if !concealed(s, "new-value") || !concealed(s, string(many[0].Value)) {
		t.Error("Add")
	}
}

// A filter holds no version of its set between calls: an idle stream
// (the child's stderr) does not keep a replaced automaton alive.
func TestFilterKeepsNoOldAutomaton(t *testing.T) {
	s := newTestSet(t, value{"A", "first-value"})
	var out bytes.Buffer
	f := NewFilter(&out, s)
	f.Write([]byte("x first-val"))
	old := weak.Make(s.current())
	s.Update(Value{"A", []byte("second-value")})
	runtime.GC()
	if old.Value() != nil {
		t.Error("the replaced automaton is still reachable")
	}
	f.Write([]byte("ue second-value\n"))
	f.Close()
	if got := out.String(); got != "x <concealed:A> <concealed:A>\n" {
		t.Errorf("got %q", got)
	}
}
