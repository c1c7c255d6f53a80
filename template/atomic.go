package template

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a temp file in the same
// directory (write, chmod mode, fsync, rename, fsync dir), so that a reader
// sees the old content or the new, never a part. If path is a regular file
// with identical content and mode, it is left alone (mtime kept) and changed
// is false. On any error the temp file is removed and the old file is left
// untouched. A symlink at path is replaced by the new file, not followed.
// The parent directory must exist.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (changed bool, err error) {
	mode = mode.Perm()
	if same, err := sameFile(path, data, mode); err != nil {
		return false, err
	} else if same {
		return false, nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return false, fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err = renameFile(tmpName, path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is done: the new file is in place whatever syncing the
	// directory says, so a failure there must not remove anything.
	if serr := syncDir(dir); serr != nil {
		return true, fmt.Errorf("write %s: sync directory: %w", path, serr)
	}
	return true, nil
}

// sameFile reports whether path is a regular file holding exactly data with
// permission bits mode.
func sameFile(path string, data []byte, mode os.FileMode) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return false, fmt.Errorf("write %s: is a directory", path)
		}
		return false, nil
	}
	if fi.Mode().Perm() != mode || fi.Size() != int64(len(data)) {
		return false, nil
	}
	old, err := os.ReadFile(path)
	if err != nil {
		// Unreadable (e.g. mode 0200): write it anew rather than fail.
		return false, nil
	}
	return bytes.Equal(old, data), nil
}

// renameFile is os.Rename; tests replace it to make the rename fail.
var renameFile = os.Rename

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
