package template

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// renderAndWrite is what the supervisor does: render all, then write all.
func renderAndWrite(t *testing.T, set *Set, opt Options, snap *fetch.Snapshot) ([]string, error) {
	t.Helper()
	u := &universe{all: testSnapshot(t)}
	out, _, err := set.RenderAll(context.Background(), u.resolve, snap)
	if err != nil {
		return nil, err
	}
	return WriteAll(out, opt, nil)
}

func TestFailingTemplateWritesNothing(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "good.tmpl", `{{ (secret "app/db").Data.username }}`,
		"bad.tmpl", `{{ (secret "app/db").Data.nokey }}`)
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderAndWrite(t, set, Options{}, nil); err == nil || !strings.Contains(err.Error(), "bad.tmpl:1:") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(specs[0].Dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the good template's DST was written: %v", err)
	}
}

func TestWriteChecksEveryDestinationFirst(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", "a", "b.tmpl", "b", "c.tmpl", "c")
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	specs[1].Dst = filepath.Join(dir, "nodir", "b") // directory missing
	specs[2].Dst = filepath.Join(specs[0].Src, "c") // parent is a file
	for i, dst := range []string{specs[1].Dst, specs[2].Dst} {
		sp := []Spec{specs[0], specs[1+i]}
		set, err := Parse(sp, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = renderAndWrite(t, set, Options{}, nil)
		if err == nil || !strings.Contains(err.Error(), dst) {
			t.Errorf("error %v, want it to name %s", err, dst)
		}
		if _, err := os.Stat(specs[0].Dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a DST was written before the failing one was checked: %v", err)
		}
	}
	_, err := WriteAll([]Rendered{{Spec: specs[1], Data: []byte("b")}}, Options{}, nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "--template-create-dirs") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestWriteCreateDirsAndMode(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", `{{ (secret "app/db").Data.username }}`)
	specs[0].Dst = filepath.Join(dir, "x", "y", "a.conf")
	specs[0].Mode = 0o640
	set, err := Parse(specs, Options{CreateDirs: true})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := renderAndWrite(t, set, Options{CreateDirs: true}, nil)
	if err != nil || len(changed) != 1 || changed[0] != specs[0].Dst {
		t.Fatalf("changed %v, %v", changed, err)
	}
	fi, err := os.Stat(specs[0].Dst)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat: %v %v", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(specs[0].Dst))
	if err != nil || di.Mode().Perm() != DirMode {
		t.Errorf("directory mode %v, %v", di.Mode(), err)
	}
	if b, _ := os.ReadFile(specs[0].Dst); string(b) != "app" {
		t.Errorf("content %q", b)
	}
}

func TestWriteUnchangedKeepsFile(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", `{{ (secret "app/db").Data.username }}`)
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderAndWrite(t, set, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(specs[0].Dst, old, old); err != nil {
		t.Fatal(err)
	}
	changed, err := renderAndWrite(t, set, Options{}, nil)
	if err != nil || len(changed) != 0 {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if fi, _ := os.Stat(specs[0].Dst); !fi.ModTime().Equal(old) {
		t.Errorf("mtime %v: the unchanged file was rewritten", fi.ModTime())
	}
	// Without MODE, a chmod is the operator's and is kept; with MODE, a
	// mode that differs from it is a change.
	if err := os.Chmod(specs[0].Dst, 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := renderAndWrite(t, set, Options{}, nil); err != nil || len(changed) != 0 {
		t.Errorf("changed %v, %v after a chmod, without MODE", changed, err)
	}
	specs[0].Mode = 0o600
	if set, err = Parse(specs, Options{}); err != nil {
		t.Fatal(err)
	}
	if changed, err := renderAndWrite(t, set, Options{}, nil); err != nil || len(changed) != 1 {
		t.Errorf("changed %v, %v after a chmod, with MODE 0600", changed, err)
	}
	checkFileMode(t, specs[0].Dst, 0o600)
}

func TestWriteStdout(t *testing.T) {
	var buf bytes.Buffer
	out := []Rendered{{Spec: Spec{Src: "a", Dst: Stdout}, Data: []byte("one\n")}, {Spec: Spec{Src: "b", Dst: Stdout}, Data: []byte("two\n")}}
	changed, err := WriteAll(out, Options{}, &buf)
	if err != nil || len(changed) != 0 || buf.String() != "one\ntwo\n" {
		t.Errorf("WriteAll: %v %v %q", changed, err, buf.String())
	}
	if _, err := WriteAll(out, Options{}, nil); err == nil {
		t.Errorf("no error without a stdout")
	}
}

func TestWriteIsAtomicForReaders(t *testing.T) {
	// A reader polling DST while it is rewritten again and again sees one whole
	// version or the other, never a part.
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "big.tmpl", `{{ range loop 300 }}{{ (secret "app/db").Data.password }}-{{ . }}
{{ end }}`)
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := Parse(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	snaps := []*fetch.Snapshot{testSnapshot(t), testSnapshot(t)}
	src := fetch.StaticSource("app/db", 0)
	other := *snaps[1].Secrets[src]
	other.Data = raw("password", `"a-longer-password-value"`)
	snaps[1].Secrets[src] = &other
	var wants [2][]byte
	for i, snap := range snaps {
		out, _, err := set.Render(snap)
		if err != nil {
			t.Fatal(err)
		}
		wants[i] = out[0].Data
	}
	done := make(chan struct{})
	var reads, torn int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		reads, torn = pollFile(specs[0].Dst, wants[:], done)
	}()
	for i := range 50 {
		out, _, err := set.Render(snaps[i%2])
		if err == nil {
			_, err = WriteAll(out, Options{}, nil)
		}
		if err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	if torn > 0 {
		t.Errorf("%d of %d reads saw a partial file", torn, reads)
	}
}

// pollFile reads path until done is closed and counts the reads that saw
// none of wants.
func pollFile(path string, wants [][]byte, done <-chan struct{}) (reads, torn int) {
	for {
		select {
		case <-done:
			return reads, torn
		default:
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		reads++
		if err != nil || (!bytes.Equal(b, wants[0]) && !bytes.Equal(b, wants[1])) {
			torn++
		}
	}
}

// A step that fails before anything is renamed into place removes the
// directories it made for --template-create-dirs (nothing half done), and
// leaves the ones that were there.
func TestFailedStepRemovesCreatedDirs(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", "a", "b.tmpl", "b")
	specs[0].Dst = filepath.Join(dir, "new1", "new2", "a.conf")
	specs[1].Dst = filepath.Join(dir, "isdir")
	if err := os.Mkdir(specs[1].Dst, 0o755); err != nil {
		t.Fatal(err)
	}
	opt := Options{CreateDirs: true}
	set, err := Parse(specs, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderAndWrite(t, set, opt, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("err %v, want the directory destination's", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directories made for the failed step are still there: %v", err)
	}
	// The same step made good: the directories are made and stay.
	specs[1].Dst = filepath.Join(dir, "b.conf")
	if set, err = Parse(specs, opt); err != nil {
		t.Fatal(err)
	}
	if _, err := renderAndWrite(t, set, opt, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(specs[0].Dst); err != nil || string(b) != "a" {
		t.Errorf("%q, %v", b, err)
	}
}

// A destination ending in "/" names a directory: an error, not a file
// written inside it under the directory's own name.
func TestDestinationWithTrailingSlash(t *testing.T) {
	dir := t.TempDir()
	specs := writeTemplates(t, dir, "a.tmpl", "a")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{out + "/", out + "//", filepath.Join(dir, "new") + "/", filepath.Join(dir, "new") + "/.", filepath.Join(dir, "new", "x") + "/.."} {
		specs[0].Dst = dst
		opt := Options{CreateDirs: true}
		set, err := Parse(specs, opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := renderAndWrite(t, set, opt, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("%s: err %v, want is a directory", dst, err)
		}
	}
	checkDirHolds(t, out)
	if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a directory was made for %s/: %v", filepath.Join(dir, "new"), err)
	}
}
