package fetch

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in    string
		isRef bool
		want  Ref // Raw is filled in by the test
	}{
		{"plain value", false, Ref{}},
		{"", false, Ref{}},
		{"https://example.com/x", false, Ref{}},
		{"SCAIVAULT://app/db", false, Ref{}},
		{"scaivault:app/db", false, Ref{}},
		{" scaivault://app/db", false, Ref{}},
		{"scaivault+://app/db", false, Ref{}},
		{"scaivault://app/db", true, Ref{Kind: Static, Path: "app/db"}},
		{"scaivault://app/db#password", true, Ref{Kind: Static, Path: "app/db", Key: "password"}},
		{"scaivault://app/db?version=3#password", true, Ref{Kind: Static, Path: "app/db", Version: 3, Key: "password"}},
		{"scaivault://app/tls?as=file#key", true, Ref{Kind: Static, Path: "app/tls", Key: "key", AsFile: true}},
		{"scaivault://app/tls?version=2&as=file", true, Ref{Kind: Static, Path: "app/tls", Version: 2, AsFile: true}},
		{"scaivault://a/b.c_d-e/F9", true, Ref{Kind: Static, Path: "a/b.c_d-e/F9"}},
		{"scaivault://app/db#my%20key%23x", true, Ref{Kind: Static, Path: "app/db", Key: "my key#x"}},
		{"scaivault://app/db#a/b", true, Ref{Kind: Static, Path: "app/db", Key: "a/b"}},
		{"scaivault://app/d%62", true, Ref{Kind: Static, Path: "app/db"}},
		{"scaivault+dynamic://support-db/readonly", true, Ref{Kind: Dynamic, Engine: "support-db", Role: "readonly"}},
		{"scaivault+dynamic://support-db/readonly?ttl=2h#username", true,
			Ref{Kind: Dynamic, Engine: "support-db", Role: "readonly", TTL: "2h0m0s", Key: "username"}},
		{"scaivault+dynamic://pg/app?ttl=1d&as=file#password", true,
			Ref{Kind: Dynamic, Engine: "pg", Role: "app", TTL: "24h0m0s", Key: "password", AsFile: true}},
		{"scaivault+dynamic://pg/app?ttl=3600", true, Ref{Kind: Dynamic, Engine: "pg", Role: "app", TTL: "1h0m0s"}},
		{"scaivault+pki://svc-mtls?common_name=billing.svc", true,
			Ref{Kind: PKI, PKIRole: "svc-mtls", Issue: IssueRequest{CommonName: "billing.svc"}}},
		{"scaivault+pki://svc-mtls?common_name=billing.svc&alt_names=b.svc,a.svc,b.svc&ip_sans=127.0.0.1,::1&ttl=72h#certificate_pem", true,
			Ref{Kind: PKI, PKIRole: "svc-mtls", Key: "certificate_pem", Issue: IssueRequest{
				CommonName: "billing.svc", AltNames: []string{"a.svc", "b.svc"}, IPSANs: []string{"127.0.0.1", "::1"}, TTL: "72h0m0s"}}},
		{"scaivault+pki://svc-mtls?as=file&common_name=x%2Esvc&ttl=3d#ca_chain", true,
			Ref{Kind: PKI, PKIRole: "svc-mtls", Key: "ca_chain", AsFile: true, Issue: IssueRequest{CommonName: "x.svc", TTL: "72h0m0s"}}},
	}
	for _, tt := range tests {
		ref, isRef, err := ParseRef(tt.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tt.in, err)
			continue
		}
		if isRef != tt.isRef {
			t.Errorf("ParseRef(%q): isRef %v, want %v", tt.in, isRef, tt.isRef)
		}
		want := tt.want
		if tt.isRef {
			want.Raw = tt.in
		}
		if !reflect.DeepEqual(ref, want) {
			t.Errorf("ParseRef(%q):\n got %+v\nwant %+v", tt.in, ref, want)
		}
	}
}

func TestParseRefErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"scaivault+dynamc://a/b", `unknown scheme "scaivault+dynamc" (want scaivault, scaivault+dynamic, scaivault+pki or scaivault+acme)`},
		{"scaivault://", "empty path"},
		{"scaivault://#k", "empty path"},
		{"scaivault://app//db", `invalid path segment 2 "": empty segment`},
		{"scaivault:///app", `invalid path segment 1 "": empty segment`},
		{"scaivault://app/db/", `invalid path segment 3 "": empty segment`},
		{"scaivault://app/../db", `invalid path segment 2 "..": ".." is not allowed`},
		{"scaivault://app/d b", `invalid path segment 2 "d b": character ' ' is not allowed (want [A-Za-z0-9._-])`},
		{"scaivault://app/a%2Fb", `invalid path segment 2 "a/b": character '/' is not allowed (want [A-Za-z0-9._-])`},
		{"scaivault://app/a%zz", `invalid path segment "a%zz": bad escape`},
		{"scaivault://app/db#", `empty key after "#"`},
		{"scaivault://app/db#%zz", `bad escape in key "%zz"`},
		{"scaivault://app/db?versoin=3", `unknown query parameter "versoin"`},
		{"scaivault://app/db?ttl=1h", `unknown query parameter "ttl"`},
		{"scaivault://app/db?version=x", `bad version "x" (want a positive integer)`},
		{"scaivault://app/db?version=0", `bad version "0" (want a positive integer)`},
		{"scaivault://app/db?version=-2", `bad version "-2" (want a positive integer)`},
		{"scaivault://app/db?version=1&version=2", `duplicate query parameter "version"`},
		{"scaivault://app/db?=1", `empty query parameter name in "=1"`},
		{"scaivault://app/db?as=env", `bad as="env" (want as=file)`},
		{"scaivault+dynamic://engine", `path "engine": want ENGINE/ROLE`},
		{"scaivault+dynamic://e/r/x", `path "e/r/x": want ENGINE/ROLE`},
		{"scaivault+dynamic://e/r?ttl=soon", `bad ttl "soon" (want a positive duration such as 90s, 2h or 7d)`},
		{"scaivault+dynamic://e/r?ttl=", `bad ttl "" (want a positive duration such as 90s, 2h or 7d)`},
		{"scaivault+dynamic://e/r?ttl=0s", `bad ttl "0s" (want a positive duration such as 90s, 2h or 7d)`},
		{"scaivault+dynamic://e/r?version=2", `unknown query parameter "version"`},
		{"scaivault+pki://svc", "missing common_name"},
		{"scaivault+pki://svc?common_name=", "missing common_name"},
		{"scaivault+pki://a/b?common_name=x", `path "a/b": want a single ROLE`},
		{"scaivault+pki://svc?common_name=x#cert", `unknown PKI field "cert" (want one of certificate_pem, private_key_pem, ca_chain, serial_number, expires_at)`},
		{"scaivault+pki://svc?common_name=x&ip_sans=1.2.3", `bad IP address "1.2.3" in ip_sans`},
		{"scaivault+pki://svc?common_name=x&alt_names=a,,b", "empty name in alt_names"},
		{"scaivault+pki://svc?common_name=x&ttl=forever", `bad ttl "forever" (want a positive duration such as 90s, 2h or 7d)`},
		{"scaivault+pki://svc?common_name=x&key_type=rsa", `unknown query parameter "key_type"`},
	}
	for _, tt := range tests {
		_, isRef, err := ParseRef(tt.in)
		if !isRef {
			t.Errorf("ParseRef(%q): isRef false", tt.in)
		}
		want := "reference " + strconv.Quote(tt.in) + ": " + tt.want
		if err == nil || err.Error() != want {
			t.Errorf("ParseRef(%q):\n got error %v\nwant error %s", tt.in, err, want)
		}
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	r, ok, err := ParseRef(s)
	if err != nil || !ok {
		t.Fatalf("ParseRef(%q): %v %v", s, ok, err)
	}
	return r
}

