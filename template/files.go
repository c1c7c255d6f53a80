package template

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// FileDir is the private directory for as=file values (DESIGN.md): mode
// 0700, on tmpfs where one is available, removed when scaivault-run exits.
// Made for a FileUser, it and its files belong to that user.
type FileDir struct {
	dir   string   // where the files are
	top   string   // what Remove removes: dir, or the directory of ours around it
	owner *Owner   // nil: ours
	lock  *os.File // top's lock file, held while we live (see lockName)
}

// FileUser is whom the private directory is for (--user): the directory
// and its files belong to Owner, and the directory is made only inside a
// parent that Owner.UID, with Owner.GID and Groups, can reach.
type FileUser struct {
	Owner
	Groups []uint32 // the user's supplementary groups
}

// NewFileDir makes a private 0700 directory: inside $XDG_RUNTIME_DIR when
// set and writable, else inside /dev/shm when present and writable, else
// inside the system temp directory ($TMPDIR, else /tmp) with warn true (the
// caller logs a warning: that directory may be on disk). getenv is injected
// for tests.
//
// With u, the directory is given to u (chown; a failure is an error), and
// a parent is only used when u can reach it: every directory on its path
// searchable by u's uid, gid or groups (by the mode bits; ACLs are not
// read). Root's runtime directory (/run/user/0, 0700) is thus skipped for
// another user, who gets one in /dev/shm instead.
func NewFileDir(getenv func(string) string, u *FileUser) (d *FileDir, warn bool, err error) {
	return newFileDir(getenv, "/dev/shm", u, "")
}

// NewTaggedFileDir is NewFileDir with tag in the directory's name
// (scaivault-run-TAG-N), so that RemoveStaleFileDirs can find what a run
// with the same tag left behind when it was killed.
func NewTaggedFileDir(getenv func(string) string, u *FileUser, tag string) (d *FileDir, warn bool, err error) {
	return newFileDir(getenv, "/dev/shm", u, tag)
}

// RemoveStaleFileDirs removes the private directories tagged tag (see
// NewTaggedFileDir) in every parent NewFileDir may use that a run killed
// before its cleanup left, with its secrets in plaintext: directories of
// ours (our uid, never a symlink) whose lock file (lockName) exists and is
// held by no process. It returns what it removed.
func RemoveStaleFileDirs(getenv func(string) string, tag string) (removed []string, err error) {
	if tag == "" {
		return nil, nil
	}
	var errs []error
	for _, parent := range fileDirParents(getenv, "/dev/shm") {
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), fileDirPrefix(tag)) {
				continue
			}
			m := filepath.Join(parent, e.Name())
			if !staleFileDir(m) {
				continue
			}
			if err := os.RemoveAll(m); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, m)
		}
	}
	return removed, errors.Join(errs...)
}

// fileDirPrefix is the name prefix of a private directory with tag.
func fileDirPrefix(tag string) string {
	if tag == "" {
		return "scaivault-run-"
	}
	return "scaivault-run-" + tag + "-"
}

// fileDirParents are the parents NewFileDir tries, in order.
func fileDirParents(getenv func(string) string, shm string) []string {
	var out []string
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		out = append(out, dir)
	}
	tmp := getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return append(out, shm, tmp)
}

func newFileDir(getenv func(string) string, shm string, u *FileUser, tag string) (*FileDir, bool, error) {
	var skipped []string
	try := func(parent string) (*FileDir, error) {
		if u != nil {
			reach, move := access(parent, u)
			if !reach {
				skipped = append(skipped, parent)
				return nil, fmt.Errorf("%s: not reachable by uid %d", parent, u.UID)
			}
			if move {
				// The user could rename our directory away and leave a
				// symlink for root's next write to follow.
				skipped = append(skipped, parent)
				return nil, fmt.Errorf("%s: uid %d may rename what it holds", parent, u.UID)
			}
		}
		return makeFileDir(parent, u, fileDirPrefix(tag))
	}
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		if d, err := try(dir); err == nil {
			return d, false, nil
		}
	}
	if d, err := try(shm); err == nil {
		return d, false, nil
	}
	tmp := getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	d, err := try(tmp)
	if err != nil {
		if len(skipped) > 0 {
			return nil, false, fmt.Errorf("make private file directory: %w (uid %d cannot reach, or could rename what they hold in, %s)", err, u.UID, strings.Join(skipped, ", "))
		}
		return nil, false, fmt.Errorf("make private file directory: %w", err)
	}
	return d, true, nil
}

