package fetch_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestBatchReadPerPathErrors(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	if err := h.admin().Delete(ctx, "app/api", false); err != nil {
		t.Fatal(err)
	}
	c := h.client(t, asClient("app", "app-SECRET-0002"))
	paths := []string{"app/db", "app/missing", "other/x", "app/../x", "app/db", "app/api"}
	secrets, errs, err := c.BatchRead(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 1 || secrets["app/db"] == nil || str(t, secrets["app/db"], "password") != "pw-SECRET-db-1" {
		t.Fatalf("secrets %v", secrets)
	}
	want := map[string]error{
		"app/missing": fetch.ErrNotFound,
		"other/x":     fetch.ErrAccessDenied,
		"app/../x":    fetch.ErrValidation,
		"app/api":     fetch.ErrNotFound, // soft-deleted
	}
	if len(errs) != len(want) {
		t.Errorf("errs %v, want %d entries", errs, len(want))
	}
	for p, sentinel := range want {
		var apiErr *fetch.APIError
		noteErr(errs[p])
		if !errors.As(errs[p], &apiErr) || !errors.Is(errs[p], sentinel) {
			t.Errorf("errs[%q] = %#v, want an *APIError matching %v", p, errs[p], sentinel)
		}
	}
	if n := h.srv.Requests("POST /v1/secrets/batch-read"); n != 1 {
		t.Errorf("%d batch requests, want 1", n)
	}
	s, e, err := c.BatchRead(ctx, nil)
	if err != nil || len(s) != 0 || len(e) != 0 || s == nil || e == nil {
		t.Errorf("empty batch: %v %v %v", s, e, err)
	}
}

func TestBatchReadSplitsIntoChunks(t *testing.T) {
	const n = 250
	h := newHarness(t, bulkSeed(n))
	c := h.client(t, nil)
	ctx := ctxT(t)
	paths := make([]string, 0, n+1)
	for i := range n {
		paths = append(paths, fmt.Sprintf("bulk/s%04d", i))
	}
	paths = append(paths, "bulk/none")
	secrets, errs, err := c.BatchRead(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) != n || len(errs) != 1 || !errors.Is(errs["bulk/none"], fetch.ErrNotFound) {
		t.Fatalf("%d secrets, errs %v", len(secrets), errs)
	}
	for i := range n {
		p := fmt.Sprintf("bulk/s%04d", i)
		if s := secrets[p]; s == nil || str(t, s, "v") != fmt.Sprintf("bulk-SECRET-%d", i) {
			t.Fatalf("secret %s: %+v", p, s)
		}
	}
	if got, want := h.srv.Requests("POST /v1/secrets/batch-read"), int64((n+1+99)/100); got != want {
		t.Errorf("%d batch requests for %d paths, want %d", got, n+1, want)
	}
}

func TestBatchReadCallError(t *testing.T) {
	h := newHarness(t, bulkSeed(150))
	c := h.client(t, func(cfg *fetch.Config) { cfg.Token = "bogus-SECRET-token-x" })
	paths := make([]string, 150)
	for i := range paths {
		paths[i] = fmt.Sprintf("bulk/s%04d", i)
	}
	secrets, errs, err := c.BatchRead(ctxT(t), paths)
	mustFail(t, err, fetch.ErrAuthentication)
	if secrets != nil || errs != nil {
		t.Error("maps returned with a call error")
	}
}

func TestWhoami(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	w, err := h.client(t, nil).Whoami(ctx)
	if err != nil || w.IdentityType != "root" || w.ExpiresAt != nil {
		t.Fatalf("root: %+v, %v", w, err)
	}
	w, err = h.client(t, asClient("app", "app-SECRET-0002")).Whoami(ctx)
	if err != nil || w.IdentityID != "app" || w.IdentityType != "service" || w.ExpiresAt == nil {
		t.Fatalf("client: %+v, %v", w, err)
	}
	if d := time.Until(*w.ExpiresAt); d < 59*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("client token expires in %v, want about 1h", d)
	}
}

func TestRotationDue(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	due, err := h.admin().RotationDue(ctx, 168)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].SecretPath != "app/api" || due[0].PolicyID != "rp_quarterly" {
		t.Fatalf("due within a week: %+v", due)
	}
	if d := time.Until(due[0].NextRotationAt); d < 71*time.Hour || d > 72*time.Hour {
		t.Errorf("next rotation in %v, want 72h", d)
	}
	if due, err := h.admin().RotationDue(ctx, 24); err != nil || len(due) != 0 {
		t.Errorf("due within a day: %+v, %v", due, err)
	}
	if due, err := h.admin().RotationDue(ctx, 0); err != nil || len(due) != 1 {
		t.Errorf("server default window: %+v, %v", due, err)
	}
}
