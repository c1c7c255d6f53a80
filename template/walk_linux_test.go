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
