package statefile

import (
	"path/filepath"
	"testing"
)

// BenchmarkEncode: the document of sampleDoc (a secret, two leases, a
// certificate, a list) to an encrypted, armored file in memory.
func BenchmarkEncode(b *testing.B) {
	k, _ := newKey(b)
	doc := sampleDoc()
	for b.Loop() {
		if _, err := Encode(doc, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode: that file back to a checked Doc.
func BenchmarkDecode(b *testing.B) {
	k, _ := newKey(b)
	data, _ := Encode(sampleDoc(), k)
	for b.Loop() {
		if _, err := Decode(data, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteFile: the atomic write of that file (temp file, fsync,
// rename, directory fsync) on the test's temp directory.
func BenchmarkWriteFile(b *testing.B) {
	k, _ := newKey(b)
	data, _ := Encode(sampleDoc(), k)
	path := filepath.Join(b.TempDir(), "state.age")
	for b.Loop() {
		if err := WriteFile(path, data); err != nil {
			b.Fatal(err)
		}
	}
}
