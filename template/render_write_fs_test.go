package template

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// An unchanged update touches nothing in the destination directory: no
// temp or probe file, no rename, so a program watching its config
// directory sees no event.
func TestUnchangedWriteMakesNoEvent(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", `{{ (secret "app/db").Data.username }}`, "b.tmpl", "static")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderAndWrite(t, set, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(out); err != nil {
		t.Fatal(err)
	}
	changed, err := renderAndWrite(t, set, Options{}, nil)
	if err != nil || len(changed) != 0 {
		t.Fatalf("changed %v, %v", changed, err)
	}
	// The sentinel's event comes after any the write made.
	sentinel := filepath.Join(out, "sentinel")
	if err := os.WriteFile(sentinel, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.Events:
			if ev.Name == sentinel {
				return
			}
			t.Errorf("the unchanged write made an event: %v", ev)
		case err := <-w.Errors:
			t.Fatal(err)
		case <-deadline:
			t.Fatal("no event for the sentinel file")
		}
	}
}

// A destination that fails to take its temp file fails the write before
// any DST changes, and leaves no temp file behind.
func TestWriteFailingTempChangesNothing(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", "a", "b.tmpl", "b")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("read-only file system")
	createTemp = func(root *os.Root, prefix string) (*os.File, error) {
		if strings.HasPrefix(prefix, ".b.") {
			return nil, boom
		}
		return createTempIn(root, prefix)
	}
	defer func() { createTemp = createTempIn }()
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := renderAndWrite(t, set, Options{}, nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), specs[1].Dst) || len(changed) != 0 {
		t.Fatalf("changed %v, error %v; want %v naming %s", changed, err, boom, specs[1].Dst)
	}
	checkDirHolds(t, out)
}

// A DST that exists keeps its mode and owner when the spec gives no MODE;
// an explicit MODE wins; a new file is 0600.
func TestWriteKeepsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "kept.tmpl", "new content", "explicit.tmpl", "new content", "fresh.tmpl", "new content")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs[:2] {
		if err := os.WriteFile(sp.Dst, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sp.Dst, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// Root can give the old file away, and must give it back.
	owner := os.Getuid()
	if owner == 0 {
		owner = 4321
		if err := os.Chown(specs[0].Dst, owner, 4322); err != nil {
			t.Fatal(err)
		}
	}
	specs[1].Mode = 0o604
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := renderAndWrite(t, set, Options{}, nil)
	if err != nil || len(changed) != 3 {
		t.Fatalf("changed %v, %v", changed, err)
	}
	for _, sp := range specs {
		if got := readTestFile(t, sp.Dst); got != "new content" {
			t.Errorf("%s: %q", sp.Dst, got)
		}
	}
	checkFileMode(t, specs[0].Dst, 0o640)
	checkFileMode(t, specs[1].Dst, 0o604)
	checkFileMode(t, specs[2].Dst, DefaultMode)
	fi, err := os.Stat(specs[0].Dst)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != owner || (owner == 4321 && st.Gid != 4322) {
		t.Errorf("owner %d:%d, want %d", st.Uid, st.Gid, owner)
	}
}
