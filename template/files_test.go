package template

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeGetenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestNewFileDir(t *testing.T) {
	xdg, shm, tmp := t.TempDir(), t.TempDir(), t.TempDir()
	notDir := filepath.Join(tmp, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		getenv     map[string]string
		shm        string
		wantParent string
		wantWarn   bool
	}{
		{"xdg", map[string]string{"XDG_RUNTIME_DIR": xdg, "TMPDIR": tmp}, shm, xdg, false},
		{"xdg unset", map[string]string{"TMPDIR": tmp}, shm, shm, false},
		{"xdg not a directory", map[string]string{"XDG_RUNTIME_DIR": notDir, "TMPDIR": tmp}, shm, shm, false},
		{"xdg missing", map[string]string{"XDG_RUNTIME_DIR": filepath.Join(tmp, "none"), "TMPDIR": tmp}, shm, shm, false},
		{"no tmpfs", map[string]string{"XDG_RUNTIME_DIR": notDir, "TMPDIR": tmp}, filepath.Join(tmp, "noshm"), tmp, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, warn, err := newFileDir(fakeGetenv(tt.getenv), tt.shm, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Remove()
			if filepath.Dir(d.Path()) != tt.wantParent || warn != tt.wantWarn {
				t.Errorf("dir %s warn %v; want inside %s, warn %v", d.Path(), warn, tt.wantParent, tt.wantWarn)
			}
			if !filepath.IsAbs(d.Path()) {
				t.Errorf("%s is not absolute", d.Path())
			}
			fi, err := os.Stat(d.Path())
			if err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
				t.Errorf("dir mode %v, %v; want 0700 directory", fi.Mode(), err)
			}
		})
	}
	if _, _, err := newFileDir(fakeGetenv(map[string]string{"TMPDIR": notDir}), notDir, nil, ""); err == nil {
		t.Error("no usable directory: no error")
	}
}

// writeVar writes the file of variable name as WriteStep does, and says
// whether it changed.
func writeVar(d *FileDir, name string, data []byte) (string, bool, error) {
	path, err := d.pathOf(name)
	if err != nil {
		return "", false, err
	}
	vars, _, err := WriteStep([]FileWrite{{Var: name, Path: path, Data: data, where: "--env " + name, owner: d.fileOwner()}}, nil, Options{}, nil)
	return path, len(vars) > 0, err
}

func TestFileDirWrite(t *testing.T) {
	d, _, err := newFileDir(fakeGetenv(map[string]string{"XDG_RUNTIME_DIR": t.TempDir()}), "/nonexistent", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	path, changed, err := writeVar(d, "TLS_KEY", []byte("k1"))
	if err != nil || !changed || path != filepath.Join(d.Path(), "TLS_KEY") {
		t.Fatalf("Write = %s, %v, %v", path, changed, err)
	}
	checkFileMode(t, path, 0o600)
	if _, changed, _ = writeVar(d, "TLS_KEY", []byte("k1")); changed {
		t.Error("same content: changed")
	}
	if _, changed, _ = writeVar(d, "TLS_KEY", []byte("k2")); !changed || readTestFile(t, path) != "k2" {
		t.Error("new content: not replaced")
	}
	for name, want := range map[string]string{"a/b": "a_b", "..": "_..", ".env": "_.env", "": "_", "x y": "x_y", "ok.-_9": "ok.-_9"} {
		if got := safeFileName(name); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", name, got, want)
		}
	}
	p2, _, err := writeVar(d, "../escape", []byte("x"))
	if err != nil || filepath.Dir(p2) != d.Path() {
		t.Errorf("Write(../escape) = %s, %v", p2, err)
	}
	checkDirHolds(t, d.Path(), "TLS_KEY", "_.._escape")
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path()); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v", err)
	}
	if err := d.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	var nilDir *FileDir
	if _, _, err := writeVar(nilDir, "X", nil); err == nil || !strings.Contains(err.Error(), "no private file directory") {
		t.Errorf("nil FileDir: %v", err)
	}
}

// RemoveStaleFileDirs removes a dead run's tagged directory (its lock
// file held by nobody), never a live run's (its lock held: the same tag
// in another mount namespace sharing the tmpfs), nor a directory without
// a lock file (one renamed into place), nor another tag's.
func TestRemoveStaleFileDirs(t *testing.T) {
	parent := t.TempDir()
	getenv := fakeGetenv(map[string]string{"XDG_RUNTIME_DIR": parent, "TMPDIR": parent})
	live, _, err := newFileDir(getenv, "/nonexistent", nil, "t1")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Remove()
	dead, _, err := newFileDir(getenv, "/nonexistent", nil, "t1")
	if err != nil {
		t.Fatal(err)
	}
	dead.lock.Close() // killed: the kernel dropped its lock
	other, _, err := newFileDir(getenv, "/nonexistent", nil, "t2")
	if err != nil {
		t.Fatal(err)
	}
	other.lock.Close()
	renamed := filepath.Join(parent, "scaivault-run-t1-renamed")
	if err := os.Mkdir(renamed, 0o700); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStaleFileDirs(getenv, "t1")
	if err != nil || len(removed) != 1 || removed[0] != dead.Top() {
		t.Fatalf("removed %v, %v; want only %s", removed, err, dead.Top())
	}
	for _, d := range []string{live.Top(), other.Top(), renamed} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
}
