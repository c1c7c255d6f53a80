package run

import (
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// The values a template reads of an ACME certificate are concealed under
// the reference's name, the key among them.
func TestSourceValuesACME(t *testing.T) {
	src, err := fetch.ACMESource("le", []string{"b.example.com", "a.example.com"}, "dns-01")
	if err != nil {
		t.Fatal(err)
	}
	snap := fetch.NewSnapshot()
	snap.Certs[src] = &fetch.Cert{SerialNumber: "0a:0b", CertificatePEM: "CERT-PEM\n", PrivateKeyPEM: "KEY-PEM\n", CAChain: []string{"CA-PEM"}}
	got := map[string]string{}
	for _, v := range sourceValues(snap, src) {
		got[v.Name] = string(v.Value)
	}
	ref := "scaivault+acme://le?challenge=dns-01&domains=a.example.com%2Cb.example.com#"
	for field, want := range map[string]string{"certificate_pem": "CERT-PEM\n", "private_key_pem": "KEY-PEM\n", "ca_chain": "CA-PEM\n", "serial_number": "0a:0b"} {
		if got[ref+field] != want {
			t.Errorf("%s%s = %q, want %q (all: %v)", ref, field, got[ref+field], want, keysOf(got))
		}
	}
}

func keysOf(m map[string]string) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, " ")
}
