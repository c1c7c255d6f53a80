package template

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxHops bounds the symlinks followed on one path (Linux's is 40), and
// maxCreates the directories a walk makes (one that keeps being removed
// under it must not loop for ever).
const (
	maxHops    = 40
	maxCreates = 256
)

// walkDir opens the directory dir (absolute, or relative to the working
// directory) one component at a time from "/", each by openat with
// O_NOFOLLOW relative to the one before, and returns it open with the
// path it resolved to. A symlink on the way is followed only when u could
// not have made it (see replaceableStat; u nil or root trusts every one);
// ".." is the physical parent, as the kernel has it. Walking by
// descriptors, not by path, is what makes the check hold: a child that
// swaps a component for a symlink after it was looked at cannot send a
// later step elsewhere, since no later step looks the path up again. What
// is missing is created (mkdirat, DirMode) when create is set, else an
// error matching fs.ErrNotExist.
func walkDir(dir string, u *FileUser, create bool) (*os.File, string, error) {
	abs := dir
	if !filepath.IsAbs(dir) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, "", err
		}
		abs = wd + "/" + dir
	}
	rootFD, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: "/", Err: err}
	}
	type frame struct {
		fd   int
		path string
	}
	stack := []frame{{rootFD, "/"}}
	defer func() {
		for _, f := range stack {
			if f.fd >= 0 {
				unix.Close(f.fd)
			}
		}
	}()
	rest := splitPath(abs)
	creates := 0
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(cur.fd)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		next := filepath.Join(cur.path, c)
		var st unix.Stat_t
		err := unix.Fstatat(cur.fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			if !create {
				return nil, "", fmt.Errorf("directory %s does not exist (create it, or allow creating it with --template-create-dirs): %w", dir, fs.ErrNotExist)
			}
			if creates++; creates > maxCreates {
				return nil, "", fmt.Errorf("create directory %s: it keeps disappearing", next)
			}
			if err := unix.Mkdirat(cur.fd, c, uint32(DirMode)); err != nil && !errors.Is(err, unix.EEXIST) {
				return nil, "", fmt.Errorf("create directory %s: %w", next, err)
			} else if err == nil {
				// DirMode whatever the umask (mkdirat applies it); by
				// name, at once: a swap meanwhile only changes the mode
				// of what the walk then refuses or checks.
				unix.Fchmodat(cur.fd, c, uint32(DirMode), unix.AT_SYMLINK_NOFOLLOW)
			}
			rest = append([]string{c}, rest...) // look at what is there now
			continue
		}
		if err != nil {
			return nil, "", &os.PathError{Op: "lstat", Path: next, Err: err}
		}
		switch uint32(st.Mode) & unix.S_IFMT {
		case unix.S_IFLNK:
			if u != nil && u.UID != 0 {
				var parent unix.Stat_t
				if err := unix.Fstat(cur.fd, &parent); err != nil {
					return nil, "", &os.PathError{Op: "fstat", Path: cur.path, Err: err}
				}
				if replaceableStat(&parent, &st, u) {
					return nil, "", &symlinkError{path: next, uid: u.UID}
				}
			}
			if hops++; hops > maxHops {
				return nil, "", &os.PathError{Op: "open", Path: dir, Err: unix.ELOOP}
			}
			target, err := readlinkat(cur.fd, c)
			if err != nil {
				return nil, "", &os.PathError{Op: "readlink", Path: next, Err: err}
			}
			if filepath.IsAbs(target) {
				for _, f := range stack[1:] {
					unix.Close(f.fd)
				}
				stack = stack[:1]
			}
			rest = append(splitPath(target), rest...)
			continue
		case unix.S_IFDIR:
		default:
			return nil, "", fmt.Errorf("%s is not a directory", next)
		}
		fd, err := unix.Openat(cur.fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", fmt.Errorf("%s changed while it was opened: %w", next, err)
		}
		var got unix.Stat_t
		if err := unix.Fstat(fd, &got); err != nil || got.Dev != st.Dev || got.Ino != st.Ino {
			unix.Close(fd)
			return nil, "", fmt.Errorf("%s changed while it was opened", next)
		}
		stack = append(stack, frame{fd, next})
	}
	top := stack[len(stack)-1]
	stack[len(stack)-1].fd = -1 // returned, not closed
	return os.NewFile(uintptr(top.fd), top.path), top.path, nil
}

// readlinkat is the target of the symlink name in the directory dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
		if n > 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}

