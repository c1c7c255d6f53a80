package template

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needRoot skips a test that gives files away, except in CI, which runs
// the tests as root: there it fails, so that it cannot go unrun.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root (to give files to another user), and CI runs the tests as root")
	}
	t.Skip("needs root to give files to another user")
}

func checkOwner(t *testing.T, path string, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
	}
}

// A spec's Owner is given to the file it writes, whatever owned the file
// before (Owner wins over keeping it, with or without MODE); a file whose
// content is right but whose owner is not is written again; one that is
// right in all three is not touched.
func TestWriteGivesOwner(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", "content", "b.tmpl", "content", "c.tmpl", "content")
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	owner := &Owner{UID: 4321, GID: 4322}
	specs[0].Owner, specs[1].Owner = owner, owner
	specs[1].Mode = 0o640
	// b exists, right content, root's: only its owner is wrong.
	if err := os.WriteFile(specs[1].Dst, []byte("content"), 0o640); err != nil {
		t.Fatal(err)
	}
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := renderAndWrite(t, set, Options{}, nil)
	if err != nil || len(changed) != 3 {
		t.Fatalf("changed %v, %v", changed, err)
	}
	checkOwner(t, specs[0].Dst, 4321, 4322)
	checkOwner(t, specs[1].Dst, 4321, 4322)
	checkOwner(t, specs[2].Dst, 0, 0) // no Owner: ours
	checkFileMode(t, specs[0].Dst, DefaultMode)
	checkFileMode(t, specs[1].Dst, 0o640)

	fi, _ := os.Stat(specs[0].Dst)
	old := time.Unix(1, 0)
	os.Chtimes(specs[0].Dst, old, old)
	if changed, err = renderAndWrite(t, set, Options{}, nil); err != nil || len(changed) != 0 {
		t.Fatalf("second write: changed %v, %v", changed, err)
	}
	if fi2, _ := os.Stat(specs[0].Dst); !fi2.ModTime().Equal(old) || !os.SameFile(fi, fi2) {
		t.Error("an unchanged file with the right owner was written again")
	}
	checkDirHolds(t, filepath.Join(dir, "out"), "a", "b", "c")
}

// A chown that fails is an error of the whole step: no file is written,
// none is left half-owned, no temp file remains.
func TestWriteOwnerFailureWritesNothing(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", "first", "b.tmpl", "second")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	specs[1].Owner = &Owner{UID: 4321, GID: 4322}
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func(f func(*os.File, int, int) error) { chownFile = f }(chownFile)
	chownFile = func(*os.File, int, int) error { return &fs.PathError{Op: "fchown", Path: "x", Err: syscall.EPERM} }
	_, err = renderAndWrite(t, set, Options{}, nil)
	if err == nil || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "template "+specs[1].Src) ||
		!strings.Contains(err.Error(), "give it to uid 4321, gid 4322") {
		t.Fatalf("error %v, want the chown's, naming the template and the owner", err)
	}
	checkDirHolds(t, out)
}

