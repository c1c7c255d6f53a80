package template

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// A child that keeps exchanging a directory of its own with a symlink to a
// root-only directory (renameat2 RENAME_EXCHANGE, as fast as it can) never
// gets root to read the root-only file for it: each read either reads the
// child's own file or fails, whatever moment the exchange hits.
func TestReadCheckedRace(t *testing.T) {
	needRoot(t)
	u := &FileUser{Owner: Owner{UID: 4321, GID: 4322}}
	base, err := os.MkdirTemp("", "walkrace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ud, secret := filepath.Join(base, "ud"), filepath.Join(base, "secretroot")
	for _, d := range []string{filepath.Join(ud, "a", "b"), filepath.Join(secret, "b")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(
		os.WriteFile(filepath.Join(ud, "a", "b", "f"), []byte("USERFILE"), 0o644),
		os.WriteFile(filepath.Join(secret, "b", "f"), []byte("ROOTONLY"), 0o600),
		os.Chmod(secret, 0o700),
		os.Symlink(filepath.Join(secret), filepath.Join(ud, "alink")),
		os.Lchown(filepath.Join(ud, "alink"), 0, 0), // root's symlink, but in the user's directory
		os.Chown(ud, u.UID, u.GID),
	); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		a, l := filepath.Join(ud, "a"), filepath.Join(ud, "alink")
		for !stop.Load() {
			unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, l, unix.RENAME_EXCHANGE)
		}
	}()
	var read, refused int
	for range 3000 {
		b, err := readChecked(filepath.Join(ud, "a", "b", "f"), u)
		switch {
		case strings.Contains(string(b), "ROOTONLY"):
			stop.Store(true)
			<-done
			t.Fatal("root read the root-only file for the child")
		case err == nil:
			read++
		default:
			refused++
		}
	}
	stop.Store(true)
	<-done
	t.Logf("%d reads of the child's file, %d refused", read, refused)
}

// A hardlink to a file the user cannot read, in a directory it may add
// entries to (it could have made the link where fs.protected_hardlinks is
// 0), is not read for it; a file it may read, or its own, is.
func TestReadCheckedHardlink(t *testing.T) {
	needRoot(t)
	u := &FileUser{Owner: Owner{UID: 4321, GID: 4322}}
	base, err := os.MkdirTemp("", "walklink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ud, secret := filepath.Join(base, "ud"), filepath.Join(base, "shadow")
	if err := errors.Join(os.Mkdir(ud, 0o755), os.Chown(ud, u.UID, u.GID),
		os.WriteFile(secret, []byte("ROOTONLY"), 0o600),
		os.Link(secret, filepath.Join(ud, "link")),
		os.WriteFile(filepath.Join(ud, "public"), []byte("PUBLIC"), 0o644),
		os.WriteFile(filepath.Join(ud, "own"), []byte("OWN"), 0o600), os.Chown(filepath.Join(ud, "own"), u.UID, u.GID),
	); err != nil {
		t.Fatal(err)
	}
	if b, err := readChecked(filepath.Join(ud, "link"), u); err == nil || strings.Contains(string(b), "ROOTONLY") {
		t.Errorf("a hardlink to a root-only file was read: %q, %v", b, err)
	}
	for name, want := range map[string]string{"public": "PUBLIC", "own": "OWN"} {
		if b, err := readChecked(filepath.Join(ud, name), u); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	// Root's own file in a root directory: read as before.
	if b, err := readChecked(secret, u); err != nil || string(b) != "ROOTONLY" {
		t.Errorf("a root file in a root directory: %q, %v", b, err)
	}
}

// Directories the walk creates are DirMode whatever the umask (the child
// must be able to reach its destinations).
func TestWalkCreatesDirMode(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	dir := filepath.Join(t.TempDir(), "a", "b")
	f, _, err := walkDir(dir, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != DirMode {
			t.Errorf("%s: %v, %v; want %v", d, fi.Mode().Perm(), err, DirMode)
		}
	}
}
