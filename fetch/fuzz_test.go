package fetch

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// formatRef writes a parsed reference back as a reference string, escaping
// what the parser decodes (query values, the key), so that
// ParseRef(formatRef(r)) must give r again.
func formatRef(r Ref) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var b strings.Builder
	var q []string
	switch r.Kind {
	case Static:
		b.WriteString(SchemeStatic + "://" + EscapePath(r.Path))
		if r.Version > 0 {
			q = append(q, "version="+strconv.Itoa(r.Version))
		}
	case Dynamic:
		b.WriteString(SchemeDynamic + "://" + EscapePath(r.Engine+"/"+r.Role))
		if r.TTL != "" {
			q = append(q, "ttl="+esc(r.TTL))
		}
	case PKI:
		b.WriteString(SchemePKI + "://" + EscapePath(r.PKIRole))
		q = append(q, "common_name="+esc(r.Issue.CommonName))
		if len(r.Issue.AltNames) > 0 {
			q = append(q, "alt_names="+esc(strings.Join(r.Issue.AltNames, ",")))
		}
		if len(r.Issue.IPSANs) > 0 {
			q = append(q, "ip_sans="+esc(strings.Join(r.Issue.IPSANs, ",")))
		}
		if r.Issue.TTL != "" {
			q = append(q, "ttl="+esc(r.Issue.TTL))
		}
	case ACME:
		b.WriteString(SchemeACME + "://" + EscapePath(r.Account))
		q = append(q, "domains="+esc(strings.Join(r.Domains, ",")))
		if r.Challenge != "" {
			q = append(q, "challenge="+esc(r.Challenge))
		}
	}
	if r.AsFile {
		q = append(q, "as=file")
	}
	if len(q) > 0 {
		b.WriteString("?" + strings.Join(q, "&"))
	}
	if r.Key != "" {
		b.WriteString("#" + esc(r.Key))
	}
	return b.String()
}

// FuzzParseRef: no panic; a string that is not a reference gives no error;
// a parsed reference survives its round trip through formatRef, to the
// same Ref and the same Source; the Source is also what the Source
// constructors make of the parts.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"plain", "scaivault://app/db", "scaivault://app/db?version=3#password",
		"scaivault://app/tls?as=file#key", "scaivault://app/db#my%20key%23x", "scaivault://app/d%62",
		"scaivault+dynamic://support-db/readonly?ttl=2h#username", "scaivault+dynamic://pg/app?ttl=1d&as=file#password",
		"scaivault+pki://svc-mtls?common_name=billing.svc&alt_names=b.svc,a.svc,b.svc&ip_sans=127.0.0.1,::1&ttl=72h#certificate_pem",
		"scaivault+pki://svc?as=file&common_name=x%2Esvc&ttl=3d#ca_chain", "scaivault+other://x", "scaivault://a%zz",
		"scaivault+pki://r?common_name=a%26b%3Dc%23d&alt_names=x%2Cy", "scaivault+dynamic://e/r?ttl=106751d24h",
		"scaivault+acme://le?domains=b.example.com,A.example.com&challenge=dns-01#certificate_pem",
		"scaivault+acme://le?as=file&domains=*.example.com,example.com.#private_key_pem", "scaivault+acme://le?domains=a..b",
		"scaivault+acme://le?domains=x%2Cy.example.com&challenge=tls-alpn-01", "scaivault+acme://le",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, isRef, err := ParseRef(s)
		if !isRef {
			if err != nil || !reflect.DeepEqual(ref, Ref{}) {
				t.Fatalf("ParseRef(%q): not a reference, but %+v, %v", s, ref, err)
			}
			return
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "reference ") {
				t.Errorf("ParseRef(%q): error %q does not name the reference", s, err)
			}
			return
		}
		if ref.Raw != s {
			t.Errorf("Raw = %q, want %q", ref.Raw, s)
		}
		out := formatRef(ref)
		back, isRef, err := ParseRef(out)
		if !isRef || err != nil {
			t.Fatalf("ParseRef(%q) = %+v, but its formatted form %q gives %v (reference %v)", s, ref, out, err, isRef)
		}
		ref.Raw, back.Raw = "", ""
		if !reflect.DeepEqual(ref, back) {
			t.Fatalf("round trip of %q through %q:\n got %+v\nwant %+v", s, out, back, ref)
		}
		src := ref.Source()
		if src != back.Source() {
			t.Fatalf("round trip of %q changed its source: %v, %v", s, src, back.Source())
		}
		var made Source
		switch ref.Kind {
		case Static:
			made = StaticSource(ref.Path, ref.Version)
		case Dynamic:
			made, err = DynamicSource(ref.Engine, ref.Role, ref.TTL)
		case PKI:
			made, err = PKISource(ref.PKIRole, ref.Issue)
		case ACME:
			made, err = ACMESource(ref.Account, ref.Domains, ref.Challenge)
			if d, c := made.ACMEOrder(); err == nil && (!slices.Equal(d, ref.Domains) || c != ref.Challenge) {
				t.Fatalf("ACMEOrder() of %q = %q %q, want %q %q", s, d, c, ref.Domains, ref.Challenge)
			}
		}
		if err != nil || made != src {
			t.Fatalf("source of %q: %v, but the constructor gives %v, %v", s, src, made, err)
		}
	})
}

