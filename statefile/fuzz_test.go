package statefile

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzIdentity is a key made for these tests only.
const fuzzIdentity = "AGE-SECRET-KEY-1WV5H3Y4SYQ8SK6ZNMYVTMMQCL8CH3YPY37QZ6V0KVFE2T6DQ0SGS2E734J"

func fuzzKey(f *testing.F) *Key {
	k, err := ParseKey([]byte("# created: 2026-01-01T00:00:00Z\n" + fuzzIdentity + "\n"))
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// FuzzDecode: any file, whole, gets a *DecodeError or a well-formed Doc,
// within bounded time, never a panic, and the error quotes nothing of it.
func FuzzDecode(f *testing.F) {
	k := fuzzKey(f)
	good, err := Encode(sampleDoc(), k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:len(good)-40])
	f.Add([]byte{})
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\nAAAA\n--- AAAA\n"))
	f.Add([]byte("-----BEGIN AGE ENCRYPTED FILE-----\n!!!!\n-----END AGE ENCRYPTED FILE-----\n"))
	f.Add([]byte("DB_PASSWORD=s3cr3t-value\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		doc, err := Decode(data, k)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("decoding took %v", d)
		}
		if err == nil {
			if doc == nil || doc.check() != nil {
				t.Fatalf("no error, but doc %v", doc)
			}
			return
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("err %T: %v", err, err)
		}
		if len(err.Error()) > 300 {
			t.Fatalf("error too long: %d bytes", len(err.Error()))
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("the error quotes the file: %v", err)
		}
	})
}

// FuzzDocument: the document of an authenticated file (written by a
// holder of the key: a bug, a file edited by hand and re-encrypted) is
// accepted only well formed, and its errors quote no value.
func FuzzDocument(f *testing.F) {
	good, _ := json.Marshal(sampleDoc())
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"resolved_at":"2026-01-01T00:00:00Z","secrets":[{"source":{"kind":"static","path":"a"},"secret":{"data":{"k":"s3cr3t-value"}}}]}`))
	f.Add([]byte(`{"resolved_at":"2026-01-01T00:00:00Z","leases":[{"source":{"kind":"dynamic","engine":"e","role":"r"},"lease_id":"x","phase":"in use"}]}`))
	f.Add([]byte(`{"resolved_at":"s3cr3t-value"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseDoc(data)
		if err == nil {
			if doc.check() != nil {
				t.Fatal("accepted a document that fails its check")
			}
			for _, l := range doc.Leases {
				if _, err := l.Source.Source(); err != nil {
					t.Fatalf("accepted lease source: %v", err)
				}
			}
			return
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("the error quotes a value: %v", err)
		}
	})
}