// replaceableStat reports whether u may have made or replaced the
// symlink link in the directory parent: it owns either, or may write
// parent and parent is not sticky (a sticky directory lets only an
// entry's owner replace it).
func replaceableStat(parent, link *unix.Stat_t, u *FileUser) bool {
	if int(link.Uid) == u.UID || int(parent.Uid) == u.UID {
		return true
	}
	perm := os.FileMode(parent.Mode) & os.ModePerm
	var write bool
	switch {
	case int(parent.Gid) == u.GID || containsGID(u.Groups, parent.Gid):
		write = perm&0o020 != 0
	default:
		write = perm&0o002 != 0
	}
	return write && uint32(parent.Mode)&unix.S_ISVTX == 0
}

// statPerm are the rwx bits of st that apply to u (owner, group, others).
func statPerm(st *unix.Stat_t, u *FileUser) uint32 {
	perm := uint32(st.Mode) & 0o777
	switch {
	case int(st.Uid) == u.UID:
		return perm >> 6 & 7
	case int(st.Gid) == u.GID || containsGID(u.Groups, st.Gid):
		return perm >> 3 & 7
	}
	return perm & 7
}

func containsGID(groups []uint32, gid uint32) bool {
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

// openChecked opens dir (creating what is missing when create is set)
// walked by descriptors (walkDir), and returns it as an os.Root opened at
// the path the walk resolved to, checked to be the very directory the
// walk holds (the same device and inode), so that nothing swapped on the
// path between the walk and the open is used.
func openChecked(dir string, u *FileUser, create bool) (*os.Root, error) {
	f, real, err := walkDir(dir, u, create)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	walked, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r, err := openRootOf(f, real)
	if err != nil {
		return nil, err
	}
	if opened, err := r.Stat("."); err != nil || !os.SameFile(opened, walked) {
		r.Close()
		return nil, fmt.Errorf("%s changed while it was opened", dir)
	}
	return r, nil
}

// readChecked reads the file at path for a child running as u (see
// Dirs.readFile): its directory walked by descriptors, a symlink as its
// last component followed only when u could not have made it, and only a
// regular file read, opened without following anything or blocking.
func readChecked(path string, u *FileUser) ([]byte, error) {
	for hops := 0; ; hops++ {
		if hops > maxHops {
			return nil, &os.PathError{Op: "open", Path: path, Err: unix.ELOOP}
		}
		d, base := filepath.Split(path)
		if d == "" {
			d = "."
		}
		if base == "" || base == "." || base == ".." {
			return nil, errors.New("is a directory")
		}
		f, real, err := walkDir(d, u, false)
		if err != nil {
			return nil, err
		}
		b, link, err := readIn(f, real, base, u)
		f.Close()
		if err != nil || link == "" {
			return b, err
		}
		if filepath.IsAbs(link) {
			path = link
		} else {
			path = real + "/" + link
		}
	}
}

// readIn reads the regular file base of the open directory dir (at real);
// a symlink there (one u could not have made) is returned as link instead.
func readIn(dir *os.File, real, base string, u *FileUser) (data []byte, link string, err error) {
	dfd := int(dir.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, "", &os.PathError{Op: "lstat", Path: base, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT == unix.S_IFLNK {
		if u != nil && u.UID != 0 {
			var parent unix.Stat_t
			if err := unix.Fstat(dfd, &parent); err != nil {
				return nil, "", err
			}
			if replaceableStat(&parent, &st, u) {
				return nil, "", &symlinkError{path: filepath.Join(real, base), uid: u.UID}
			}
		}
		target, err := readlinkat(dfd, base)
		return nil, target, err
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		return nil, "", errors.New("not a regular file")
	}
	if u != nil && u.UID != 0 {
		// In a directory the user may add entries to, a file may be a
		// hardlink it made to one it cannot read (where
		// fs.protected_hardlinks is 0): read only what it could read.
		var parent unix.Stat_t
		if err := unix.Fstat(dfd, &parent); err != nil {
			return nil, "", err
		}
		if (int(parent.Uid) == u.UID || statPerm(&parent, u)&2 != 0) && int(st.Uid) != u.UID && statPerm(&st, u)&4 == 0 {
			return nil, "", fmt.Errorf("uid %d (--user) may not read it, and may have linked it into a directory it writes", u.UID)
		}
	}
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: base, Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(real, base))
	defer f.Close()
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil || got.Dev != st.Dev || got.Ino != st.Ino || uint32(got.Mode)&unix.S_IFMT != unix.S_IFREG {
		return nil, "", errors.New("not a regular file, or replaced while it was opened")
	}
	b, err := readBounded(f, "")
	return b, "", err
}
