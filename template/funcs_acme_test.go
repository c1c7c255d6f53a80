package template

import (
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestACMECertFunc(t *testing.T) {
	snap := testSnapshot(t)
	src := must(fetch.ACMESource("le", []string{"b.example.com", "a.example.com"}, ""))
	at := time.Date(2027, 2, 23, 12, 0, 0, 0, time.UTC)
	snap.Certs[src] = &fetch.Cert{SerialNumber: "0a:0b", CertificatePEM: "ACME CERT\n", PrivateKeyPEM: "ACME KEY\n",
		CAChain: []string{"ACME CA\n"}, CAID: "acme", ExpiresAt: at, OrderID: "ord_1"}
	// Any order and case of the names is the same order, and the same
	// source as the env reference.
	out, _, err := render(t, snap, `{{ with acmeCert "le" "domains=A.example.com,b.example.com" }}{{ .Cert }}{{ .Key }}{{ .CA }}{{ len .CAChain }} {{ .Serial }} {{ .ExpiresAt.Unix }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ACME CERT\nACME KEY\nACME CA\n1 0a:0b 1803384000"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	ref, _, err := fetch.ParseRef("scaivault+acme://le?domains=b.example.com,a.example.com&as=file#private_key_pem")
	if err != nil || ref.Source() != src {
		t.Errorf("env reference source %v, %v; want %v", ref.Source(), err, src)
	}
	// Not fetched yet: a miss, not an error (the discovery pass fetches it).
	_, missing, err := render(t, snap, `{{ (acmeCert "le" "domains=c.example.com" "challenge=dns-01").Cert }}`)
	want := must(fetch.ACMESource("le", []string{"c.example.com"}, "dns-01"))
	if err != nil || len(missing) != 1 || missing[0] != want || !missing[0].Creates() {
		t.Errorf("missing %v, %v; want %v", missing, err, want)
	}
	for _, tc := range []struct{ text, want string }{
		{`{{ acmeCert "le" }}`, "le: missing option domains=a.example.com,b.example.com"},
		{`{{ acmeCert "le" "domains=a.example.com" "common_name=x" }}`, `unknown option "common_name" (want domains=..., challenge=...)`},
		{`{{ acmeCert "le" "domains=a b" }}`, `acme le: domain "a b": character ' ' is not allowed`},
		{`{{ acmeCert "le" "domains=a.example.com" "challenge=dns" }}`, `unknown challenge "dns"`},
		{`{{ acmeCert "l/e" "domains=a.example.com" }}`, `acme account "l/e"`},
	} {
		if _, _, err := render(t, snap, tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.text, err, tc.want)
		}
	}
}