// The private directory made for a user is that user's, 0700, and so are
// its files (0600); a parent the user cannot reach (root's runtime
// directory) is passed over for one it can.
func TestFileDirForUser(t *testing.T) {
	needRoot(t)
	rootOnly := t.TempDir() // 0700 root, inside the test's 0700 directory
	open, err := os.MkdirTemp("", "filedir-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	u := &FileUser{Owner: Owner{UID: 4321, GID: 4322}}
	if reach, _ := access(open, u); !reach {
		t.Skipf("%s is not reachable by another user here (TMPDIR inside a private directory?)", open)
	}
	d, warn, err := newFileDir(fakeGetenv(map[string]string{"XDG_RUNTIME_DIR": rootOnly}), open, u, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	// Inside a directory of ours, which the user cannot rename or
	// replace by a symlink as it could a directory of its own in a
	// sticky /dev/shm.
	top := filepath.Dir(d.Path())
	if filepath.Dir(top) != open || warn {
		t.Fatalf("dir %s (warn %v), want one inside one inside %s", d.Path(), warn, open)
	}
	checkOwner(t, top, 0, 0)
	checkFileMode(t, top, 0o711)
	checkOwner(t, d.Path(), 4321, 4322)
	checkFileMode(t, d.Path(), 0o700)
	path, changed, err := writeVar(d, "TLS_KEY", []byte("k1"))
	if err != nil || !changed {
		t.Fatalf("write: %v %v", changed, err)
	}
	checkOwner(t, path, 4321, 4322)
	checkFileMode(t, path, 0o600)
	if _, changed, _ = writeVar(d, "TLS_KEY", []byte("k1")); changed {
		t.Error("same content and owner: written again")
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(top); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v", err)
	}

	// Root reaches everything: the runtime directory is used for root.
	d2, _, err := newFileDir(fakeGetenv(map[string]string{"XDG_RUNTIME_DIR": rootOnly}), open, &FileUser{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Remove()
	if filepath.Dir(d2.Path()) != rootOnly {
		t.Errorf("for root: dir %s, want one inside %s", d2.Path(), rootOnly)
	}

	// Nothing reachable: an error that says so.
	_, _, err = newFileDir(fakeGetenv(map[string]string{"XDG_RUNTIME_DIR": rootOnly, "TMPDIR": rootOnly}), filepath.Join(rootOnly, "none"), u, "")
	if err == nil || !strings.Contains(err.Error(), "uid 4321 cannot reach") {
		t.Errorf("no reachable parent: %v", err)
	}
}

// permBits reads the mode bits as the kernel does: the owner's when the
// user owns the directory, else the group's when it is in the group
// (primary or supplementary), else the others'.
func TestCanSearch(t *testing.T) {
	u := &FileUser{Owner: Owner{UID: 1000, GID: 1000}, Groups: []uint32{1000, 29}}
	tests := []struct {
		uid, gid uint32
		perm     os.FileMode
		want     bool
	}{
		{1000, 0, 0o700, true},
		{1000, 0, 0o077, false}, // the owner's bits alone count for the owner
		{0, 1000, 0o710, true},
		{0, 29, 0o710, true},
		{0, 29, 0o701, false}, // in the group: the others' bits do not count
		{0, 0, 0o701, true},
		{0, 0, 0o770, false},
		{0, 0, 0o1777, true},
	}
	for _, tt := range tests {
		fi := fakeDirInfo{perm: tt.perm, st: &syscall.Stat_t{Uid: tt.uid, Gid: tt.gid}}
		if got := permBits(fi, u)&1 != 0; got != tt.want {
			t.Errorf("canSearch(%d:%d %o) = %v, want %v", tt.uid, tt.gid, tt.perm, got, tt.want)
		}
	}
}

type fakeDirInfo struct {
	perm os.FileMode
	st   *syscall.Stat_t
}

func (f fakeDirInfo) Name() string       { return "d" }
func (f fakeDirInfo) Size() int64        { return 0 }
func (f fakeDirInfo) Mode() os.FileMode  { return os.ModeDir | f.perm }
func (f fakeDirInfo) ModTime() time.Time { return time.Time{} }
func (f fakeDirInfo) IsDir() bool        { return true }
func (f fakeDirInfo) Sys() any           { return f.st }

// The as=file directory is not made under a directory the user could
// rename entries of (its own, or one it may write that is not sticky),
// nor under one below such a directory: it would move ours away and
// leave a symlink for root's next write.
func TestAccessMove(t *testing.T) {
	needRoot(t)
	u := &FileUser{Owner: Owner{UID: 4321, GID: 4322}}
	base, err := os.MkdirTemp("", "movable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own := mk("own", 0o700, 4321)
	open := mk("open", 0o777, 0)
	sticky := mk("sticky", os.ModeSticky|0o777, 0)
	below := filepath.Join(own, "below")
	if err := os.Mkdir(below, 0o755); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]bool{own: true, open: true, below: true, sticky: false, base: false} {
		if _, got := access(dir, u); got != want {
			t.Errorf("access(%s) move = %v, want %v", dir, got, want)
		}
	}
	if _, move := access(own, &FileUser{}); move {
		t.Error("root counts")
	}
}

// realDir walks dir as openChecked does, creating what is missing.
func realDir(dir string, u *FileUser) (string, error) {
	f, real, err := walkDir(dir, u, true)
	if err != nil {
		return "", err
	}
	f.Close()
	return real, nil
}

// realDir follows the symlinks root made where only root may write, and
// refuses one the user may have made: its own, one in a directory it owns,
// one in a directory it may write without the sticky bit; in a sticky
// directory only its own counts. What does not exist yet is kept as named.
func TestRealDirRefusesPlantedSymlinks(t *testing.T) {
	needRoot(t)
	u := &FileUser{Owner: Owner{UID: 4321, GID: 4322}}
	base, err := os.MkdirTemp("", "realdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	base, _ = filepath.EvalSymlinks(base)
	target := filepath.Join(base, "target")
	mkdir := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := errors.Join(os.Mkdir(p, 0o700), os.Chmod(p, mode), os.Chown(p, uid, 0)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(dir string, uid int) string {
		p := filepath.Join(dir, "l")
		if err := errors.Join(os.Symlink(target, p), os.Lchown(p, uid, 0)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir("target", 0o755, 0)
	rootLink := link(mkdir("root", 0o755, 0), 0)
	stickyRoot := link(mkdir("sticky", os.ModeSticky|0o777, 0), 0)
	stickyUser := filepath.Join(base, "sticky", "u")
	if err := errors.Join(os.Symlink(target, stickyUser), os.Lchown(stickyUser, u.UID, 0)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir, want string // want "": refused
	}{
		{rootLink, target},
		{filepath.Join(rootLink, "new", "dirs"), filepath.Join(target, "new", "dirs")},
		{stickyRoot, target},
		{stickyUser, ""},
		{link(mkdir("own", 0o755, u.UID), 0), ""},
		{link(mkdir("open", 0o777, 0), 0), ""},
		{rootLink + "/../root", filepath.Join(base, "root")}, // ".." of the target, as the kernel does
	} {
		got, err := realDir(tt.dir, u)
		switch {
		case tt.want == "" && (err == nil || !strings.Contains(err.Error(), "may have made")):
			t.Errorf("realDir(%s) = %q, %v; want it refused", tt.dir, got, err)
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("realDir(%s) = %q, %v; want %s", tt.dir, got, err, tt.want)
		}
	}
	if got, err := realDir(stickyUser, &FileUser{}); err != nil || got != target {
		t.Errorf("root refuses its own user's symlink: %q, %v", got, err)
	}
	loop := filepath.Join(base, "root", "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	if _, err := realDir(loop, u); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a symlink loop: %v", err)
	}
}
