package fetch_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

// ACME against the dev server: reuse before creation, any order of the
// names, waiting for a pending order, failed orders, permissions.

const acmeSeed = `{
  "root_token": "root-SECRET-acme-0001",
  "clients": [{"client_id": "edge", "client_secret": "edge-SECRET-0002", "policies": ["edge"]},
              {"client_id": "none", "client_secret": "none-SECRET-0003", "policies": ["nothing"]}],
  "policies": {"edge": [{"path_pattern": "acme/le", "permissions": ["acme"]}],
               "nothing": [{"path_pattern": "app/**", "permissions": ["read"]}]},
  "acme": {"accounts": {
    "le": {"provider": "letsencrypt", "environment": "production", "email": "certs@example.com",
           "cert_ttl": "2160h", "fail_domains": ["broken.example.com"]},
    "other": {"cert_ttl": "24h"}}}
}`

// newACMEHarness is newHarness with the given ACME delay, counting order
// creations.
func newACMEHarness(t *testing.T, delay time.Duration) (*harness, *atomic.Int64) {
	t.Helper()
	seed, err := devserver.ParseSeed([]byte(acmeSeed), "acme-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed, ACMEDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	noteSeedSecrets(seed)
	noteSecret(srv.RootToken())
	h := &harness{srv: srv}
	h.hs = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		srv.Close()
		h.hs.Close()
	})
	creates := new(atomic.Int64)
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/acme/orders" {
			creates.Add(1)
		}
		return false
	})
	return h, creates
}

