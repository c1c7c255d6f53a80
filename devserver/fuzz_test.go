package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// fuzzRoutes are the requests whose bodies the dev server decodes. LEASE
// stands for the id of a lease generated before the fuzzed request.
var fuzzRoutes = []struct{ method, path string }{
	{"PUT", "/v1/secrets/fuzz/a"},
	{"PATCH", "/v1/secrets/app/db/metadata"},
	{"POST", "/v1/secrets/app/db/rotate"},
	{"POST", "/v1/secrets/batch-read"},
	{"POST", "/v1/dynamic/support-db/creds/readonly"},
	{"POST", "/v1/dynamic/leases/LEASE/renew"},
	{"POST", "/v1/pki/issue/svc-mtls"},
	{"POST", "/v1/dev/faults"},
	{"POST", "/v1/dev/leases/LEASE/expire"},
	{"POST", "/v1/dev/tokens/expire"},
	{"POST", "/v1/auth/token"}, // a form body, not JSON
	{"POST", "/v1/policies/test"},
	{"POST", "/v1/acme/orders"}, // ACCT in the body stands for the id of the account "le"
}

// fuzzMaxBody is the body bound of the fuzzed server, small enough for
// fuzzed inputs to cross it.
const fuzzMaxBody = 512

// errorCounter counts log records at error level: a handler panic is one.
type errorCounter struct{ n atomic.Int64 }

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *errorCounter) WithGroup(string) slog.Handler                { return h }

