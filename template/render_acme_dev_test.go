package template_test

import (
	"context"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

const createOrderRoute = "POST /v1/acme/orders"

// Two templates and an env reference name one set of domains in three
// orders: one ACME order serves them all.
func TestACMECertSharedWithEnvReference(t *testing.T) {
	env := startDev(t, devserver.DefaultSeed())
	specs := specsIn(t,
		"a.tmpl", `{{ (acmeCert "letsencrypt-staging" "domains=www.example.com,example.com").Serial }}`,
		"b.tmpl", `{{ (acmeCert "letsencrypt-staging" "domains=example.com,WWW.example.com").Serial }}`)
	set, err := template.Parse(specs, template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, snap, err := set.RenderAll(context.Background(), env.resolver.Resolve, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := env.srv.Requests(createOrderRoute); n != 1 {
		t.Errorf("%d orders created, want 1", n)
	}
	if string(out[0].Data) != string(out[1].Data) || len(out[0].Data) == 0 {
		t.Errorf("outputs %q and %q should hold one certificate", out[0].Data, out[1].Data)
	}
	ref, _, err := fetch.ParseRef("scaivault+acme://letsencrypt-staging?domains=example.com,www.example.com#certificate_pem")
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0].Used) != 1 || out[0].Used[0] != ref.Source() || out[1].Used[0] != ref.Source() {
		t.Errorf("used %v and %v, want %v", out[0].Used, out[1].Used, ref.Source())
	}
	if c := snap.Certs[ref.Source()]; c == nil || c.OrderID == "" || c.SerialNumber != string(out[0].Data) {
		t.Errorf("snapshot certificate %+v", c)
	}
}
