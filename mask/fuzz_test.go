package mask

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzFilter checks, for any values, input and write boundaries, that the
// output equals the input with every occurrence replaced as reference
// says, and that no value is left in it.
//
// vals is split at 0xff into values (0xff is then never part of one, and
// stands for a mask when the output is checked); cuts gives the lengths of
// the writes, one byte each (0: an empty write, then one byte).
func FuzzFilter(f *testing.F) {
	f.Add([]byte("hunter22\xffk-123456"), []byte("pw=hunter22 key=k-123456\n"), []byte{3, 1, 9})
	f.Add([]byte("overlapXY\xffXYtail-end\xfflapX"), []byte("<overlapXYtail-end> lapX overlapX"), []byte{1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte("aaaa\xffaaab"), []byte("aaaaaaaaaaab aaa"), []byte{2})
	f.Add([]byte("abab\xffbaba\xffababab"), []byte("abababababa"), []byte{5, 5})
	f.Add([]byte("s\x00cr\xfe\xfft\x00t\x00"), []byte("\x00s\x00cr\xfe t\x00t\x00t\x00"), []byte{0, 2, 1})
	f.Add([]byte("-----BEGIN KEY-----\nMIGHAgEAMBMG\n-----END KEY-----\n"), []byte("key\n-----BEGIN KEY-----\nMIGHAgEAMBMG\n-----END KEY-----\nMIGHAgEAMBMG"), []byte{7, 13})
	f.Add([]byte("abab\xffbaba\xffababab\xffba"), []byte("abababababa ba bab aba"), []byte{0x81, 1, 2})
	f.Fuzz(func(t *testing.T, vals, in, cuts []byte) {
		var names []Value
		for i, v := range bytes.Split(vals, []byte{0xff}) {
			names = append(names, Value{fmt.Sprint("V", i), v})
		}
		// The default automaton, or one with only its start state dense.
		set := NewSet()
		if len(cuts) > 0 && cuts[0]&0x80 != 0 {
			set.budget = 1
		}
		set.Add(names...)
		var out bytes.Buffer
		fl := NewFilter(&out, set)
		fl.MaxPending = len(in) + 1 // the run of masks is never cut here
		rest := in
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)]))
			}
			if n == 0 {
				fl.Write(nil)
				n = 1
			}
			fl.Write(rest[:n])
			rest = rest[n:]
		}
		fl.Close()
		if want := reference(in, set); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("in %q\n got %q\nwant %q", in, out.Bytes(), want)
		}
		shown := out.Bytes()
		for _, tag := range set.current().tags {
			shown = bytes.ReplaceAll(shown, tag, []byte{0xff})
		}
		for _, p := range set.patterns() {
			if bytes.Contains(shown, []byte(p.b)) {
				t.Fatalf("in %q: %q shown: %q", in, p.b, out.Bytes())
			}
		}
	})
}
