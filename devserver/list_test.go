package devserver

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// listAll follows every page and returns the paths and the number of pages.
func listAll(t *testing.T, h *harness, token, prefix string, limit int) ([]string, int) {
	t.Helper()
	var paths []string
	cursor := ""
	for pages := 1; ; pages++ {
		q := url.Values{"prefix": {prefix}}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := h.do("GET", "/v1/secrets?"+q.Encode(), token, nil).want(t, 200)
		var page fetch.ListPage
		r.decode(t, &page)
		for _, e := range page.Data {
			if e.Version < 1 || e.SecretType == "" || e.UpdatedAt.IsZero() {
				t.Fatalf("entry %+v", e)
			}
			paths = append(paths, e.Path)
		}
		if !page.HasMore {
			if page.Cursor != nil || !strings.Contains(string(r.body), `"cursor":null`) {
				t.Fatalf("last page cursor: %s", r.body)
			}
			return paths, pages
		}
		if page.Cursor == nil || *page.Cursor == "" || (limit > 0 && len(page.Data) != limit) {
			t.Fatalf("page with has_more: %s", r.body)
		}
		cursor = *page.Cursor
	}
}

func TestListPagination(t *testing.T) {
	h := newHarness(t, testSeed())
	var want []string
	for i := 0; i < 25; i++ {
		p := fmt.Sprintf("app/list/s%02d", i)
		h.write(p, map[string]any{"data": map[string]any{"i": i}})
		want = append(want, p)
	}
	h.write("app/listx", map[string]any{"data": map[string]any{}}) // shares the plain-string prefix
	h.do("DELETE", "/v1/secrets/app/list/s03", rootTok, nil).want(t, 204)
	want = append(want[:3], want[4:]...)

	got, pages := listAll(t, h, rootTok, "app/list/", 5)
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 5 {
		t.Fatalf("pages %d, paths %v", pages, got)
	}
	got, _ = listAll(t, h, rootTok, "app/list", 0)
	if len(got) != 25 || got[24] != "app/listx" || !sort.StringsAreSorted(got) {
		t.Fatalf("plain prefix: %v", got)
	}
	// Default limit 50, and a limit above 1000 is 1000.
	all, pages := listAll(t, h, rootTok, "", 0)
	if pages != 1 || len(all) != 4+25 {
		t.Fatalf("all: %d pages, %d paths", pages, len(all))
	}
	for i := 0; i < 60; i++ {
		h.write(fmt.Sprintf("app/many/m%02d", i), map[string]any{"data": map[string]any{}})
	}
	if _, pages := listAll(t, h, rootTok, "app/many/", 0); pages != 2 {
		t.Fatalf("default limit: %d pages", pages)
	}
	if _, pages := listAll(t, h, rootTok, "app/many/", 5000); pages != 1 {
		t.Fatalf("limit 5000: %d pages", pages)
	}
}

func TestListErrorsAndFiltering(t *testing.T) {
	h := newHarness(t, testSeed())
	for _, q := range []string{"limit=0", "limit=-3", "limit=x", "cursor=garbage!", "cursor=" + encodeCursor("a/../b"), "prefix=%zz"} {
		h.do("GET", "/v1/secrets?"+q, rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	}
	// A client that may list app/** only sees those.
	app := h.token("app", "app-secret")
	got, _ := listAll(t, h, app, "", 2)
	if strings.Join(got, ",") != "app/api-key,app/config,app/db" {
		t.Fatalf("filtered list %v", got)
	}
	ops := h.token("ops", "ops-secret")
	if got, _ := listAll(t, h, ops, "", 0); len(got) != 0 {
		t.Fatalf("ops (no list) sees %v", got)
	}
}

func TestRotationDue(t *testing.T) {
	seed := testSeed()
	seed.Secrets["app/later"] = SeedSecret{Data: map[string]any{"k": "v"},
		Rotation: &SeedRotation{PolicyID: "rp_2", Interval: "30d", NextRotationAt: "2026-12-20T00:00:00Z"}}
	seed.Secrets["other/due"] = SeedSecret{Data: map[string]any{"k": "v"},
		Rotation: &SeedRotation{PolicyID: "rp_3", Interval: "1d"}}
	h := newHarness(t, seed)
	var due fetch.DueList
	h.do("GET", "/v1/rotation/due?within_hours=72", rootTok, nil).want(t, 200).decode(t, &due)
	if len(due.Data) != 2 || due.Data[0].SecretPath != "other/due" || due.Data[1].SecretPath != "app/config" ||
		due.Data[1].PolicyID != "rp_1" || !due.Data[1].NextRotationAt.Equal(h.clock.Now().Add(72*time.Hour)) {
		t.Fatalf("due within 72h: %+v", due.Data)
	}
	h.do("GET", "/v1/rotation/due", rootTok, nil).want(t, 200).decode(t, &due)
	if len(due.Data) != 2 {
		t.Fatalf("default 168h: %+v", due.Data)
	}
	h.do("GET", "/v1/rotation/due?within_hours=1000", h.token("app", "app-secret"), nil).want(t, 200).decode(t, &due)
	if len(due.Data) != 2 || due.Data[0].SecretPath != "app/config" || due.Data[1].SecretPath != "app/later" {
		t.Fatalf("app within 1000h: %+v", due.Data)
	}
	h.do("GET", "/v1/rotation/due?within_hours=-1", rootTok, nil).wantErr(t, 400, fetch.CodeValidation)
	// Overdue stays listed; a rotation moves it one interval on.
	h.clock.Advance(100 * time.Hour)
	h.do("GET", "/v1/rotation/due?within_hours=0", rootTok, nil).want(t, 200).decode(t, &due)
	if len(due.Data) != 2 {
		t.Fatalf("overdue: %+v", due.Data)
	}
	var s fetch.Secret
	h.do("POST", "/v1/secrets/app/config/rotate", rootTok, nil).want(t, 200).decode(t, &s)
	want := h.clock.Now().Add(90 * 24 * time.Hour)
	if s.Rotation == nil || s.Rotation.PolicyID != "rp_1" || !s.Rotation.NextRotationAt.Equal(want) {
		t.Fatalf("rotation after rotate: %+v", s.Rotation)
	}
	h.do("GET", "/v1/rotation/due?within_hours=0", rootTok, nil).want(t, 200).decode(t, &due)
	if len(due.Data) != 1 || due.Data[0].SecretPath != "other/due" {
		t.Fatalf("after rotate: %+v", due.Data)
	}
}
