package fetch

import (
	"reflect"
	"strconv"
	"testing"
)

func TestParseACMERef(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"scaivault+acme://le?domains=a.example.com", Ref{Kind: ACME, Account: "le", Domains: []string{"a.example.com"}}},
		{"scaivault+acme://letsencrypt-production?domains=b.example.com,A.example.com,a.example.com.&challenge=dns-01#certificate_pem",
			Ref{Kind: ACME, Account: "letsencrypt-production", Domains: []string{"a.example.com", "b.example.com"}, Challenge: "dns-01", Key: "certificate_pem"}},
		{"scaivault+acme://le?as=file&domains=*.example.com,example.com&challenge=dns-01#private_key_pem",
			Ref{Kind: ACME, Account: "le", Domains: []string{"*.example.com", "example.com"}, Challenge: "dns-01", Key: "private_key_pem", AsFile: true}},
		{"scaivault+acme://le?domains=a.example.com%2Cb.example.com&challenge=http-01",
			Ref{Kind: ACME, Account: "le", Domains: []string{"a.example.com", "b.example.com"}, Challenge: "http-01"}},
	}
	for _, tt := range tests {
		ref, isRef, err := ParseRef(tt.in)
		if err != nil || !isRef {
			t.Errorf("ParseRef(%q): %v %v", tt.in, isRef, err)
			continue
		}
		tt.want.Raw = tt.in
		if !reflect.DeepEqual(ref, tt.want) {
			t.Errorf("ParseRef(%q):\n got %+v\nwant %+v", tt.in, ref, tt.want)
		}
	}
}

func TestParseACMERefErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"scaivault+acme://le", "missing domains (want domains=a.example.com,b.example.com)"},
		{"scaivault+acme://le?domains=", `domain "": empty name`},
		{"scaivault+acme://le?domains=a.example.com,,b", `domain "": empty name`},
		{"scaivault+acme://a/b?domains=x.example.com", `path "a/b": want a single ACCOUNT name`},
		{"scaivault+acme://le?domains=a_b.example.com", `domain "a_b.example.com": character '_' is not allowed`},
		{"scaivault+acme://le?domains=-a.example.com", `domain "-a.example.com": a label starts or ends with '-'`},
		{"scaivault+acme://le?domains=a.*.example.com", `domain "a.*.example.com": character '*' is not allowed`},
		{"scaivault+acme://le?domains=*", `domain "*": character '*' is not allowed`},
		{"scaivault+acme://le?domains=a..example.com", `domain "a..example.com": empty or over-long label`},
		{"scaivault+acme://le?domains=a.example.com&challenge=dns", `unknown challenge "dns" (want http-01, dns-01, tls-alpn-01)`},
		{"scaivault+acme://le?domains=a.example.com#cert", `unknown certificate field "cert" (want one of certificate_pem, private_key_pem, ca_chain, serial_number, expires_at)`},
		{"scaivault+acme://le?domains=a.example.com&common_name=x", `unknown query parameter "common_name"`},
		{"scaivault+acme://l%20e?domains=a.example.com", `invalid path segment 1 "l e": character ' ' is not allowed (want [A-Za-z0-9._-])`},
		{"scaivault+acme://le?domains=example.com,*.example.com&challenge=http-01", `domain "*.example.com": a wildcard can only be validated with challenge=dns-01, not http-01`},
		{"scaivault+acme://le?domains=b%C3%BCcher.example", `domain "bücher.example": character 'ü' is not allowed (write an internationalized name in its xn-- form, as the CA takes it)`},
	}
	for _, tt := range tests {
		_, isRef, err := ParseRef(tt.in)
		want := "reference " + strconv.Quote(tt.in) + ": " + tt.want
		if !isRef || err == nil || err.Error() != want {
			t.Errorf("ParseRef(%q):\n got error %v\nwant error %s", tt.in, err, want)
		}
	}
	many := make([]string, MaxACMEDomains+1)
	for i := range many {
		many[i] = "n" + strconv.Itoa(i) + ".example.com"
	}
	if _, err := CanonicalDomains(many); err == nil {
		t.Error("101 domains accepted")
	}
}

func TestACMESource(t *testing.T) {
	same := []string{
		"scaivault+acme://le?domains=a.example.com,b.example.com#certificate_pem",
		"scaivault+acme://le?domains=B.example.com,a.example.com&as=file#private_key_pem",
		"scaivault+acme://le?domains=b.example.com,a.example.com,a.example.com",
	}
	first := mustRef(t, same[0]).Source()
	for _, s := range same[1:] {
		if got := mustRef(t, s).Source(); got != first {
			t.Errorf("Source(%q) = %+v, want %+v", s, got, first)
		}
	}
	for _, other := range []string{
		"scaivault+acme://le?domains=a.example.com",
		"scaivault+acme://other?domains=a.example.com,b.example.com",
		"scaivault+acme://le?domains=a.example.com,b.example.com&challenge=dns-01",
	} {
		if mustRef(t, other).Source() == first {
			t.Errorf("%q shares the source of %q", other, same[0])
		}
	}
	src, err := ACMESource("le", []string{"b.example.com", "A.example.com"}, "")
	if err != nil || src != first {
		t.Errorf("ACMESource = %+v, %v", src, err)
	}
	d, c := src.ACMEOrder()
	if !reflect.DeepEqual(d, []string{"a.example.com", "b.example.com"}) || c != "" {
		t.Errorf("ACMEOrder() = %q, %q", d, c)
	}
	if got, want := src.String(), "acme le domains=a.example.com,b.example.com"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	dns, _ := ACMESource("le", []string{"a.example.com"}, "dns-01")
	if got, want := dns.Describe(), "acme le domains=a.example.com challenge=dns-01"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if !src.Creates() || StaticSource("a", 0).Creates() || ListSource("a/").Creates() {
		t.Error("Creates")
	}
	for _, bad := range [][]string{{}, {"a b"}} {
		if _, err := ACMESource("le", bad, ""); err == nil {
			t.Errorf("ACMESource(%q) accepted", bad)
		}
	}
	if _, err := ACMESource("a/b", []string{"a.example.com"}, ""); err == nil {
		t.Error("account with a slash accepted")
	}
	if _, err := ACMESource("le", []string{"a.example.com"}, "smtp-01"); err == nil {
		t.Error("unknown challenge accepted")
	}
}

func TestSnapshotValueACME(t *testing.T) {
	src := mustRef(t, "scaivault+acme://le?domains=a.example.com").Source()
	snap := NewSnapshot()
	snap.Certs[src] = &Cert{SerialNumber: "01:02", CertificatePEM: "CERT\n", PrivateKeyPEM: "KEY\n", CAChain: []string{"CA"}}
	if !snap.Has(src) {
		t.Fatal("Has")
	}
	for field, want := range map[string]string{"certificate_pem": "CERT\n", "private_key_pem": "KEY\n", "ca_chain": "CA\n", "serial_number": "01:02"} {
		got, err := snap.Value(mustRef(t, "scaivault+acme://le?domains=A.example.com#"+field))
		if err != nil || got != want {
			t.Errorf("%s = %q, %v", field, got, err)
		}
	}
}
