package devserver

import (
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// acmeTestSeed adds ACME accounts and a client that may use one of them.
func acmeTestSeed() *Seed {
	s := testSeed()
	s.Clients = append(s.Clients, SeedClient{ClientID: "edge", ClientSecret: "edge-secret", Policies: []string{"edge"}})
	s.Policies["edge"] = []SeedPolicyRule{{PathPattern: "acme/le", Permissions: []string{"acme"}}}
	s.ACME = SeedACME{Accounts: map[string]SeedACMEAccount{
		"le":    {Provider: "letsencrypt", Environment: "production", Email: "certs@example.com", CertTTL: "90h", FailDomains: []string{"Broken.example.com"}},
		"other": {},
	}}
	return s
}

func (h *harness) accounts(token string) []fetch.ACMEAccount {
	h.t.Helper()
	var l fetch.ACMEAccountList
	h.do("GET", "/v1/acme/accounts", token, nil).want(h.t, 200).decode(h.t, &l)
	return l.Data
}

func (h *harness) order(id string) *fetch.ACMEOrder {
	h.t.Helper()
	var o fetch.ACMEOrder
	h.do("GET", "/v1/acme/orders/"+id, rootTok, nil).want(h.t, 200).decode(h.t, &o)
	return &o
}

func (h *harness) placeOrder(body map[string]any) *fetch.ACMEOrder {
	h.t.Helper()
	var o fetch.ACMEOrder
	h.do("POST", "/v1/acme/orders", rootTok, body).want(h.t, 201).decode(h.t, &o)
	return &o
}

func TestACMEAccounts(t *testing.T) {
	h := newHarness(t, acmeTestSeed())
	all := h.accounts(rootTok)
	if len(all) != 2 || all[0].Name != "le" || all[0].Provider != "letsencrypt" || all[0].Environment != "production" ||
		all[0].Email != "certs@example.com" || !strings.HasPrefix(all[0].ID, "acct_") || all[1].Provider != "letsencrypt" || all[1].Environment != "staging" {
		t.Fatalf("accounts %+v", all)
	}
	// The id is the same across restarts (a function of the name).
	if again := newHarness(t, acmeTestSeed()).accounts(rootTok); again[0].ID != all[0].ID {
		t.Errorf("account id %s, then %s", all[0].ID, again[0].ID)
	}
	edge := h.token("edge", "edge-secret")
	if mine := h.accounts(edge); len(mine) != 1 || mine[0].Name != "le" {
		t.Errorf("edge sees %+v", mine)
	}
	if none := h.accounts(h.token("app", "app-secret")); len(none) != 0 {
		t.Errorf("app sees %+v", none)
	}
	// Orders of an account it may not use: 403 naming acme/ACCOUNT.
	e := h.do("POST", "/v1/acme/orders", edge, map[string]any{"account_id": all[1].ID, "domains": []string{"a.example.com"}}).
		wantErr(t, 403, "access_denied")
	if e.Details["path"] != "acme/other" || e.Details["permission"] != "acme" {
		t.Errorf("details %v", e.Details)
	}
	h.do("GET", "/v1/acme/orders?account_id="+all[1].ID, edge, nil).wantErr(t, 403, "access_denied")
	h.do("GET", "/v1/acme/orders?account_id=acct_nope", edge, nil).wantErr(t, 404, "not_found")
}

func TestACMESeedErrors(t *testing.T) {
	for _, tc := range []struct{ seed, want string }{
		{`{"acme": {"accounts": {"le": {"cert_ttl": "soon"}}}}`, "acme.accounts.le.cert_ttl"},
		{`{"acme": {"accounts": {"le": {"fail_domains": ["a b"]}}}}`, "acme.accounts.le.fail_domains[0]"},
		{`{"acme": {"accounts": {"l e": {}}}}`, "acme.accounts.l e"},
		{`{"acme": {"accounts": {"le": {"email_address": "x"}}}}`, "email_address"},
	} {
		_, err := ParseSeed([]byte(tc.seed), "seed.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.seed, err, tc.want)
		}
	}
	if _, err := New(Options{ACMEDelay: -time.Second}); err == nil {
		t.Error("a negative ACME delay accepted")
	}
}

// An order goes pending → processing → valid on the server's clock; its
// certificate verifies to the ACME CA for every name; it is renewed at two
// thirds of its life with an acme.renewed event.
func TestACMEOrderLifecycle(t *testing.T) {
	h := newHarness(t, acmeTestSeed(), func(o *Options) { o.ACMEDelay = 10 * time.Second })
	acct := h.accounts(rootTok)[0]
	edge := h.token("edge", "edge-secret")
	stream := h.events("?prefix=app/", edge)
	o := h.placeOrder(map[string]any{"account_id": acct.ID, "domains": []string{"B.example.com", "a.example.com", "b.example.com"},
		"challenge_type": "dns-01", "auto_renew": true})
	if o.Status != "pending" || o.Certificate != nil || o.Error != nil || o.RenewedAt != nil || !o.AutoRenew || o.ChallengeType != "dns-01" ||
		strings.Join(o.Domains, ",") != "b.example.com,a.example.com" || !strings.HasPrefix(o.ID, "ord_") {
		t.Fatalf("created %+v", o)
	}
	h.clock.Advance(5 * time.Second)
	if got := h.order(o.ID); got.Status != "processing" {
		t.Fatalf("after half the delay: %s", got.Status)
	}
	h.clock.Advance(5 * time.Second)
	got := h.order(o.ID)
	if got.Status != "valid" || got.Certificate == nil || got.RenewedAt != nil {
		t.Fatalf("after the delay: %+v", got)
	}
	c := got.Certificate
	if life := c.ExpiresAt.Sub(c.IssuedAt); life != 90*time.Hour {
		t.Errorf("certificate life %v, want the account's cert_ttl", life)
	}
	ca := h.do("GET", "/v1/pki/cas/acme/pem", rootTok, nil).want(t, 200)
	if string(ca.body) != c.CAChain[0] || h.do("GET", "/v1/pki/cas/"+c.CAID+"/pem", rootTok, nil).want(t, 200).status != 200 {
		t.Fatal("the ACME CA is not the chain's")
	}
	verifyACME(t, c, string(ca.body), h.clock.Now(), "a.example.com", "b.example.com")
	// Listed without the certificate; by status.
	var list fetch.ACMEOrderList
	h.do("GET", "/v1/acme/orders?account_id="+acct.ID+"&status=valid", edge, nil).want(t, 200).decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != o.ID || list.Data[0].Certificate != nil {
		t.Fatalf("list %+v", list)
	}
	h.do("GET", "/v1/acme/orders?status=pending", edge, nil).want(t, 200).decode(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("pending list %+v", list)
	}
	// Renewal at two thirds of 90h: 60h after issue.
	h.clock.Advance(59 * time.Hour)
	if again := h.order(o.ID); again.Certificate.SerialNumber != c.SerialNumber {
		t.Fatal("renewed before two thirds of its life")
	}
	h.clock.Advance(time.Hour)
	renewed := h.order(o.ID)
	if renewed.Status != "valid" || renewed.RenewedAt == nil || renewed.Certificate.SerialNumber == c.SerialNumber ||
		!renewed.Certificate.ExpiresAt.After(c.ExpiresAt) {
		t.Fatalf("renewed %+v", renewed)
	}
	ev := stream.next()
	if ev.typ != fetch.EventACMERenewed || ev.data.OrderID != o.ID || ev.data.AccountID != acct.ID || ev.data.At.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	// The dev knob renews at once.
	var forced fetch.ACMEOrder
	h.do("POST", "/v1/dev/acme/orders/"+o.ID+"/renew", rootTok, nil).want(t, 200).decode(t, &forced)
	if forced.Certificate.SerialNumber == renewed.Certificate.SerialNumber {
		t.Fatal("dev renew gave the same certificate")
	}
	if ev := stream.next(); ev.typ != fetch.EventACMERenewed {
		t.Fatalf("event %+v", ev)
	}
	if n := h.s.ACMEOrders("le"); n != 1 {
		t.Errorf("ACMEOrders = %d", n)
	}
	keys := strings.Join(h.s.SecretValues(), "\n")
	for _, k := range []string{c.PrivateKeyPEM, renewed.Certificate.PrivateKeyPEM, forced.Certificate.PrivateKeyPEM} {
		if !strings.Contains(keys, k) {
			t.Error("SecretValues misses an ACME private key")
		}
	}
}

func verifyACME(t *testing.T, c *fetch.Cert, caPEM string, now time.Time, names ...string) {
	t.Helper()
	b, _ := pem.Decode([]byte(c.CertificatePEM))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(caPEM))
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: n, CurrentTime: now}); err != nil {
			t.Errorf("verify %s: %v", n, err)
		}
	}
	kb, _ := pem.Decode([]byte(c.PrivateKeyPEM))
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatal("key is not PKCS#8 PEM")
	}
	if _, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		t.Fatal(err)
	}
}