func TestSourceCanonical(t *testing.T) {
	same := [][]string{
		{"scaivault://app/db", "scaivault://app/db#password", "scaivault://app/db?as=file#username"},
		{"scaivault://app/db?version=3", "scaivault://app/db?version=3&as=file#k"},
		{"scaivault+dynamic://e/r?ttl=2h#username", "scaivault+dynamic://e/r?ttl=120m#password", "scaivault+dynamic://e/r?ttl=7200&as=file"},
		{"scaivault+pki://svc?common_name=a&alt_names=c,b&ip_sans=::1,10.0.0.1&ttl=72h#certificate_pem",
			"scaivault+pki://svc?ttl=3d&ip_sans=10.0.0.1,0:0::1&alt_names=b,c,b&common_name=a#private_key_pem",
			"scaivault+pki://svc?common_name=a&alt_names=b,c&ip_sans=10.0.0.1,::1&ttl=259200s&as=file"},
	}
	for _, group := range same {
		first := mustRef(t, group[0]).Source()
		for _, s := range group[1:] {
			if got := mustRef(t, s).Source(); got != first {
				t.Errorf("Source(%q) = %+v, want %+v (as %q)", s, got, first, group[0])
			}
		}
	}
	differ := [][2]string{
		{"scaivault://app/db", "scaivault://app/db?version=1"},
		{"scaivault+dynamic://e/r", "scaivault+dynamic://e/r?ttl=1h"},
		{"scaivault+dynamic://e/r?ttl=1h", "scaivault+dynamic://e/r?ttl=2h"},
		{"scaivault+pki://svc?common_name=a", "scaivault+pki://svc?common_name=a&alt_names=b"},
		{"scaivault+pki://svc?common_name=a", "scaivault+pki://other?common_name=a"},
	}
	for _, d := range differ {
		if mustRef(t, d[0]).Source() == mustRef(t, d[1]).Source() {
			t.Errorf("%q and %q share a source", d[0], d[1])
		}
	}

	dyn, err := DynamicSource("e", "r", "120m")
	if err != nil || dyn != mustRef(t, "scaivault+dynamic://e/r?ttl=2h#x").Source() {
		t.Errorf("DynamicSource(e, r, 120m) = %+v, %v", dyn, err)
	}
	pki, err := PKISource("svc", IssueRequest{CommonName: "a", AltNames: []string{"c", "b"}, IPSANs: []string{"::1", "10.0.0.1"}, TTL: "72h"})
	if err != nil || pki != mustRef(t, same[3][0]).Source() {
		t.Errorf("PKISource = %+v, %v", pki, err)
	}
	wantReq := IssueRequest{CommonName: "a", AltNames: []string{"b", "c"}, IPSANs: []string{"10.0.0.1", "::1"}, TTL: "72h0m0s"}
	if got := pki.IssueRequest(); !reflect.DeepEqual(got, wantReq) {
		t.Errorf("IssueRequest() = %+v, want %+v", got, wantReq)
	}
	if _, err := DynamicSource("e", "r", "soon"); err == nil || err.Error() != `dynamic e/r: bad ttl "soon" (want a positive duration such as 90s, 2h or 7d)` {
		t.Errorf("DynamicSource bad ttl: %v", err)
	}
	if _, err := DynamicSource("e/x", "r", ""); err == nil {
		t.Error("DynamicSource with a slash in the engine: no error")
	}
	if _, err := PKISource("svc", IssueRequest{}); err == nil || err.Error() != "pki svc: missing common_name" {
		t.Errorf("PKISource without common_name: %v", err)
	}
}

