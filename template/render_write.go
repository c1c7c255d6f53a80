package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// DirMode is the mode of the parent directories Options.CreateDirs creates.
const DirMode os.FileMode = 0o755

// WriteAll writes rendered templates: each file atomically (temp file in
// DST's directory, fsync, chmod, rename) with its spec's mode, or, for a
// spec without one, the mode and owner of the file it replaces (DefaultMode
// for a new file); DST "-" goes to stdout, after the files. A file whose
// content and mode are already right is not touched at all: no temp file,
// no rename, mtime kept, so that a program watching the directory sees
// nothing. It returns the DSTs whose files changed, in spec order (stdout
// never counts).
//
// All or nothing, as far as a file system allows: out comes only from a
// render in which every template succeeded, and every changed file is
// first written whole to its temp file; only when all of them are written
// are they renamed into place. A destination that cannot be written (its
// directory missing, read-only, full) thus fails before any DST changes,
// and leaves no temp file. A rename that fails after that leaves the files
// renamed before it in place, each whole.
//
// A spec with an Owner has its file given to that owner and group before
// the rename (fchown of the temp file); a failure is an error of the whole
// step, like a failed write: a secret must not land with the wrong owner.
// A file whose content and mode are right but whose owner is not is
// written again. Without an Owner, replacing a file owned by someone else
// needs root (or CAP_CHOWN) to keep its owner; without it the new file is
// ours and WriteAll logs a warning on opt.Logger rather than fail.
func WriteAll(out []Rendered, opt Options, stdout io.Writer) (changed []string, err error) {
	_, changed, err = WriteStep(nil, out, opt, stdout)
	return changed, err
}

// WriteStep is WriteAll with the as=file values of Plan.Stage in the same
// step: their files are staged with the templates' (0600, in the private
// directory, owned by its FileUser), so that a failure before the renames
// changes neither, and a new certificate file never lands beside an old
// key. It returns the
// variables whose files changed and the DSTs of the templates that did.
func WriteStep(files []FileWrite, out []Rendered, opt Options, stdout io.Writer) (vars, changed []string, err error) {
	roots := &stepRoots{dirs: opt.Dirs, open: map[string]*os.Root{}}
	defer roots.close()
	committing := false
	defer func() {
		if err != nil && !committing && roots.dirs == nil {
			// Nothing was renamed into place: nothing half done. Not with
			// held directories (--user): removing by path while the child
			// runs would be a path the child can redirect, and a held
			// directory is never opened again by its path.
			roots.undo()
		}
	}()
	if err := checkDestinations(roots, out, opt); err != nil {
		return nil, nil, err
	}
	var todo []*staged
	defer func() {
		for _, st := range todo {
			st.discard()
		}
	}()
	for _, f := range files {
		root, err := roots.get(dirOf(f.Path), false)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: write %s: %w", f.where, f.Path, err)
		}
		st, err := stageFile(root, f.Path, f.Data, 0o600, f.owner)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.where, err)
		}
		if st != nil {
			st.varName, st.what = f.Var, f.where
			todo = append(todo, st)
		}
	}
	for _, r := range out {
		if r.Spec.Dst == Stdout {
			continue
		}
		root, err := roots.get(dirOf(r.Spec.Dst), opt.CreateDirs)
		if err != nil {
			return nil, nil, fmt.Errorf("template %s: write %s: %w", r.Spec.Src, r.Spec.Dst, err)
		}
		st, err := stageFile(root, r.Spec.Dst, r.Data, r.Spec.Mode.Perm(), r.Spec.Owner)
		if err != nil {
			if opt.Dirs != nil && errors.Is(err, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("template %s: %w (its directory was removed since its first write; with --user it is not opened again by its path: restart scaivault-run)", r.Spec.Src, err)
			}
			return nil, nil, fmt.Errorf("template %s: %w", r.Spec.Src, err)
		}
		if st != nil {
			st.what = "template " + r.Spec.Src
			todo = append(todo, st)
		}
	}
	committing = true
	for _, st := range todo {
		if st.chownErr != nil {
			opt.logger().Warn("template destination changes owner: cannot keep the old file's",
				"what", st.what, "file", st.path, "err", st.chownErr)
		}
		err := st.commit()
		switch {
		case !st.renamed:
		case st.varName != "":
			vars = append(vars, st.varName)
		default:
			changed = append(changed, st.path)
		}
		if err != nil {
			return vars, changed, fmt.Errorf("%s: %w", st.what, err)
		}
	}
	for _, r := range out {
		if r.Spec.Dst != Stdout {
			continue
		}
		if stdout == nil {
			return vars, changed, fmt.Errorf("template %s: no standard output to write to", r.Spec.Src)
		}
		if _, err := stdout.Write(r.Data); err != nil {
			return vars, changed, fmt.Errorf("template %s: write to standard output: %w", r.Spec.Src, err)
		}
	}
	return vars, changed, nil
}