func TestACMEOrderInvalidAndValidation(t *testing.T) {
	h := newHarness(t, acmeTestSeed())
	acct := h.accounts(rootTok)[0]
	o := h.placeOrder(map[string]any{"account_id": acct.ID, "domains": []string{"ok.example.com", "broken.example.com"}})
	if o.ChallengeType != "http-01" || o.AutoRenew {
		t.Errorf("defaults: %+v", o)
	}
	h.clock.Advance(DefaultACMEDelay)
	got := h.order(o.ID)
	if got.Status != "invalid" || got.Error == nil || got.Certificate != nil ||
		!strings.Contains(got.Error.Message, "http-01 challenge for broken.example.com failed") {
		t.Fatalf("order %+v (error %+v)", got, got.Error)
	}
	for _, tc := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"domains": []string{"a.example.com"}}, "validation_error"},
		{map[string]any{"account_id": "acct_nope", "domains": []string{"a.example.com"}}, "not_found"},
		{map[string]any{"account_id": acct.ID}, "validation_error"},
		{map[string]any{"account_id": acct.ID, "domains": []string{"a b"}}, "validation_error"},
		{map[string]any{"account_id": acct.ID, "domains": []string{"*.example.com"}}, "validation_error"},
		{map[string]any{"account_id": acct.ID, "domains": []string{"a.example.com"}, "challenge_type": "smtp-01"}, "validation_error"},
		{map[string]any{"account_id": acct.ID, "domains": []string{"a.example.com"}, "autorenew": true}, "validation_error"},
	} {
		status := 400
		if tc.code == "not_found" {
			status = 404
		}
		h.do("POST", "/v1/acme/orders", rootTok, tc.body).wantErr(t, status, tc.code)
	}
	h.placeOrder(map[string]any{"account_id": acct.ID, "domains": []string{"*.example.com"}, "challenge_type": "dns-01"})
	h.do("GET", "/v1/acme/orders?status=done", rootTok, nil).wantErr(t, 400, "validation_error")
	h.do("GET", "/v1/acme/orders/ord_nope", rootTok, nil).wantErr(t, 404, "not_found")
	h.do("GET", "/v1/acme/orders/"+o.ID, h.token("app", "app-secret"), nil).wantErr(t, 403, "access_denied")
	h.do("POST", "/v1/dev/acme/orders/"+o.ID+"/renew", rootTok, nil).wantErr(t, 409, "conflict")
	h.do("POST", "/v1/dev/acme/orders/"+o.ID+"/renew", h.token("edge", "edge-secret"), nil).wantErr(t, 403, "access_denied")
}

