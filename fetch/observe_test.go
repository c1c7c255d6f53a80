package fetch_test

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

// TestObserverNamesRouteTemplates checks that Config.Observer sees
// every attempt with the route's template and the status, never a path,
// engine, role or lease id (they may come from a secret), and that a
// client derived with WithRetry reports too.
func TestObserverNamesRouteTemplates(t *testing.T) {
	h := newHarness(t, "")
	ctx := ctxT(t)
	obs := &observer{}
	c := h.client(t, func(cfg *fetch.Config) { cfg.Observer = obs })
	if _, err := c.Read(ctx, "app/db", fetch.ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, "app/missing", fetch.ReadOptions{}); err == nil {
		t.Fatal("read of a missing secret succeeded")
	}
	if _, _, err := c.BatchRead(ctx, []string{"app/db"}); err != nil {
		t.Fatal(err)
	}
	l, err := c.Generate(ctx, "support-db", "readonly", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Renew(ctx, l.LeaseID, ""); err != nil {
		t.Fatal(err)
	}
	d, err := c.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Revoke(ctx, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	h.srv.SetFaults(devserver.Faults{Next: 1})
	if _, err := d.Read(ctx, "app/db", fetch.ReadOptions{}); err == nil {
		t.Fatal("injected fault not seen")
	}
	want := []string{
		"GET /v1/secrets/{path} 200",
		"GET /v1/secrets/{path} 404",
		"POST /v1/secrets/batch-read 200",
		"POST /v1/dynamic/{engine}/creds/{role} 201",
		"POST /v1/dynamic/leases/{lease_id}/renew 200",
		"DELETE /v1/dynamic/leases/{lease_id} 204",
		"GET /v1/secrets/{path} 503",
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	seen := obs.seen
	for _, w := range want {
		if !slices.ContainsFunc(seen, func(s string) bool { return sameCall(s, w) }) {
			t.Errorf("no %q among %q", w, seen)
		}
	}
	for _, s := range seen {
		for _, leak := range []string{"app/db", "app/missing", "support-db", "readonly", l.LeaseID} {
			if strings.Contains(s, leak) {
				t.Errorf("the observer saw %q, which names %q", s, leak)
			}
		}
	}
}

// sameCall compares "METHOD ROUTE STATUS", allowing 200 for 201/204.
func sameCall(got, want string) bool {
	if got == want {
		return true
	}
	g, w := strings.Fields(got), strings.Fields(want)
	return len(g) == 3 && len(w) == 3 && g[0] == w[0] && g[1] == w[1] && g[2][0] == '2' && w[2][0] == '2'
}

type observer struct {
	mu   sync.Mutex
	seen []string
}

func (o *observer) ObserveResponse(method, route string, status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, method+" "+route+" "+strconv.Itoa(status))
}