// FuzzRequestBodies sends one fuzzed body to one of the routes that decode
// a body, on a fresh server: no panic (the server would turn it into a 500
// and log it), no 500 at all (every bad body is the client's fault), a
// body past the bound is refused, every error answer is the contract's
// error object (RFC 6749's for the token endpoint) and never quotes the
// body.
func FuzzRequestBodies(f *testing.F) {
	seeds := map[int][]string{
		0:  {`{"data":{"k":"v"},"secret_type":"json","metadata":{"a":1},"max_versions":3,"cas":0}`, `{"data":{"value":"x"},"secret_type":"binary"}`, `{"data":{},"max_versions":-1}`, `{"data":{"k":"v"},"cas":-5}`, `{"data":{"k":1e400}}`},
		1:  {`{"metadata":{"tags":["x"],"custom":null}}`, `{"metadata":null}`, `{"metadata":[1]}`},
		2:  {`{"reason":"r","new_value":{"password":"p"},"grace_period":"1h"}`, `{"grace_period":"-1h"}`, `{"grace_period":"106751d24h"}`, `{"grace_period":"90"}`, `{"grace_period":90}`},
		3:  {`{"paths":["app/db","other/secret","../x",""]}`, `{"paths":null}`, `{"paths":[1]}`},
		4:  {`{"ttl":"2h"}`, `{"ttl":"9223372037"}`, `{"ttl":"-1s"}`, ``, `{"ttl":"90"}`, `{"ttl":90}`, `{"ttl":"1d12h"}`, `{"ttl":"-90"}`},
		5:  {`{"increment":"1h"}`, `{"increment":"99999999999"}`, `{"increment":0}`, `{"increment":"90"}`, `{"increment":"2d"}`},
		6:  {`{"common_name":"a.svc.cluster.local","alt_names":["b.svc.cluster.local"],"ip_sans":["127.0.0.1"],"ttl":"1h"}`, `{"common_name":"localhost","ttl":"106751d24h"}`, `{"common_name":"","ip_sans":["x"]}`},
		7:  {`{"rate":0.5,"status":429,"retry_after":1e12,"next":-1}`, `{"latency":"-1s"}`, `{"rate":2}`},
		8:  {`{"in":"1h"}`, `{"in":"-5s"}`},
		9:  {`{"client_id":"app"}`, `{}`},
		10: {`grant_type=client_credentials&client_id=app&client_secret=app-secret`, `grant_type=x&grant_type=y`, `%zz`},
		11: {`{"path":"dynamic/support-db/readonly","permission":"dynamic","identity_id":"ops","context":{"source_ip":"10.0.1.50"}}`,
			`{"path":"app/db","permission":"read"}`, `{"path":"pki/svc-mtls","permission":"pki","identity_id":"nobody"}`,
			`{"path":"acme/x","permission":"acme","identity_id":"root"}`, `{"path":"dynamic/a","permission":"dynamic"}`,
			`{"path":"app/../db","permission":"read"}`, `{"path":"app/db","permission":"admin"}`, `{"path":"app/db"}`,
			`{"path":"app/db","permission":"read","context":[1]}`, `{"path":1,"permission":null}`, `{}`, ``},
		12: {`{"account_id":"ACCT","domains":["a.example.com","B.example.com"],"challenge_type":"dns-01","auto_renew":true}`,
			`{"account_id":"ACCT","domains":["*.example.com"]}`, `{"account_id":"ACCT","domains":[]}`, `{"account_id":"ACCT","domains":["a..b"]}`,
			`{"account_id":"acct_x","domains":["a.example.com"]}`, `{"account_id":"ACCT","domains":"a.example.com"}`,
			`{"account_id":"ACCT","domains":["a.example.com"],"challenge_type":"dns"}`, `{}`, ``},
	}
	for route, bodies := range seeds {
		for _, b := range bodies {
			f.Add(uint8(route), []byte(b))
		}
	}
	f.Add(uint8(0), []byte(`{"data":{"k":"`+strings.Repeat("a", fuzzMaxBody)+`"}}`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		logs := &errorCounter{}
		s, err := newServer(Options{Seed: acmeTestSeed(), Logger: slog.New(logs)}, newFakeClock().Now)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.maxBody = fuzzMaxBody
		path := rt.path
		if strings.Contains(path, "LEASE") {
			rec := serveOne(s, "POST", "/v1/dynamic/support-db/creds/readonly", nil)
			var l fetch.Lease
			if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || l.LeaseID == "" {
				t.Fatalf("generate: %d %v", rec.Code, err)
			}
			path = strings.Replace(path, "LEASE", l.LeaseID, 1)
		}
		if acct := s.cfg.acme["le"]; acct != nil {
			body = bytes.ReplaceAll(body, []byte("ACCT"), []byte(acct.id))
		}
		rec := serveOne(s, rt.method, path, body)
		if rec.Code >= 500 || logs.n.Load() > 0 {
			t.Fatalf("%s %s with %q: status %d, %d error logs", rt.method, rt.path, body, rec.Code, logs.n.Load())
		}
		if len(body) > fuzzMaxBody && rec.Code < 400 {
			t.Fatalf("%s %s: a body of %d bytes past the bound of %d was accepted (%d)", rt.method, rt.path, len(body), fuzzMaxBody, rec.Code)
		}
		if rec.Code < 400 {
			return
		}
		if rt.path == "/v1/auth/token" {
			var te fetch.TokenError
			if err := json.Unmarshal(rec.Body.Bytes(), &te); err != nil || te.Error == "" {
				t.Fatalf("token endpoint error answer %q is not RFC 6749's", rec.Body.Bytes())
			}
		} else {
			var eb fetch.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.RequestID == "" {
				t.Fatalf("%s %s: error answer %q is not the contract's", rt.method, rt.path, rec.Body.Bytes())
			}
			if len(body) >= 16 && strings.Contains(eb.Error.Message, string(body)) {
				t.Fatalf("error message %q quotes the body", eb.Error.Message)
			}
		}
	})
}

// serveOne sends one request with the root token (the token endpoint
// takes a form and no token) and returns the recorded answer.
func serveOne(s *Server, method, path string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://127.0.0.1"+path, bytes.NewReader(body))
	if path == "/v1/auth/token" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r.Header.Set("Authorization", "Bearer "+rootTok)
		r.Header.Set("Content-Type", "application/json")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r.WithContext(ctx))
	return rec
}
