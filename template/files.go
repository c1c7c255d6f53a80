package template

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FileDir is the private directory for as=file values (DESIGN.md): mode
// 0700, on tmpfs where one is available, removed when scaivault-run exits.
type FileDir struct{ dir string }

// NewFileDir makes a private 0700 directory: inside $XDG_RUNTIME_DIR when
// set and writable, else inside /dev/shm when present and writable, else
// inside the system temp directory ($TMPDIR, else /tmp) with warn true (the
// caller logs a warning: that directory may be on disk). getenv is injected
// for tests.
func NewFileDir(getenv func(string) string) (d *FileDir, warn bool, err error) {
	return newFileDir(getenv, "/dev/shm")
}

func newFileDir(getenv func(string) string, shm string) (*FileDir, bool, error) {
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		if d, err := makeFileDir(dir); err == nil {
			return d, false, nil
		}
	}
	if d, err := makeFileDir(shm); err == nil {
		return d, false, nil
	}
	tmp := getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	d, err := makeFileDir(tmp)
	if err != nil {
		return nil, false, fmt.Errorf("make private file directory: %w", err)
	}
	return d, true, nil
}

// makeFileDir makes a fresh 0700 directory inside parent.
func makeFileDir(parent string) (*FileDir, error) {
	fi, err := os.Stat(parent)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", parent)
	}
	dir, err := os.MkdirTemp(parent, "scaivault-run-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.Remove(dir)
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &FileDir{dir: abs}, nil
}

// Path is the directory's absolute path.
func (d *FileDir) Path() string { return d.dir }

// pathOf is the absolute path of the file of variable name (see
// safeFileName); WriteStep writes it, 0600.
func (d *FileDir) pathOf(name string) (string, error) {
	if d == nil || d.dir == "" {
		return "", errors.New("no private file directory")
	}
	return filepath.Join(d.dir, safeFileName(name)), nil
}

// Remove removes the directory and everything in it.
func (d *FileDir) Remove() error {
	if d == nil || d.dir == "" {
		return nil
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("remove private file directory: %w", err)
	}
	return nil
}

// safeFileName is the file name of a variable: characters outside
// [A-Za-z0-9._-] become "_", and a leading "." (or an empty name) gets a "_"
// in front, so that no name is hidden, "." or "..", or clashes with
// WriteFileAtomic's temp files (which start with ".").
func safeFileName(name string) string {
	var b strings.Builder
	for _, c := range name {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || s[0] == '.' {
		s = "_" + s
	}
	return s
}