// stepRoots are the open directories of one write step, each opened once
// (through dirs when set, which may keep it open for later steps).
type stepRoots struct {
	dirs    *Dirs
	open    map[string]*os.Root
	done    []func()
	errs    map[string]error
	created []string // directories this step made (--template-create-dirs), in the order made
}

// get returns the open directory dir, checking or creating it first (see
// checkDestDir) when it is opened by its path.
func (s *stepRoots) get(dir string, create bool) (*os.Root, error) {
	key := dir // as named: cleaning would read ".." after a symlink lexically
	if r, ok := s.open[key]; ok {
		return r, nil
	}
	if err, ok := s.errs[key]; ok {
		return nil, err
	}
	var missing []string
	if create {
		missing = missingDirs(key)
	}
	r, done, err := s.dirs.root(key, create)
	for i := len(missing) - 1; i >= 0; i-- {
		if fi, serr := os.Lstat(missing[i]); serr == nil && fi.IsDir() {
			s.created = append(s.created, missing[i])
		}
	}
	if err != nil {
		if s.errs == nil {
			s.errs = map[string]error{}
		}
		s.errs[key] = err
		return nil, err
	}
	s.open[key] = r
	s.done = append(s.done, done)
	return r, nil
}

// undo removes the directories the step made, deepest first, each only
// if empty (os.Remove).
func (s *stepRoots) undo() {
	for i := len(s.created) - 1; i >= 0; i-- {
		os.Remove(s.created[i])
	}
}

// missingDirs lists dir and its ancestors that do not exist, deepest
// first.
func missingDirs(dir string) []string {
	var out []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, p)
		if filepath.Dir(p) == p {
			return out
		}
	}
}

func (s *stepRoots) close() {
	for _, done := range s.done {
		done()
	}
}

// logger is opt.Logger, or one that discards.
func (opt Options) logger() *slog.Logger {
	if opt.Logger != nil {
		return opt.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// checkDestinations checks, before anything is written, that every DST's
// directory exists (creating it with opt.CreateDirs) and that DST is not a
// directory. Whether the directory takes a new file is found out by writing
// the temp file itself.
func checkDestinations(roots *stepRoots, out []Rendered, opt Options) error {
	for _, r := range out {
		dst := r.Spec.Dst
		if dst == Stdout {
			continue
		}
		if last := dst[strings.LastIndex(dst, "/")+1:]; last == "" || last == "." || last == ".." {
			return fmt.Errorf("template %s: write %s: is a directory (a destination is a file's path)", r.Spec.Src, dst)
		}
		root, err := roots.get(dirOf(dst), opt.CreateDirs)
		if err != nil {
			return fmt.Errorf("template %s: write %s: %w", r.Spec.Src, dst, err)
		}
		if fi, err := root.Lstat(filepath.Base(dst)); err == nil && fi.IsDir() {
			return fmt.Errorf("template %s: write %s: is a directory", r.Spec.Src, dst)
		}
	}
	return nil
}

// checkDestDir makes sure dir exists, creating it when create is set.
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
	return nil
}
