package template

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkFileMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// checkDirHolds fails when dir holds anything but want.
func checkDirHolds(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		if e.Name() != lockName { // a private directory's lock (files.go)
			got = append(got, e.Name())
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.conf")

	changed, err := WriteFileAtomic(path, []byte("one"), 0o640)
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, %v", changed, err)
	}
	if readTestFile(t, path) != "one" {
		t.Error("first write: wrong content")
	}
	checkFileMode(t, path, 0o640)

	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	changed, err = WriteFileAtomic(path, []byte("one"), 0o640)
	if err != nil || changed {
		t.Fatalf("same write: changed %v, %v", changed, err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old) {
		t.Errorf("same write: mtime %v, want %v kept", fi.ModTime(), old)
	}

	changed, err = WriteFileAtomic(path, []byte("one"), 0o600)
	if err != nil || !changed {
		t.Fatalf("new mode: changed %v, %v", changed, err)
	}
	checkFileMode(t, path, 0o600)

	changed, err = WriteFileAtomic(path, []byte("two"), 0o600)
	if err != nil || !changed || readTestFile(t, path) != "two" {
		t.Fatalf("new content: changed %v, %v", changed, err)
	}
	checkDirHolds(t, dir, "out.conf")
}

func TestWriteFileAtomicReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	changed, err := WriteFileAtomic(link, []byte("x"), 0o600)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if fi, _ := os.Lstat(link); !fi.Mode().IsRegular() {
		t.Error("symlink not replaced by a file")
	}
	if readTestFile(t, target) != "x" {
		t.Error("symlink target changed")
	}
}

func TestWriteFileAtomicFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	renameFile = func(*os.Root, string, string) error { return boom }
	defer func() { renameFile = (*os.Root).Rename }()

	changed, err := WriteFileAtomic(path, []byte("new"), 0o600)
	if !errors.Is(err, boom) || changed {
		t.Fatalf("changed %v, err %v; want boom", changed, err)
	}
	if readTestFile(t, path) != "old" {
		t.Error("old file changed")
	}
	checkFileMode(t, path, 0o644)
	checkDirHolds(t, dir, "out")

	if _, err := WriteFileAtomic(filepath.Join(dir, "nodir", "x"), []byte("x"), 0o600); err == nil {
		t.Error("missing parent directory: no error")
	}
	if _, err := WriteFileAtomic(dir, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
}

// TestWriteFileAtomicConcurrentReader reads the file while it is rewritten
// and checks every read sees one whole version.
func TestWriteFileAtomicConcurrentReader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	a := bytes.Repeat([]byte("a"), 256<<10)
	b := bytes.Repeat([]byte("b"), 256<<10)
	if _, err := WriteFileAtomic(path, a, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < 50; i++ {
			data := a
			if i%2 == 0 {
				data = b
			}
			if _, err := WriteFileAtomic(path, data, 0o600); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("read %d: a partial file of %d bytes", reads, len(got))
		}
		reads++
		select {
		case <-done:
			wg.Wait()
			checkDirHolds(t, dir, "big")
			return
		default:
		}
	}
}

// The unchanged-content check reads the file it looked at, never a symlink
// or a device swapped in after (a --user child owns the directory): a
// symlink to /dev/zero was read without bound.
func TestSameContentNoSwap(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	data := []byte("0123456789")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if !sameContent(root, "f", fi, data) {
		t.Fatal("the same file reads as different")
	}
	os.Remove(p)
	if err := os.Symlink("/dev/zero", p); err != nil {
		t.Fatal(err)
	}
	if sameContent(root, "f", fi, make([]byte, 10)) {
		t.Error("a symlink swapped in was followed")
	}
}