func domains(t *testing.T, names ...string) []string {
	t.Helper()
	d, err := fetch.CanonicalDomains(names)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func noteOrder(o *fetch.ACMEOrder) {
	if o != nil && o.Certificate != nil {
		noteSecret(o.Certificate.PrivateKeyPEM)
	}
}

func TestObtainACMECreatesOnceAndReuses(t *testing.T) {
	h, creates := newACMEHarness(t, 50*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	want := domains(t, "b.example.com", "a.example.com")
	o, created, err := c.ObtainACME(ctx, "le", want, fetch.ChallengeDNS01)
	noteOrder(o)
	if err != nil || !created {
		t.Fatalf("first obtain: created %v, %v", created, err)
	}
	if o.Status != fetch.OrderValid || !o.AutoRenew || o.ChallengeType != fetch.ChallengeDNS01 {
		t.Fatalf("order %+v", o)
	}
	// The chain verifies to the dev ACME CA that GET /v1/pki/cas/acme/pem serves.
	caPEM, err := c.CAPEM(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, o.Certificate.CertificatePEM)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(caPEM))
	for _, name := range want {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if fetch.PEMBundle(o.Certificate.CAChain) != fetch.PEMBundle([]string{caPEM}) {
		t.Error("ca_chain is not the ACME CA")
	}
	// 20 more, the names in another order and case: the same order.
	for i := range 20 {
		names := []string{"A.example.com", "b.example.com."}
		if i%2 == 1 {
			names = []string{"b.example.com", "a.example.com", "a.example.com"}
		}
		again, created, err := c.ObtainACME(ctx, "le", domains(t, names...), "")
		noteOrder(again)
		if err != nil || created || again.ID != o.ID || again.Certificate.SerialNumber != o.Certificate.SerialNumber {
			t.Fatalf("obtain %d: %v created %v, order %v", i, err, created, again)
		}
	}
	if n := creates.Load(); n != 1 || h.srv.ACMEOrders("le") != 1 {
		t.Errorf("%d orders created (server holds %d), want 1", n, h.srv.ACMEOrders("le"))
	}
	// Another set of names is another order.
	if o2, created, err := c.ObtainACME(ctx, "le", domains(t, "a.example.com"), ""); err != nil || !created || o2.ID == o.ID {
		t.Fatalf("subset: created %v, %v", created, err)
	} else {
		noteOrder(o2)
	}
}

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Concurrent obtains for one set of names (two references resolved at
// once) place one order; the second waits for it.
func TestObtainACMEConcurrentOneOrder(t *testing.T) {
	h, creates := newACMEHarness(t, 300*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	ids := make([]string, 5)
	for i := range ids {
		wg.Go(func() {
			challenge := ""
			if i%2 == 0 {
				challenge = fetch.ChallengeDNS01
			}
			o, _, err := c.ObtainACME(ctx, "le", domains(t, "c.example.com"), challenge)
			noteOrder(o)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = o.ID
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Errorf("orders %q", ids)
		}
	}
	if n := creates.Load(); n != 1 {
		t.Errorf("%d orders created, want 1", n)
	}
}

// A pending order placed by someone else is waited for, not doubled.
func TestObtainACMEWaitsForPending(t *testing.T) {
	h, creates := newACMEHarness(t, 500*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	accts, err := c.ACMEAccounts(ctx)
	if err != nil || len(accts) != 2 {
		t.Fatalf("accounts %+v, %v", accts, err)
	}
	placed, err := c.CreateACMEOrder(ctx, fetch.ACMEOrderRequest{AccountID: accts[0].ID, Domains: []string{"d.example.com"}, AutoRenew: true})
	if err != nil || placed.Status != fetch.OrderPending || placed.Certificate != nil {
		t.Fatalf("create: %+v, %v", placed, err)
	}
	o, created, err := c.ObtainACME(ctx, "le", domains(t, "d.example.com"), "")
	noteOrder(o)
	if err != nil || created || o.ID != placed.ID || o.Status != fetch.OrderValid {
		t.Fatalf("obtain: %+v created %v, %v", o, created, err)
	}
	if creates.Load() != 1 {
		t.Errorf("%d creates", creates.Load())
	}
	// A context that ends first: ErrOrderNotReady, and nothing more placed.
	if _, err := c.CreateACMEOrder(ctx, fetch.ACMEOrderRequest{AccountID: accts[0].ID, Domains: []string{"e.example.com"}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, _, err = c.ObtainACME(short, "le", domains(t, "e.example.com"), "")
	mustFail(t, err, fetch.ErrOrderNotReady)
	if !strings.Contains(err.Error(), "e.example.com") || creates.Load() != 2 {
		t.Errorf("err %v, %d creates", err, creates.Load())
	}
}

// An order for a failing domain is invalid: the error names the domains
// and the server's reason; a second attempt soon after places no order.
func TestObtainACMEInvalid(t *testing.T) {
	h, creates := newACMEHarness(t, 50*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	want := domains(t, "ok.example.com", "broken.example.com")
	_, _, err := c.ObtainACME(ctx, "le", want, fetch.ChallengeDNS01)
	mustFail(t, err, fetch.ErrOrderInvalid)
	var oe *fetch.ACMEOrderError
	if !errors.As(err, &oe) || oe.Hold != 0 {
		t.Fatalf("err %#v", err)
	}
	for _, s := range []string{"broken.example.com, ok.example.com", "dns-01 challenge for broken.example.com failed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if fetch.IsTemporary(err) {
		t.Error("an invalid order is temporary")
	}
	_, _, err = c.ObtainACME(ctx, "le", want, "")
	mustFail(t, err, fetch.ErrOrderInvalid)
	if !errors.As(err, &oe) || oe.Hold != fetch.ACMERetryInvalidAfter || !strings.Contains(err.Error(), "rate limits") {
		t.Errorf("second attempt: %v", err)
	}
	if creates.Load() != 1 {
		t.Errorf("%d orders created, want 1", creates.Load())
	}
}

func TestObtainACMEPermissions(t *testing.T) {
	h, creates := newACMEHarness(t, 50*time.Millisecond)
	ctx := ctxT(t)
	edge := h.client(t, asClient("edge", "edge-SECRET-0002"))
	o, _, err := edge.ObtainACME(ctx, "le", domains(t, "f.example.com"), "")
	noteOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	// The other account is not this identity's: not even listed.
	_, _, err = edge.ObtainACME(ctx, "other", domains(t, "f.example.com"), "")
	mustFail(t, err, fetch.ErrNotFound)
	if !strings.Contains(err.Error(), `no ACME account "other"`) {
		t.Errorf("error %v", err)
	}
	none := h.client(t, asClient("none", "none-SECRET-0003"))
	_, err = none.ACMEOrder(ctx, o.ID)
	mustFail(t, err, fetch.ErrAccessDenied)
	_, _, err = none.ObtainACME(ctx, "le", domains(t, "f.example.com"), "")
	mustFail(t, err, fetch.ErrNotFound)
	if creates.Load() != 1 {
		t.Errorf("%d creates", creates.Load())
	}
	d, err := none.TestPolicy(ctx, fetch.PolicyTestRequest{Path: "acme/le", Permission: "acme"})
	if err != nil || d.Allowed {
		t.Errorf("policy test: %+v, %v", d, err)
	}
}

// Renewal: the order stays valid with a new certificate and renewed_at,
// and an acme.renewed event names the order.
func TestACMERenewalEvent(t *testing.T) {
	h, _ := newACMEHarness(t, 50*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	o, _, err := c.ObtainACME(ctx, "le", domains(t, "g.example.com"), "")
	noteOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan fetch.Event, 8)
	connected := make(chan struct{}, 1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.Events(sctx, fetch.EventsOptions{Prefix: "app/", OnConnect: func() { connected <- struct{}{} }}, func(ev fetch.Event) { evs <- ev })
	<-connected
	if n := h.srv.RenewACMEOrders("le"); n != 1 {
		t.Fatalf("renewed %d", n)
	}
	ev := <-evs
	if ev.Type != fetch.EventACMERenewed || ev.Data.OrderID != o.ID || ev.Data.AccountID != o.AccountID {
		t.Fatalf("event %+v", ev)
	}
	again, err := c.ACMEOrder(ctx, o.ID)
	noteOrder(again)
	if err != nil || again.Status != fetch.OrderValid || again.RenewedAt == nil || again.Certificate.SerialNumber == o.Certificate.SerialNumber {
		t.Fatalf("after renewal: %+v, %v", again, err)
	}
	list, err := c.ACMEOrders(ctx, o.AccountID, fetch.OrderValid)
	if err != nil || len(list) != 1 || list[0].Certificate != nil {
		t.Fatalf("list: %+v, %v", list, err)
	}
}

// A hostile answer: a valid order without a certificate, an unknown
// status, an id that is not a name, a body past the limit.
func TestACMEHostileAnswers(t *testing.T) {
	h, _ := newACMEHarness(t, 50*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	for _, body := range []string{
		`{"id":"ord_1","status":"valid","domains":["a.example.com"],"certificate":null}`,
		`{"id":"ord_1","status":"valid","domains":["a.example.com"],"certificate":{"certificate_pem":"C"}}`,
		`{"id":"ord_1","status":"exploded"}`,
		`{"id":"../x","status":"pending"}`,
		`{"id":"ord_2","status":"pending"}`,
	} {
		h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
			return true
		})
		o, err := c.ACMEOrder(ctx, "ord_1")
		noteErr(err)
		if err == nil {
			t.Errorf("%s: accepted %+v", body, o)
		}
	}
}

// A valid order placed minutes ago whose certificate has ended by our
// clock (a clock ahead, a stale answer): no new order at every start, an
// error that says to check the clock.
func TestObtainACMEEndedCertificateNoNewOrder(t *testing.T) {
	h, creates := newACMEHarness(t, 50*time.Millisecond)
	c := h.client(t, nil)
	ctx := ctxT(t)
	names := domains(t, "clock.example.com")
	o, _, err := c.ObtainACME(ctx, "le", names, "")
	noteOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	ended := *o
	cert := *o.Certificate
	cert.ExpiresAt = time.Now().Add(-time.Minute)
	ended.Certificate = &cert
	body, err := json.Marshal(&ended)
	if err != nil {
		t.Fatal(err)
	}
	h.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/acme/orders" {
			creates.Add(1)
		}
		if r.Method == http.MethodGet && r.URL.Path == "/v1/acme/orders/"+o.ID {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
			return true
		}
		return false
	})
	for range 3 {
		_, _, err := c.ObtainACME(ctx, "le", names, "")
		noteErr(err)
		if err == nil || !strings.Contains(err.Error(), "check this machine's clock") {
			t.Fatalf("obtain with an ended certificate: %v", err)
		}
	}
	if n := creates.Load(); n != 1 {
		t.Errorf("%d orders placed, want 1", n)
	}
}
