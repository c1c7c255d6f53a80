package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Dirs holds the directories that files are written into open, for a
// child that runs as another user (--user): a destination's directory is
// opened once, at its first write (before that child starts), and every
// later write goes into that directory through its descriptor (openat,
// renameat: os.Root), whatever the child renames or replaces by a symlink
// on its path meanwhile. Without this a child that may rename an entry of
// a directory on the path (one it owns, or may write and that is not
// sticky) could swap in a symlink and have scaivault-run, as root, write
// the next rendering wherever it points.
//
// The first open refuses a path that passes through a symlink the user
// could have made (one it owns, or one in a directory it may write and
// that is not sticky): a previous run's child may have left it there. A
// process of that user other than the child, racing the first open, is
// not defended against (the window is the first open itself).
//
// The zero of *Dirs (nil) opens each directory by its path for each write,
// as a launcher without --user needs (a directory replaced on purpose, as
// a Kubernetes volume's symlink swap does, is then followed).
type Dirs struct {
	u    *FileUser
	mu   sync.Mutex
	held map[string]*os.Root
}

// NewDirs holds directories for a child running as u.
func NewDirs(u *FileUser) *Dirs {
	return &Dirs{u: u, held: map[string]*os.Root{}}
}

// root returns the open directory dir, and what to call when the write is
// done with it (a held directory stays open). A directory opened by its
// path is first checked (see checkDestDir): it must exist, or is created
// when create is set.
func (d *Dirs) root(dir string, create bool) (*os.Root, func(), error) {
	if d == nil {
		if err := checkDestDir(dir, create); err != nil {
			return nil, nil, err
		}
		r, err := os.OpenRoot(dir)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := dir // as named: cleaning would read ".." after a symlink lexically
	if r, ok := d.held[key]; ok {
		return r, func() {}, nil
	}
	r, err := openChecked(dir, d.u, create)
	if err != nil {
		return nil, nil, err
	}
	d.held[key] = r
	return r, func() {}, nil
}

// Close closes the held directories.
func (d *Dirs) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, r := range d.held {
		r.Close()
		delete(d.held, k)
	}
}

// OpenDir opens the directory dir for files scaivault-run itself keeps
// there (--pid-file), checked as Dirs checks a destination's for u (nil:
// opened by its path): what the caller does in it later goes into this
// directory, whatever is renamed on its path meanwhile.
func OpenDir(dir string, u *FileUser) (*os.Root, error) {
	if u == nil {
		return os.OpenRoot(dir)
	}
	return openChecked(dir, u, false)
}

// maxReadFile bounds what a template source and {{ file }} read: 16 MiB.
const maxReadFile = 16 << 20

// readFile reads the file at path, at most maxReadFile bytes (more is an
// error, not a cut). With d (--user) the path is checked as a
// destination's directory is (a symlink the user may have made is
// refused), its directory opened checked (not held: reads may name many),
// and only a regular file that its name still gives is read, never one a
// symlink or FIFO swapped in at the last moment leads to: the child must
// not have root read for it what it cannot read itself. Errors name the
// whole path as given (a path built from a secret is redacted whole). A
// nil d opens path as given (a FIFO blocks the read; the caller bounds
// that).
func (d *Dirs) readFile(path string) ([]byte, error) {
	if d == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f, path)
	}
	b, err := readChecked(path, d.u)
	if err != nil {
		return nil, fmt.Errorf("read %s: %s", path, reason(err))
	}
	return b, nil
}

// reason is err without the paths it names (a part of a path built from
// a secret would escape the redaction of the whole).
func reason(err error) string {
	var pe *os.PathError
	var se *symlinkError
	var le *os.LinkError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("a symlink on it that uid %d (--user) may have made is refused", se.uid)
	case errors.As(err, &pe):
		return pe.Err.Error()
	case errors.As(err, &le):
		return le.Err.Error()
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory"
	}
	return err.Error()
}

// readBounded reads f, at most maxReadFile bytes; path, when given,
// names it in the error.
func readBounded(f *os.File, path string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, maxReadFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxReadFile {
		if path == "" {
			return nil, fmt.Errorf("larger than %d MiB", maxReadFile>>20)
		}
		return nil, fmt.Errorf("read %s: larger than %d MiB", path, maxReadFile>>20)
	}
	return b, nil
}

// symlinkError is a symlink on a path that the user may have made.
type symlinkError struct {
	path string
	uid  int
}

func (e *symlinkError) Error() string {
	return fmt.Sprintf("%s is a symlink that uid %d (--user) may have made; a path scaivault-run reads or writes as root must not pass through one (name what it points to)", e.path, e.uid)
}

func splitPath(p string) []string { return strings.Split(p, "/") }

// ownerIs reports whether fi belongs to u's uid (unknown: yes).
func ownerIs(fi os.FileInfo, u *FileUser) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == u.UID
}
