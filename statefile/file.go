package statefile

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Bounds of a state file. A state holds what the child runs on: a few
// secrets, leases and certificates, a few KiB each; these leave room for
// thousands and bound what a hostile file costs.
const (
	MaxFileSize   = 16 << 20 // the file as on disk (armored)
	MaxPlainSize  = 12 << 20 // the decrypted document
	MaxEntries    = 10000    // each of secrets, leases, certificates, lists
	maxListLength = 100000   // entries of one list
	maxUsers      = 1000     // used_by of one entry
	maxString     = 4096     // an id, a path, a used_by line
)

// What makes a file unusable; a *DecodeError matches one of them with
// errors.Is.
var (
	ErrWrongKey  = errors.New("encrypted to another key (not this --state-key-file's recipient)")
	ErrTruncated = errors.New("truncated")
	ErrCorrupt   = errors.New("corrupt")
	ErrTampered  = errors.New("tampered with")
	ErrTooLarge  = errors.New("too large")
	ErrVersion   = errors.New("written in another format version")
)

// DecodeError is why a state file cannot be used: Kind is one of the Err
// variables above, Detail a few words more. Neither ever quotes the file.
type DecodeError struct {
	Kind   error
	Detail string
}

func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Detail
}

func (e *DecodeError) Unwrap() error { return e.Kind }

func bad(kind error, format string, args ...any) *DecodeError {
	return &DecodeError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// envelope is the decrypted file: the document and its MAC.
type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	MAC     string          `json:"mac"`
	State   json.RawMessage `json:"state"`
}

// Encode encrypts doc to k's recipient, ASCII-armored. The plaintext is
// indented JSON (what `age -d` prints).
func Encode(doc *Doc, k *Key) ([]byte, error) {
	body, err := json.MarshalIndent(doc, "  ", "  ")
	if err != nil {
		// Not expected (plain data); the encoder's message may quote a
		// value, so it is not passed on.
		return nil, errors.New("encode the state: not valid JSON")
	}
	var plain bytes.Buffer
	fmt.Fprintf(&plain, "{\n  \"format\": %q,\n  \"version\": %d,\n  \"mac\": %q,\n  \"state\": ", Format, Version, hex.EncodeToString(k.sum(body)))
	plain.Write(body)
	plain.WriteString("\n}\n")
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, k.rcpt)
	if err != nil {
		return nil, fmt.Errorf("encrypt the state: %w", err)
	}
	if _, err := w.Write(plain.Bytes()); err != nil {
		return nil, fmt.Errorf("encrypt the state: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt the state: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("encrypt the state: %w", err)
	}
	if out.Len() > MaxFileSize {
		// ReadFile would refuse it: writing it would replace a good
		// state by one no start can use.
		return nil, fmt.Errorf("the state is %d MiB encrypted, over the %d MiB a state file may be (fewer or smaller secrets, or no --state-file): %w", out.Len()>>20, MaxFileSize>>20, ErrTooLarge)
	}
	return out.Bytes(), nil
}

