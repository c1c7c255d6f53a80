package statefile

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"filippo.io/age"
)

// maxKeyFile bounds what is read of --state-key-file (an age-keygen file
// is about 200 bytes).
const maxKeyFile = 64 << 10

// Key is the age identity of --state-key-file: the file is encrypted to
// its recipient, decrypted with it, and its content authenticated with a
// key derived from it (age alone tells a reader that nobody changed a
// file, not who wrote it: anyone who knows the recipient can encrypt to
// it; the MAC needs the identity).
type Key struct {
	id   age.Identity
	rcpt age.Recipient
	mac  []byte
}

// LoadKey reads an identity file as age-keygen writes it: comments, and
// one AGE-SECRET-KEY-1… line (an X25519 identity; a post-quantum
// AGE-SECRET-KEY-PQ-1… one is taken too). The first identity is used.
// open reports that the file is readable by others than its owner. Errors
// never quote the file.
func LoadKey(path string) (k *Key, open bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, false, err
	}
	if len(data) > maxKeyFile {
		return nil, false, fmt.Errorf("larger than %d KiB: not an age identity file", maxKeyFile>>10)
	}
	k, err = ParseKey(data)
	return k, fi.Mode().Perm()&0o077 != 0, err
}

// keyLineRE finds the line an age parse error names.
var keyLineRE = regexp.MustCompile(`line \d+`)

// ParseKey parses the content of an identity file (see LoadKey).
func ParseKey(data []byte) (*Key, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's messages may quote a byte of the key (bech32's "s[1]=98"):
		// only the line number they name is kept.
		if m := keyLineRE.FindString(err.Error()); m != "" {
			return nil, fmt.Errorf("not an age identity file (%s; want the AGE-SECRET-KEY-1... line age-keygen writes)", m)
		}
		return nil, errors.New("not an age identity file (want the AGE-SECRET-KEY-1... line age-keygen writes)")
	}
	k := &Key{id: ids[0]}
	var secret string
	switch id := ids[0].(type) {
	case *age.X25519Identity:
		k.rcpt, secret = id.Recipient(), id.String()
	case *age.HybridIdentity:
		k.rcpt, secret = id.Recipient(), id.String()
	default:
		return nil, errors.New("not an X25519 identity")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("scaivault-run state file MAC v1"))
	k.mac = m.Sum(nil)
	return k, nil
}

// Recipient is the public key the file is encrypted to (age1…), for logs
// and for `age -r`.
func (k *Key) Recipient() string {
	if s, ok := k.rcpt.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

// sum is the MAC of b under k.
func (k *Key) sum(b []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(b)
	return m.Sum(nil)
}
