package template

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// WriteFileAtomic writes data to path through a temp file in the same
// directory (write, chmod mode, fsync, rename, fsync dir), so that a reader
// sees the old content or the new, never a part. If path is a regular file
// with identical content and mode, it is left alone (nothing is created,
// mtime kept) and changed is false. On any error the temp file is removed
// and the old file is left untouched. A symlink at path is replaced by the
// new file, not followed. The parent directory must exist. Mode 0 keeps
// the mode and owner of the file at path (DefaultMode for a new file), as
// WriteAll does for a template without MODE.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (changed bool, err error) {
	root, done, err := (*Dirs)(nil).root(dirOf(path), false)
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	defer done()
	st, err := stageFile(root, path, data, mode.Perm(), nil)
	if err != nil || st == nil {
		return false, err
	}
	if err := st.commit(); err != nil {
		return st.renamed, err
	}
	return true, nil
}

// dirOf is the directory of path ("." for a bare name).
func dirOf(path string) string {
	dir, _ := filepath.Split(path)
	if dir == "" {
		return "."
	}
	return dir
}

// staged is a temp file holding the new content of path, written, synced
// and closed, waiting to be renamed over path. Every operation goes
// through root, the open directory of path (see Dirs), by name.
type staged struct {
	root      *os.Root
	path      string // for errors and the results
	base, tmp string // names in root
	renamed   bool
	what      string // for errors and logs: "template SRC", "--env NAME"
	varName   string // the as=file variable it is the file of; "": a template
	// chownErr is why the temp file could not take the old file's owner
	// (nil when it did, or had nothing to take).
	chownErr error
}

// stageFile writes data to a temp file beside path in root (its
// directory), with permission bits mode; mode 0 keeps those of the
// regular file at path, or is DefaultMode for a new file. With owner, the
// temp file is given that owner and group before it is renamed (a failure
// is an error: a secret must not land with the wrong owner); without, mode
// 0 keeps the owner of the file at path where it can (chownErr says why it
// could not). It returns nil, creating nothing, when path already holds
// data with the right mode and owner. On error nothing is left.
func stageFile(root *os.Root, path string, data []byte, mode os.FileMode, owner *Owner) (st *staged, err error) {
	base := filepath.Base(path)
	old, err := existingFile(root, path, base)
	if err != nil {
		return nil, err
	}
	want := mode
	if want == 0 {
		want = DefaultMode
		if old != nil {
			want = old.Mode().Perm()
		}
	}
	if old != nil && old.Mode().Perm() == want && ownedBy(old, owner) && sameContent(root, base, old, data) {
		return nil, nil
	}
	tmp, err := createTemp(root, "."+base+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	st = &staged{root: root, path: path, base: base, tmp: filepath.Base(tmp.Name())}
	tmpName := st.tmp // the error returns below set st to nil
	defer func() {
		if err != nil {
			tmp.Close()
			root.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	// The mode first, while the file is still ours: changing the mode of
	// a file given away needs CAP_FOWNER, which a container that keeps
	// only SETUID, SETGID and CHOWN does not have.
	if err = tmp.Chmod(want); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	switch {
	case owner != nil:
		if err = giveTo(tmp, *owner); err != nil {
			return nil, fmt.Errorf("write %s: give it to uid %d, gid %d: %w", path, owner.UID, owner.GID, err)
		}
	case mode == 0 && old != nil:
		st.chownErr = keepOwner(tmp, old)
	}
	if err = tmp.Sync(); err != nil {
		return nil, fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return st, nil
}

// commit renames the temp file over path and syncs the directory.
func (st *staged) commit() error {
	if err := renameFile(st.root, st.tmp, st.base); err != nil {
		st.root.Remove(st.tmp)
		return fmt.Errorf("write %s: %w", st.path, err)
	}
	st.renamed = true
	// The rename is done: the new file is in place whatever syncing the
	// directory says, so a failure there must not remove anything.
	if err := syncDir(st.root); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", st.path, err)
	}
	return nil
}

// discard removes the temp file of a staged write that is not committed.
func (st *staged) discard() {
	if !st.renamed {
		st.root.Remove(st.tmp)
	}
}

// existingFile returns the regular file at path, nil when there is none
// (or a symlink or other non-directory, which the write replaces).
func existingFile(root *os.Root, path, base string) (os.FileInfo, error) {
	fi, err := root.Lstat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("write %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("write %s: is a directory", path)
	case !fi.Mode().IsRegular():
		return nil, nil
	}
	return fi, nil
}

// sameContent reports whether the file base of root (described by fi) holds
// exactly data. The file is opened without following a symlink and without
// blocking, must still be the one fi describes, and at most len(data)+1
// bytes are read: a child that can write the directory (--user) may swap
// in a symlink to /dev/zero or a FIFO between the Lstat and the read.
func sameContent(root *os.Root, base string, fi os.FileInfo, data []byte) bool {
	if fi.Size() != int64(len(data)) {
		return false
	}
	f, err := root.OpenFile(base, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		// Unreadable (e.g. mode 0200), or a symlink now: write it anew
		// rather than fail.
		return false
	}
	defer f.Close()
	if now, err := f.Stat(); err != nil || !now.Mode().IsRegular() || !os.SameFile(now, fi) {
		return false
	}
	old, err := io.ReadAll(io.LimitReader(f, int64(len(data))+1))
	return err == nil && bytes.Equal(old, data)
}

// keepOwner gives tmp the owner and group of the file old describes, when
// they differ from tmp's. Only root (or CAP_CHOWN) may give a file away, and
// a user may only pick a group they are in: the error says why it could not.
func keepOwner(tmp *os.File, old os.FileInfo) error {
	want, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return giveTo(tmp, Owner{UID: int(want.Uid), GID: int(want.Gid)})
}

// giveTo makes o the owner and group of the open file f (fchown: no path,
// so nothing can be swapped under it), unless they are already.
func giveTo(f *os.File, o Owner) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if ownedBy(fi, &o) {
		return nil
	}
	return chownFile(f, o.UID, o.GID)
}

// ownedBy reports whether fi belongs to o; a nil o (no owner asked for)
// is anyone.
func ownedBy(fi os.FileInfo, o *Owner) bool {
	if o == nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == o.UID && int(st.Gid) == o.GID
}

// renameFile, createTemp and chownFile are Root.Rename, a CreateTemp in a
// Root and (*os.File).Chown; tests replace them to make a write fail.
var (
	renameFile = (*os.Root).Rename
	createTemp = createTempIn
	chownFile  = (*os.File).Chown
)

// createTempIn creates a new file, 0600, named prefix and a random number,
// in root (os.CreateTemp, by name in an open directory).
func createTempIn(root *os.Root, prefix string) (*os.File, error) {
	for try := 0; ; try++ {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
}

// syncDir syncs the directory root is.
func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
