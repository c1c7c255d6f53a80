package fetch_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// reloadSignal is a slog handler that reports the client's "token file
// re-read" lines on a channel: the one sign that the watch re-read the
// file without a request.
type reloadSignal struct {
	slog.Handler
	ch, watching chan struct{}
}

func (h reloadSignal) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "scaivault token file re-read":
		h.ch <- struct{}{}
	case "watching the token file for changes":
		close(h.watching)
	}
	return h.Handler.Handle(ctx, r)
}

func (h reloadSignal) Enabled(context.Context, slog.Level) bool { return true }

// TestWatchTokenFile swaps the token file the ways it is swapped in
// practice and checks that each new token is read at once, before any
// request, and then sent.
func TestWatchTokenFile(t *testing.T) {
	dir := t.TempDir()
	// Kubernetes' layout: token -> ..data/token, ..data -> ..<timestamp>.
	writeTS := func(name, tok string) {
		t.Helper()
		ts := filepath.Join(dir, name)
		if err := os.Mkdir(ts, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ts, "token"), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeTS("..ts1", "tok-SECRET-file-1")
	tokPath := filepath.Join(dir, "token")
	if err := os.Symlink("..data/token", tokPath); err != nil {
		t.Fatal(err)
	}
	noteSecret("tok-SECRET-file-1", "tok-SECRET-file-2", "tok-SECRET-file-3")

	var mu sync.Mutex
	var seen []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write([]byte(`{"identity_id":"x","identity_type":"service","expires_at":null}`))
	}))
	defer hs.Close()
	reloads, watching := make(chan struct{}, 10), make(chan struct{})
	log := slog.New(reloadSignal{Handler: slog.NewTextHandler(scanWriter{}, nil), ch: reloads, watching: watching})
	c, err := fetch.New(fetch.Config{BaseURL: hs.URL, TokenFile: tokPath, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.WatchTokenFile(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-watching:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not start within 10s")
	}
	awaitReload := func(change func()) {
		t.Helper()
		change()
		select {
		case <-reloads:
		case <-time.After(10 * time.Second):
			t.Fatal("token file not re-read within 10s")
		}
	}
	whoami := func(want string) {
		t.Helper()
		if _, err := c.Whoami(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := seen[len(seen)-1]; got != "Bearer "+want {
			t.Errorf("request sent another token than %s", want[len(want)-1:])
		}
	}
	whoami("tok-SECRET-file-1")
	awaitReload(func() { writeTS("..ts2", "tok-SECRET-file-2") })
	whoami("tok-SECRET-file-2")
	// A plain file renamed over the link (an atomic writer).
	awaitReload(func() {
		tmp := filepath.Join(dir, "token.new")
		if err := os.WriteFile(tmp, []byte("tok-SECRET-file-3"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tokPath); err != nil {
			t.Fatal(err)
		}
	})
	whoami("tok-SECRET-file-3")
}

func TestWatchTokenFileWithoutFile(t *testing.T) {
	c, err := fetch.New(fetch.Config{BaseURL: "http://127.0.0.1:1", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WatchTokenFile(context.Background()); err != nil {
		t.Fatal(err)
	}
}