func TestSourceString(t *testing.T) {
	pki, _ := PKISource("svc-mtls", IssueRequest{CommonName: "a.svc", AltNames: []string{"c", "b"}, IPSANs: []string{"127.0.0.1"}, TTL: "72h"})
	dyn, _ := DynamicSource("support-db", "readonly", "2h")
	dyn0, _ := DynamicSource("support-db", "readonly", "")
	tests := []struct {
		src  Source
		want string
	}{
		{StaticSource("app/db", 0), "app/db"},
		{StaticSource("app/db", 3), "app/db version 3"},
		{dyn, "dynamic support-db/readonly ttl=2h0m0s"},
		{dyn0, "dynamic support-db/readonly"},
		{pki, "pki svc-mtls common_name=a.svc alt_names=b,c ip_sans=127.0.0.1 ttl=72h0m0s"},
		{ListSource("app/"), "list app/"},
	}
	for _, tt := range tests {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func raw(m map[string]string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range m {
		out[k] = json.RawMessage(v)
	}
	return out
}

func TestSnapshotValue(t *testing.T) {
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	dyn, _ := DynamicSource("support-db", "readonly", "")
	pki, _ := PKISource("svc", IssueRequest{CommonName: "a.svc"})
	snap := &Snapshot{
		Secrets: map[Source]*Secret{
			StaticSource("app/one", 0): {Path: "app/one", Version: 2, Data: raw(map[string]string{"value": `"s3cr3t"`})},
			StaticSource("app/db", 0): {Path: "app/db", Version: 3, Data: raw(map[string]string{
				"password": `"pw1"`, "username": `"app"`, "port": `5432`, "tags": `[ "a", "b<&>" ]`, "obj": `{"x": true}`, "nul": `null`})},
			StaticSource("app/db", 1):   {Path: "app/db", Version: 1, Data: raw(map[string]string{"password": `"old"`})},
			StaticSource("app/num", 0):  {Path: "app/num", Version: 1, Data: raw(map[string]string{"n": ` 12.5 `})},
			StaticSource("app/two", 0):  {Path: "app/two", Version: 4, Data: raw(map[string]string{"b": `"<x&y>"`, "a": `1`})},
			StaticSource("app/none", 0): {Path: "app/none", Version: 1},
		},
		Leases: map[Source]*Lease{dyn: {LeaseID: "dyn_1", Data: raw(map[string]string{"username": `"v-ro"`, "password": `"p"`})}},
		Certs: map[Source]*Cert{pki: {SerialNumber: "3a:91", CertificatePEM: "CERT\n", PrivateKeyPEM: "KEY\n",
			CAChain: []string{"-----BEGIN CERTIFICATE-----\nI\n-----END CERTIFICATE-----\n\n", "-----BEGIN CERTIFICATE-----\nR\n-----END CERTIFICATE-----"}, ExpiresAt: exp}},
	}
	chain := "-----BEGIN CERTIFICATE-----\nI\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nR\n-----END CERTIFICATE-----\n"
	tests := []struct{ ref, want string }{
		{"scaivault://app/one", "s3cr3t"},
		{"scaivault://app/one#value", "s3cr3t"},
		{"scaivault://app/db#password", "pw1"},
		{"scaivault://app/db?as=file#password", "pw1"},
		{"scaivault://app/db?version=1", "old"},
		{"scaivault://app/db#port", "5432"},
		{"scaivault://app/db#tags", `["a","b<&>"]`},
		{"scaivault://app/db#obj", `{"x":true}`},
		{"scaivault://app/db#nul", "null"},
		{"scaivault://app/num", "12.5"},
		{"scaivault://app/two", `{"a":1,"b":"<x&y>"}`},
		{"scaivault+dynamic://support-db/readonly#username", "v-ro"},
		{"scaivault+dynamic://support-db/readonly", `{"password":"p","username":"v-ro"}`},
		{"scaivault+pki://svc?common_name=a.svc#certificate_pem", "CERT\n"},
		{"scaivault+pki://svc?common_name=a.svc#private_key_pem", "KEY\n"},
		{"scaivault+pki://svc?common_name=a.svc#serial_number", "3a:91"},
		{"scaivault+pki://svc?common_name=a.svc#expires_at", "2027-01-02T02:04:05Z"},
		{"scaivault+pki://svc?common_name=a.svc#ca_chain", chain},
		{"scaivault+pki://svc?common_name=a.svc", `{"ca_chain":` + quote(chain) +
			`,"certificate_pem":"CERT\n","expires_at":"2027-01-02T02:04:05Z","private_key_pem":"KEY\n","serial_number":"3a:91"}`},
	}
	for _, tt := range tests {
		got, err := snap.Value(mustRef(t, tt.ref))
		if err != nil || got != tt.want {
			t.Errorf("Value(%s) = %q, %v; want %q", tt.ref, got, err, tt.want)
		}
	}

	errTests := []struct{ ref, want string }{
		{"scaivault://app/db#pass", `secret "app/db" version 3 has no key "pass" (keys: nul, obj, password, port, tags, username)`},
		{"scaivault://app/db?version=1#username", `secret "app/db" version 1 has no key "username" (keys: password)`},
		{"scaivault://app/none", `secret "app/none" version 1 has no data`},
		{"scaivault://app/none#k", `secret "app/none" version 1 has no key "k" (keys: none)`},
		{"scaivault://app/missing", `secret "app/missing": not resolved`},
		{"scaivault://app/db?version=7", `secret "app/db version 7": not resolved`},
		{"scaivault+dynamic://support-db/readonly#token", `dynamic support-db/readonly lease dyn_1 has no key "token" (keys: password, username)`},
		{"scaivault+dynamic://support-db/readonly?ttl=1h", `dynamic support-db/readonly ttl=1h0m0s: not resolved`},
		{"scaivault+pki://svc?common_name=b.svc", `pki svc common_name=b.svc: not resolved`},
	}
	for _, tt := range errTests {
		_, err := snap.Value(mustRef(t, tt.ref))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Value(%s): error %v, want %s", tt.ref, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "pw1") || strings.Contains(err.Error(), "v-ro")) {
			t.Errorf("Value(%s): error holds a value: %v", tt.ref, err)
		}
	}
	var nilSnap *Snapshot
	if _, err := nilSnap.Value(mustRef(t, "scaivault://app/db")); err == nil {
		t.Error("nil snapshot: no error")
	}
}

func TestSnapshotMergeWithout(t *testing.T) {
	a, b := StaticSource("a", 0), StaticSource("b", 0)
	dyn, _ := DynamicSource("e", "r", "")
	s1 := &Snapshot{Secrets: map[Source]*Secret{a: {Version: 1}}, Leases: map[Source]*Lease{dyn: {LeaseID: "l1"}}}
	s2 := &Snapshot{Secrets: map[Source]*Secret{a: {Version: 2}, b: {Version: 1}}}
	m := s1.Merge(s2)
	if m.Secrets[a].Version != 2 || !m.Has(b) || !m.Has(dyn) {
		t.Errorf("Merge = %+v", m)
	}
	if s1.Secrets[a].Version != 1 || s1.Has(b) {
		t.Error("Merge changed its receiver")
	}
	w := m.Without(a, dyn)
	if w.Has(a) || w.Has(dyn) || !w.Has(b) || !m.Has(a) {
		t.Errorf("Without: %+v (from %+v)", w, m)
	}
	var nilSnap *Snapshot
	if nilSnap.Has(a) || nilSnap.Merge(nil).Has(a) {
		t.Error("nil snapshot has a source")
	}
}

func TestPEMBundle(t *testing.T) {
	if got := PEMBundle([]string{"A\n", "B", "", "C\r\n\n"}); got != "A\nB\nC\n" {
		t.Errorf("PEMBundle = %q", got)
	}
	if got := PEMBundle(nil); got != "" {
		t.Errorf("PEMBundle(nil) = %q", got)
	}
}