// FuzzSSE: no panic; every error is the end of the input or the event
// bound; no event holds more than the bound; how the input is split into
// reads (the buffer size) changes nothing.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		"event: secret.updated\nid: 7\ndata: {\"path\":\"app/db\",\"version\":4}\n\n",
		": keep-alive\r\nevent:secret.rotated\r\ndata: {\"path\":\r\n: inside\r\ndata:\"a\"}\r\nid:c2\r\n\r\n",
		"id: 1\ndata:  x\n\ndata: y\n\n", "id: 9\nretry: 100\nid: a\x00b\ndata: d\n\n", "data: a\n\nid: 3\ndata: b\n",
		"event: ping\ndata\n\n", "data: " + strings.Repeat("x", 300) + "\n\n", strings.Repeat("data: x\n", 40) + "\n",
		"\r\n\r\n:\n", "data:\rdata:\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		setLimit(t, &maxEventBytes, 128)
		parse := func(size int) ([]sseEvent, string, error) {
			rd := &sseReader{r: bufio.NewReaderSize(strings.NewReader(string(stream)), size)}
			var evs []sseEvent
			for {
				ev, err := rd.next()
				if err != nil {
					return evs, rd.lastID, err
				}
				// The bound counts the lines read; only the default type
				// "message" is not among them.
				if len(ev.data)+len(ev.typ) > maxEventBytes+len("message") {
					t.Fatalf("event of %d bytes past the bound of %d", len(ev.data)+len(ev.typ), maxEventBytes)
				}
				evs = append(evs, ev)
			}
		}
		evs, id, err := parse(16)
		if !errors.Is(err, io.EOF) && !errors.Is(err, errTooLarge) {
			t.Fatalf("error %v: want EOF or the event bound", err)
		}
		evs2, id2, err2 := parse(4096)
		if !reflect.DeepEqual(evs, evs2) || id != id2 || errors.Is(err, io.EOF) != errors.Is(err2, io.EOF) {
			t.Fatalf("the buffer size changes the result: %q %q %v / %q %q %v", evs, id, err, evs2, id2, err2)
		}
	})
}

