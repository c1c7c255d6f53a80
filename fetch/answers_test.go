package fetch

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/internal/tlstest"
)

// Hostile lease and certificate answers give clear errors that name the
// field and quote no value.
func TestHostileAnswers(t *testing.T) {
	const secret = "pw-SECRET"
	var body string
	c := hostileClient(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }, nil)
	lease := func(fields string) string {
		return `{"engine":"e","role":"r","data":{"password":"` + secret + `"}` + fields + `}`
	}
	for _, tt := range []struct{ body, want string }{
		{lease(`,"lease_id":"dyn_1","lease_duration":-5`), `lease "dyn_1": decode answer: negative lease_duration -5`},
		{lease(`,"lease_id":"dyn_1","lease_duration":9223372037`), "lease_duration 9223372037 out of range"},
		{lease(`,"lease_duration":60`), "lease without lease_id"},
		{lease(`,"lease_id":"dyn_1","lease_duration":1e300`), `lease "dyn_1": decode answer: field "lease_duration": want int64`},
		{`{"lease_id":"dyn_1","lease_duration":60,"data":{"password":"` + secret + `"`, "decode answer: invalid JSON"},
		{lease(`,"lease_id":"d","expires_at":"2026-01-02T00:00:00Z","max_expires_at":"2026-01-01T00:00:00Z"`),
			"max_expires_at 2026-01-01T00:00:00Z before expires_at 2026-01-02T00:00:00Z"},
	} {
		body = tt.body
		l, err := c.Generate(ctxLimit(t), "e", "r", "")
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("generate answering %s: %v, want %q", tt.body, err, tt.want)
		}
		// A lease with an id is handed back, id only, for its owner to revoke
		// (not when the answer is not even JSON: its id is not known).
		hasID := strings.Contains(tt.body, `"lease_id"`) && !strings.Contains(tt.want, "invalid JSON")
		switch {
		case hasID && (l == nil || l.LeaseID == "" || l.Data != nil):
			t.Errorf("generate answering %s: lease %+v, want its id alone", tt.body, l)
		case !hasID && l != nil:
			t.Errorf("generate answering %s: lease %+v without an id", tt.body, l)
		}
	}
	body = `{"lease_duration":-1}`
	if _, err := c.Renew(ctxLimit(t), "dyn_1", ""); err == nil || !strings.Contains(err.Error(), `renew lease "dyn_1": decode answer: negative lease_duration`) {
		t.Errorf("renew: %v", err)
	}
	if _, err := c.LookupLease(ctxLimit(t), "dyn_1"); err == nil || !strings.Contains(err.Error(), "negative lease_duration") {
		t.Errorf("look up: %v", err)
	}
	body = `{"lease_duration":60}` // renew and look-up answers may leave the id out
	if _, err := c.Renew(ctxLimit(t), "dyn_1", ""); err != nil {
		t.Errorf("renew without lease_id in the answer: %v", err)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"private_key_pem":"` + secret + `","expires_at":"2026-01-01T00:00:00Z"}`, "certificate without certificate_pem"},
		{`{"certificate_pem":"C","expires_at":"2026-01-01T00:00:00Z"}`, "certificate without private_key_pem"},
		{`{"certificate_pem":"C","private_key_pem":"` + secret + `"}`, "certificate without expires_at"},
	} {
		body = tt.body
		_, err := c.Issue(ctxLimit(t), "svc", IssueRequest{CommonName: "a.svc"})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("issue answering %s: %v, want %q", tt.body, err, tt.want)
		}
	}
}

// A certificate and a key that are not a pair are refused, the error
// quoting neither.
func TestCheckCertPair(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	a, b := ca.Issue(t, "a.example.com", tlstest.Options{}), ca.Issue(t, "b.example.com", tlstest.Options{})
	exp := time.Now().Add(time.Hour)
	if err := checkCert(&Cert{CertificatePEM: string(a.CertPEM), PrivateKeyPEM: string(a.KeyPEM), ExpiresAt: exp}); err != nil {
		t.Fatalf("a pair refused: %v", err)
	}
	err := checkCert(&Cert{CertificatePEM: string(a.CertPEM), PrivateKeyPEM: string(b.KeyPEM), ExpiresAt: exp})
	if err == nil || !strings.Contains(err.Error(), "not a pair") {
		t.Fatalf("mismatched pair: %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(b.KeyPEM[30:60])) {
		t.Errorf("the error quotes the key: %v", err)
	}
}