// Orders and the ACME CA survive a restart with a data file; an order
// still pending moves on after it.
func TestACMEPersistence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	withData := func(o *Options) { o.DataFile = file }
	h1 := newHarness(t, acmeTestSeed(), withData)
	acct := h1.accounts(rootTok)[0]
	valid := h1.placeOrder(map[string]any{"account_id": acct.ID, "domains": []string{"a.example.com"}, "auto_renew": true})
	h1.clock.Advance(DefaultACMEDelay)
	v1 := h1.order(valid.ID)
	pending := h1.placeOrder(map[string]any{"account_id": acct.ID, "domains": []string{"b.example.com"}})
	ca1 := h1.s.ACMECAPEM()
	h1.s.Close()

	h2 := newHarness(t, acmeTestSeed(), withData)
	if h2.s.ACMECAPEM() != ca1 {
		t.Error("the ACME CA changed across the restart")
	}
	v2 := h2.order(valid.ID)
	if v2.Status != "valid" || v2.Certificate.SerialNumber != v1.Certificate.SerialNumber {
		t.Errorf("valid order after restart: %+v", v2)
	}
	h2.clock.Advance(2 * DefaultACMEDelay) // its clock starts where the first one did
	if p := h2.order(pending.ID); p.Status != "valid" {
		t.Errorf("pending order after restart: %s", p.Status)
	}
	if n := h2.s.ACMEOrders(""); n != 2 {
		t.Errorf("%d orders", n)
	}
	// A seed without the account drops its orders.
	seed := acmeTestSeed()
	delete(seed.ACME.Accounts, "le")
	h3 := newHarness(t, seed, withData)
	if n := h3.s.ACMEOrders(""); n != 0 {
		t.Errorf("%d orders of a removed account", n)
	}
}