// FuzzDecodeAnswers decodes one body as each kind of answer the client
// reads, with the checks the client applies: no panic; a decode error
// quotes no byte of the body beyond the field it names; an accepted lease
// has a duration that fits a time.Duration, an accepted certificate has a
// certificate, a key and an expiry.
func FuzzDecodeAnswers(f *testing.F) {
	for _, s := range []string{
		`{"path":"app/db","version":3,"secret_type":"json","data":{"password":"s3cr3t"},"metadata":{},"created_at":"2026-11-25T10:00:00Z","rotation":null}`,
		`{"lease_id":"dyn_1","engine":"e","role":"r","lease_duration":7200,"renewable":true,"issued_at":"2026-11-25T10:00:00Z","expires_at":"2026-11-25T12:00:00Z","max_expires_at":"2026-11-26T10:00:00Z","data":{"username":"u","password":"p"}}`,
		`{"lease_id":"dyn_1","lease_duration":-5}`, `{"lease_id":"dyn_1","lease_duration":1e300}`,
		`{"lease_id":"dyn_1","lease_duration":9223372037}`, `{"lease_duration":60}`,
		`{"serial_number":"3a","certificate_pem":"C","private_key_pem":"K","ca_chain":["A"],"expires_at":"2026-11-25T12:00:00Z"}`,
		`{"certificate_pem":"C"}`, `{"data":[{"path":"a","version":1}],"has_more":true,"cursor":"c"}`,
		`{"data":[],"has_more":false,"cursor":null}`, `{"secrets":{"a":null},"errors":{"b":{"code":"not_found"}}}`,
		`{"path":"a","version":"SECRET"}`, `{"version":99999999999999999999}`, `[1,2]`, `null`, `"x"`, `{`, ``,
		`{"identity_id":"x","expires_at":null}`, `{"error":{"code":"rate_limited","details":{"retry_after":1e300}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			msg := err.Error()
			if len(msg) > 300 {
				t.Errorf("%s: error of %d bytes", what, len(msg))
			}
			var te *json.UnmarshalTypeError
			if len(body) >= 12 && !errors.As(err, &te) && strings.Contains(msg, string(body)) {
				t.Errorf("%s: error %q quotes the body", what, msg)
			}
		}
		var s Secret
		check("secret", decodeJSON(body, &s))
		var l Lease
		if err := decodeJSON(body, &l); err == nil {
			err = checkLease(&l, true)
			check("lease", err)
			if err == nil {
				if d := time.Duration(l.LeaseDuration) * time.Second; d < 0 || d/time.Second != time.Duration(l.LeaseDuration) {
					t.Errorf("lease_duration %d accepted but wraps around", l.LeaseDuration)
				}
				if l.LeaseID == "" {
					t.Error("lease without an id accepted")
				}
			}
		}
		var c Cert
		if err := decodeJSON(body, &c); err == nil {
			if err = checkCert(&c); err == nil && (c.CertificatePEM == "" || c.PrivateKeyPEM == "" || c.ExpiresAt.IsZero()) {
				t.Error("incomplete certificate accepted")
			}
			check("cert", err)
		}
		var page ListPage
		check("list page", decodeJSON(body, &page))
		var batch BatchReadResult
		check("batch read", decodeJSON(body, &batch))
		var ev EventData
		check("event", decodeJSON(body, &ev))
		var eb ErrorBody
		if json.Unmarshal(body, &eb) == nil {
			if ra := retryAfter("", eb.Error.Details); ra < 0 {
				t.Errorf("retry_after gives a negative wait %v", ra)
			}
		}
	})
}

// FuzzTLSFiles: whatever the CA, certificate and key files hold, New
// either accepts them or fails with an error naming a setting, never
// panicking and never quoting a file's content.
func FuzzTLSFiles(f *testing.F) {
	ca := "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBATAKBggqhkjOPQQDAjAAMB4XDTI2MDEwMTAwMDAwMFoXDTI3MDEwMTAwMDAwMFowADBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABA==\n-----END CERTIFICATE-----\n"
	f.Add([]byte(ca), []byte(ca), []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte(""), []byte("not pem"), []byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN X-----\nAA==\n-----END X-----\n"), []byte("-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, caData, certData, keyData []byte) {
		dir := t.TempDir()
		write := func(name string, data []byte) string {
			p := dir + "/" + name
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		tc := TLSConfig{CACert: write("ca.pem", caData), ClientCert: write("c.pem", certData), ClientKey: write("k.pem", keyData)}
		c, err := New(Config{BaseURL: "https://vault.example", Token: "t", TLS: tc})
		if err == nil {
			c.Close()
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, "SCAIVAULT_") {
			t.Fatalf("error names no setting: %q", msg)
		}
		for _, data := range [][]byte{caData, certData, keyData} {
			if s := strings.TrimSpace(string(data)); len(s) >= 12 && strings.Contains(msg, s) {
				t.Fatalf("error quotes a file: %q", msg)
			}
		}
	})
}

// FuzzACMEOrder decodes one body as an order, an order list and an account
// list, with the client's checks: no panic; no error quotes the body; an
// accepted valid order has a complete certificate; the domain comparison
// of the look-up never accepts names that are not canonical-equal.
func FuzzACMEOrder(f *testing.F) {
	for _, s := range []string{
		`{"id":"ord_1","account_id":"acct_1","domains":["a.example.com"],"status":"pending","challenge_type":"dns-01","auto_renew":true,"error":null,"created_at":"2026-11-25T10:00:00Z","renewed_at":null,"certificate":null}`,
		`{"id":"ord_1","domains":["B.example.com","a.example.com"],"status":"valid","certificate":{"serial_number":"3a","certificate_pem":"C","private_key_pem":"K","ca_chain":["A"],"issued_at":"2026-11-25T10:00:00Z","expires_at":"2027-02-23T10:00:00Z"}}`,
		`{"id":"ord_1","status":"valid","certificate":{"certificate_pem":"C"}}`, `{"id":"ord_1","status":"valid"}`,
		`{"id":"ord_1","status":"invalid","error":{"code":"unauthorized","message":"dns-01 challenge failed"}}`,
		`{"id":"../../x","status":"pending"}`, `{"id":"","status":"valid"}`, `{"id":"ord_1","status":"weird"}`,
		`{"data":[{"id":"ord_1","status":"valid","domains":["*.example.com"]}]}`, `{"data":[{"id":"a","name":"le"}]}`,
		`{"id":"ord_1","status":"pending","domains":"a.example.com"}`, `{"renewed_at":"never"}`, `[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			msg := err.Error()
			if len(msg) > 400 {
				t.Errorf("%s: error of %d bytes", what, len(msg))
			}
			var te *json.UnmarshalTypeError
			if len(body) >= 12 && !errors.As(err, &te) && strings.Contains(msg, string(body)) {
				t.Errorf("%s: error %q quotes the body", what, msg)
			}
		}
		var o ACMEOrder
		if err := decodeJSON(body, &o); err == nil {
			err = checkOrder(&o, true)
			check("order", err)
			if err == nil {
				if validateSegment(o.ID) != nil {
					t.Errorf("order id %q accepted", o.ID)
				}
				if o.Status == OrderValid && (o.Certificate == nil || checkCert(o.Certificate) != nil) {
					t.Error("valid order without a complete certificate accepted")
				}
				if o.Status == OrderValid {
					if c := CertOf(&o); c.OrderID != o.ID || c.SerialNumber != o.Certificate.SerialNumber {
						t.Errorf("CertOf = %+v", c)
					}
				}
				if o.Status == OrderInvalid {
					check("order failure", orderFailed(&o, []string{"a.example.com"}))
				}
			}
			if d, err := CanonicalDomains(o.Domains); err == nil {
				if !sameDomains(o.Domains, d) {
					t.Errorf("domains %q not the same as their canonical form %q", o.Domains, d)
				}
				back, err := CanonicalDomains(d)
				if err != nil || !slices.Equal(back, d) {
					t.Errorf("canonical domains %q are not canonical: %q, %v", d, back, err)
				}
			} else if sameDomains(o.Domains, []string{"a.example.com"}) {
				t.Errorf("domains %q rejected but matched", o.Domains)
			}
		} else {
			check("order", err)
		}
		var list ACMEOrderList
		check("order list", decodeJSON(body, &list))
		for i := range list.Data {
			check("order list entry", checkOrder(&list.Data[i], false))
		}
		var accounts ACMEAccountList
		check("account list", decodeJSON(body, &accounts))
	})
}
