package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DirMode is the mode of the parent directories Options.CreateDirs creates.
const DirMode os.FileMode = 0o755

// WriteAll writes rendered templates: each file atomically with
// WriteFileAtomic (temp file in DST's directory, fsync, chmod, rename) and
// its spec's mode, a file whose content and mode are already right left
// alone (mtime kept); DST "-" goes to stdout, after the files. It returns
// the DSTs whose files changed, in spec order (stdout never counts).
//
// All or nothing, as far as a file system allows: out comes only from a
// render in which every template succeeded, and before writing any file
// WriteAll checks every destination: its directory exists (or is created,
// mode DirMode, with opt.CreateDirs) and takes a new file, and DST is not
// a directory. A write that fails after these checks (a full disk) leaves
// the files written before it in place, each whole.
func WriteAll(out []Rendered, opt Options, stdout io.Writer) (changed []string, err error) {
	if err := checkDestinations(out, opt); err != nil {
		return nil, err
	}
	for _, r := range out {
		if r.Spec.Dst == Stdout {
			continue
		}
		mode := r.Spec.Mode
		if mode == 0 {
			mode = DefaultMode
		}
		ch, err := WriteFileAtomic(r.Spec.Dst, r.Data, mode)
		if ch {
			changed = append(changed, r.Spec.Dst)
		}
		if err != nil {
			return changed, fmt.Errorf("template %s: %w", r.Spec.Src, err)
		}
	}
	for _, r := range out {
		if r.Spec.Dst != Stdout {
			continue
		}
		if stdout == nil {
			return changed, fmt.Errorf("template %s: no standard output to write to", r.Spec.Src)
		}
		if _, err := stdout.Write(r.Data); err != nil {
			return changed, fmt.Errorf("template %s: write to standard output: %w", r.Spec.Src, err)
		}
	}
	return changed, nil
}

// checkDestinations checks, before anything is written, that every DST
// can be written.
func checkDestinations(out []Rendered, opt Options) error {
	checked := map[string]error{}
	for _, r := range out {
		dst := r.Spec.Dst
		if dst == Stdout {
			continue
		}
		dir := filepath.Dir(dst)
		err, done := checked[dir]
		if !done {
			err = checkDestDir(dir, opt.CreateDirs)
			checked[dir] = err
		}
		if err != nil {
			return fmt.Errorf("template %s: write %s: %w", r.Spec.Src, dst, err)
		}
		if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
			return fmt.Errorf("template %s: write %s: is a directory", r.Spec.Src, dst)
		}
	}
	return nil
}

// checkDestDir makes sure dir exists (creating it when create is set) and
// takes a new file: it creates and removes a probe file, which tests what
// permission bits cannot (root, read-only mounts).
func checkDestDir(dir string, create bool) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := os.MkdirAll(dir, DirMode); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist (create it, or allow creating it with --template-create-dirs): %w", dir, fs.ErrNotExist)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	probe, err := os.CreateTemp(dir, ".scaivault-run-probe-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("directory %s: remove probe file: %w", dir, err)
	}
	return nil
}