// ReadFile reads and decodes the state file at path. A missing file is an
// error matching os.ErrNotExist; one that cannot be used is a
// *DecodeError; other errors are the file system's.
func ReadFile(path string, k *Key) (*Doc, error) {
	dir, err := os.OpenRoot(dirOf(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return ReadIn(dir, filepath.Base(path), k)
}

// ReadIn is ReadFile of the file name in the open directory dir (see
// WriteIn). It reads only a regular file (a FIFO does not block it).
func ReadIn(dir *os.Root, name string, k *Key) (*Doc, error) {
	f, err := dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, bad(ErrCorrupt, "not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return Decode(data, k)
}

// Decode decrypts, authenticates and checks a state file.
func Decode(data []byte, k *Key) (*Doc, error) {
	plain, err := decrypt(data, k)
	if err != nil {
		return nil, err
	}
	var env envelope
	if err := strictJSON(plain, &env); err != nil {
		return nil, bad(ErrCorrupt, "not a state document (%v)", err)
	}
	if env.Format != Format {
		return nil, bad(ErrCorrupt, "not a state document (format %q)", truncate(env.Format))
	}
	if env.Version != Version {
		return nil, bad(ErrVersion, "version %d, this scaivault-run reads version %d", env.Version, Version)
	}
	sum, err := hex.DecodeString(env.MAC)
	if err != nil || !hmac.Equal(sum, k.sum(env.State)) {
		return nil, bad(ErrTampered, "its MAC does not match this key's (forged, or changed after it was written)")
	}
	return parseDoc(env.State)
}

// decrypt undoes the armor and the encryption, within the bounds.
func decrypt(data []byte, k *Key) ([]byte, error) {
	switch {
	case len(data) > MaxFileSize:
		return nil, bad(ErrTooLarge, "larger than %d MiB", MaxFileSize>>20)
	case len(data) == 0:
		return nil, bad(ErrTruncated, "empty file")
	}
	var src io.Reader = bytes.NewReader(data)
	switch trimmed := bytes.TrimLeft(data, " \t\r\n"); {
	case bytes.HasPrefix(trimmed, []byte(armor.Header)):
		if !bytes.HasSuffix(bytes.TrimRight(data, " \t\r\n"), []byte(armor.Footer)) {
			return nil, bad(ErrTruncated, "the armor's end line is missing")
		}
		src = armor.NewReader(src)
	case bytes.HasPrefix(data, []byte("age-encryption.org/")):
		// A binary age file (age -e without -a) is read too.
	case len(trimmed) < len(armor.Header) && bytes.HasPrefix([]byte(armor.Header), trimmed):
		return nil, bad(ErrTruncated, "the armor's first line is cut")
	default:
		return nil, bad(ErrCorrupt, "not an age-encrypted file")
	}
	r, err := age.Decrypt(src, k.id)
	if err != nil {
		return nil, headerError(err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, MaxPlainSize+1))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, bad(ErrTruncated, "the encrypted data ends early")
	case err != nil && isArmorError(err):
		return nil, bad(ErrCorrupt, "bad armor")
	case err != nil:
		return nil, bad(ErrTampered, "the encrypted data does not authenticate (changed, or cut inside its last chunk)")
	case len(plain) > MaxPlainSize:
		return nil, bad(ErrTooLarge, "decrypts to more than %d MiB", MaxPlainSize>>20)
	}
	return plain, nil
}

// headerError classifies a failure of age.Decrypt, which reads and checks
// the header. age's own messages may quote header lines, so they are not
// passed on.
func headerError(err error) *DecodeError {
	var nm *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nm):
		return &DecodeError{Kind: ErrWrongKey}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return bad(ErrTruncated, "the age header ends early")
	case strings.Contains(err.Error(), "bad header MAC"):
		return bad(ErrTampered, "the age header's MAC does not match")
	case isArmorError(err):
		return bad(ErrCorrupt, "bad armor")
	}
	return bad(ErrCorrupt, "bad age header")
}

func isArmorError(err error) bool {
	var ae *armor.Error
	return errors.As(err, &ae)
}

// WriteFile writes data to path atomically: a temp file in the same
// directory (mode 0600), written, synced, renamed over path, and the
// directory synced. A reader sees the old file or the new, never a part;
// on error the old file is left as it was and nothing else is left.
func WriteFile(path string, data []byte) error {
	dir, err := os.OpenRoot(dirOf(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return WriteIn(dir, filepath.Base(path), data)
}

// WriteIn is WriteFile of the file name in the open directory dir: every
// step by name in dir (os.Root), so that with --user a child that
// renames a directory on the path cannot redirect the write.
func WriteIn(dir *os.Root, name string, data []byte) (err error) {
	var tmp *os.File
	var tmpName string
	for try := 0; ; try++ {
		tmpName = strings.TrimSuffix(TempPattern(name), "*") + strconv.FormatUint(uint64(rand.Uint32()), 10)
		tmp, err = dir.OpenFile(tmpName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	defer func() {
		if err != nil {
			tmp.Close()
			dir.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = dir.Rename(tmpName, name); err != nil {
		return err
	}
	if d, derr := dir.Open("."); derr == nil {
		d.Sync() // the rename is durable; a failure here loses nothing written
		d.Close()
	}
	return nil
}

// dirOf is the directory of path ("." for a bare name).
func dirOf(path string) string {
	if d, _ := filepath.Split(path); d != "" {
		return d
	}
	return "."
}

// TempPattern is the os.CreateTemp pattern of WriteFile's temp files for
// a file named base: one a crash left behind matches
// filepath.Glob(dir + "/" + TempPattern(base)).
func TempPattern(base string) string { return "." + base + ".tmp-*" }

// strictJSON decodes data into v, refusing unknown fields and trailing
// data. Its errors never quote the document.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the document.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("field %s: wrong type", truncate(te.Field))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("JSON ends early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s", truncate(strings.TrimPrefix(err.Error(), "json: unknown field ")))
	}
	return errors.New("invalid JSON")
}