// makeFileDir makes a fresh 0700 directory inside parent, given to u when
// set.
//
// Given to another user than ours, the directory would be that user's to
// rename inside a sticky parent (/dev/shm, /tmp) and to replace by a
// symlink, through which our later writes (as root) would go wherever it
// pleases. So it is made inside a directory of ours (0711: passable, not
// listable), where the user can neither rename nor replace it:
// parent/scaivault-run-N/files.
func makeFileDir(parent string, u *FileUser, prefix string) (*FileDir, error) {
	fi, err := os.Stat(parent)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", parent)
	}
	top, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(top); err != nil {
		os.Remove(top)
		return nil, err
	} else {
		top = abs
	}
	d := &FileDir{dir: top, top: top}
	if err := d.own(u); err != nil {
		os.RemoveAll(top)
		return nil, err
	}
	if d.lock, err = lockFileDir(top); err != nil {
		os.RemoveAll(top)
		return nil, fmt.Errorf("lock %s: %w", top, err)
	}
	return d, nil
}

// lockName is the file in a private directory's top that its run holds
// locked (flock) for as long as it lives: RemoveStaleFileDirs removes
// only a directory whose lock it can take, so never a live run's, of
// this machine or of another mount namespace sharing the tmpfs.
const lockName = ".scaivault-run.lock"

// lockFileDir creates top's lock file and takes its lock.
func lockFileDir(top string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(top, lockName), os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// staleFileDir reports whether the directory at path (in a parent we
// listed) is a dead run's: ours, not a symlink, with a lock file nobody
// holds. A directory without one (renamed into place by someone, or of
// an older version) is never taken for one.
func staleFileDir(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return false
	}
	dfd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(dfd)
	lfd, err := unix.Openat(dfd, lockName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(lfd)
	var st unix.Stat_t
	if unix.Fstat(lfd, &st) != nil || uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	// Held until this returns: a run that locked it meanwhile is live.
	return unix.Flock(lfd, unix.LOCK_EX|unix.LOCK_NB) == nil
}

// own sets the modes of d's new directories and gives d.dir to u.
func (d *FileDir) own(u *FileUser) error {
	if err := os.Chmod(d.top, 0o700); err != nil {
		return err
	}
	if u == nil {
		return nil
	}
	owner := u.Owner
	if owner.UID != os.Geteuid() {
		if err := os.Chmod(d.top, 0o711); err != nil {
			return err
		}
		d.dir = filepath.Join(d.top, "files")
		if err := os.Mkdir(d.dir, 0o700); err != nil {
			return err
		}
	}
	if err := giveDir(d.dir, owner); err != nil {
		return fmt.Errorf("give %s to uid %d, gid %d: %w", d.dir, owner.UID, owner.GID, err)
	}
	d.owner = &owner
	return nil
}

// giveDir gives the directory at path to o, through a descriptor of its own.
func giveDir(path string, o Owner) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return giveTo(f, o)
}

// access walks from dir (symlinks resolved) up to / and reports whether u
// may search every directory on the way (reach), and whether u could
// rename an entry of dir or of any directory above it (move): one it
// owns, or may write and that is not sticky (a sticky directory lets only
// an entry's owner rename it). By the mode bits; ACLs are not read. Root
// reaches everything and moves nothing; a path that cannot be resolved is
// neither reachable nor safe.
func access(dir string, u *FileUser) (reach, move bool) {
	if u.UID == 0 {
		return true, false
	}
	p, err := filepath.Abs(dir)
	if err == nil {
		p, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		return false, true
	}
	reach = true
	for {
		fi, err := os.Stat(p)
		if err != nil {
			return false, true
		}
		bits := permBits(fi, u)
		reach = reach && bits&1 != 0
		if ownerIs(fi, u) || bits&2 != 0 && fi.Mode()&os.ModeSticky == 0 {
			move = true
		}
		parent := filepath.Dir(p)
		if parent == p {
			return reach, move
		}
		p = parent
	}
}

// permBits are the rwx bits of fi that apply to u: the owner's when u owns
// it, else the group's when u is in its group, else the others' (0 when
// fi has no owner to compare).
func permBits(fi os.FileInfo, u *FileUser) os.FileMode {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == u.UID:
		return perm >> 6 & 7
	case int(st.Gid) == u.GID || slices.Contains(u.Groups, uint32(st.Gid)):
		return perm >> 3 & 7
	}
	return perm & 7
}

// writableBy reports whether u may add or remove entries of the directory
// fi describes, by its mode bits.
func writableBy(fi os.FileInfo, u *FileUser) bool { return permBits(fi, u)&2 != 0 }

// Path is the absolute path of the directory that holds the files.
func (d *FileDir) Path() string { return d.dir }

// Top is the directory Remove removes: Path, or the directory of ours
// around it (made for another user).
func (d *FileDir) Top() string {
	if d.top != "" {
		return d.top
	}
	return d.dir
}

// fileOwner is the owner of the directory's files: nil for ours.
func (d *FileDir) fileOwner() *Owner {
	if d == nil {
		return nil
	}
	return d.owner
}

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
	top := d.top
	if top == "" {
		top = d.dir
	}
	if d.lock != nil {
		defer d.lock.Close() // after the removal: never unlocked while it is there
	}
	if err := os.RemoveAll(top); err != nil {
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
