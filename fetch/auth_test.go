package fetch_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

const (
	tokenRoute  = "POST /v1/auth/token"
	whoamiRoute = "GET /v1/auth/whoami"
)

func TestClientCredentialsExchangedOnce(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, asClient("app", "app-SECRET-0002"))
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c.Whoami(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := h.srv.Requests(tokenRoute); n != 1 {
		t.Errorf("%d token requests for 16 concurrent calls, want 1", n)
	}
	explicit := h.client(t, func(cfg *fetch.Config) {
		asClient("app", "app-SECRET-0002")(cfg)
		cfg.TokenURL = h.hs.URL + "/v1/auth/token"
	})
	if w, err := explicit.Whoami(ctx); err != nil || w.IdentityID != "app" {
		t.Errorf("explicit token URL: %+v, %v", w, err)
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, asClient("short", "short-SECRET-0003")) // token_ttl 2s
	ctx := ctxT(t)
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var calls int64
	for h.srv.Requests(tokenRoute) < 2 {
		calls++
		if _, err := c.Whoami(ctx); err != nil {
			t.Fatalf("whoami after %v: %v", time.Since(start), err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("token never refreshed")
		}
	}
	// Refreshed before the server would say token_expired (no whoami above
	// failed), and not long before (about 80% of 2s; the exact time is
	// TestRefreshTimes', a pure function).
	if d := time.Since(start); d < time.Second {
		t.Errorf("second token after %v, want about 1.6s", d)
	}
	// Every request of the loop was answered without a retry on 401: the
	// first token was never presented expired.
	if n := h.srv.Requests(whoamiRoute); calls < 2 || n != calls {
		t.Errorf("%d whoami requests for %d calls, want one each and at least 2", n, calls)
	}
}

func devPost(t *testing.T, h *harness, route string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.hs.URL+route, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+h.srv.RootToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s: %s", route, resp.Status)
	}
}

func TestTokenExpiredRefreshedOn401(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, asClient("app", "app-SECRET-0002"))
	ctx := ctxT(t)
	if _, err := c.Whoami(ctx); err != nil {
		t.Fatal(err)
	}
	devPost(t, h, "/v1/dev/tokens/expire")
	if w, err := c.Whoami(ctx); err != nil || w.IdentityID != "app" {
		t.Fatalf("whoami after the token expired: %+v, %v", w, err)
	}
	if tok, who := h.srv.Requests(tokenRoute), h.srv.Requests(whoamiRoute); tok != 2 || who != 3 {
		t.Errorf("%d token and %d whoami requests, want 2 and 3 (one 401, retried once)", tok, who)
	}
}

func TestBadClientSecret(t *testing.T) {
	h := newHarness(t, "")
	noteSecret("wrong-SECRET-0004")
	c := h.client(t, asClient("app", "wrong-SECRET-0004"))
	_, err := c.Whoami(ctxT(t))
	mustFail(t, err, fetch.ErrAuthentication)
	if !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("error %q does not name the RFC 6749 code", err)
	}
	if n := h.srv.Requests(whoamiRoute); n != 0 {
		t.Errorf("%d API requests without a token", n)
	}
}

func TestStaticToken401IsFinal(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, func(cfg *fetch.Config) { cfg.Token = "bogus-SECRET-token-1" })
	_, err := c.Whoami(ctxT(t))
	mustFail(t, err, fetch.ErrAuthentication)
	if n := h.srv.Requests(whoamiRoute); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFileChangeIsSeen(t *testing.T) {
	h := newHarness(t, "")
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	writeFile(t, file, "bogus-SECRET-file-1\n")
	c := h.client(t, func(cfg *fetch.Config) { cfg.Token, cfg.TokenFile = "", file })
	ctx := ctxT(t)
	_, err := c.Whoami(ctx)
	mustFail(t, err, fetch.ErrAuthentication)
	if n := h.srv.Requests(whoamiRoute); n != 1 {
		t.Errorf("%d requests with an unchanged bad token file, want 1", n)
	}
	// Kubernetes-style: a new file renamed over the old one.
	writeFile(t, file+".new", h.srv.RootToken()+"\n")
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Whoami(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.srv.Requests(whoamiRoute); n != 2 {
		t.Errorf("%d requests, want 2: the change is seen before sending", n)
	}
}

func TestTokenFileReReadOn401(t *testing.T) {
	h := newHarness(t, "")
	file := filepath.Join(t.TempDir(), "token")
	root := h.srv.RootToken()
	bogus := "bogus-SECRET-" + strings.Repeat("x", len(root)-len("bogus-SECRET-"))
	writeFile(t, file, bogus)
	c := h.client(t, func(cfg *fetch.Config) { cfg.Token, cfg.TokenFile = "", file })
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite in place with the same size and mtime: a stat cannot see it.
	writeFile(t, file, root)
	if err := os.Chtimes(file, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Whoami(ctxT(t)); err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if n := h.srv.Requests(whoamiRoute); n != 2 {
		t.Errorf("%d requests, want 2 (401, re-read, success)", n)
	}
	if err := c.ReloadToken(); err != nil {
		t.Error(err)
	}
}

func TestEventsSurviveTokenExpiry(t *testing.T) {
	h := newHarness(t, "")
	c := h.client(t, asClient("short", "short-SECRET-0003")) // token_ttl 2s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, connects, _ := follow(t, ctx, c, fetch.EventsOptions{Prefix: "app/"})
	recv(t, connects, "first connection")
	recv(t, connects, "reconnection after the token expired")
	write(t, h, "app/db")
	if ev := recv(t, events, "event after reconnecting"); ev.Data.Path != "app/db" {
		t.Errorf("event %+v", ev)
	}
	if n := h.srv.Requests(tokenRoute); n < 2 {
		t.Errorf("%d token requests, want a refresh", n)
	}
}
