package devserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

const formType = "application/x-www-form-urlencoded"

func TestTokenEndpoint(t *testing.T) {
	h := newHarness(t, testSeed())
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"app-secret"}}

	r := h.do("POST", "/v1/auth/token", "", good.Encode(), "Content-Type", formType).want(t, 200)
	var tr fetch.TokenResponse
	r.decode(t, &tr)
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.AccessToken == "" {
		t.Fatalf("token response %+v", tr)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}

	// HTTP Basic with the same credentials.
	req, _ := http.NewRequest("POST", h.ts.URL+"/v1/auth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", formType)
	req.SetBasicAuth("writer", "writer-secret")
	res, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("basic auth: status %d", res.StatusCode)
	}

	cases := []struct {
		name   string
		form   url.Values
		basic  bool
		status int
		code   string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"nope"}}, false, 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"who"}, "client_secret": {"x"}}, false, 401, "invalid_client"},
		{"no grant", url.Values{"client_id": {"app"}, "client_secret": {"app-secret"}}, false, 400, "invalid_request"},
		{"bad grant", url.Values{"grant_type": {"password"}, "client_id": {"app"}}, false, 400, "unsupported_grant_type"},
		{"no client id", url.Values{"grant_type": {"client_credentials"}}, false, 400, "invalid_request"},
		{"basic and form", good, true, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{"Content-Type", formType}
			if tc.basic {
				hdr = append(hdr, "Authorization", "Basic YXBwOmFwcC1zZWNyZXQ=")
			}
			r := h.do("POST", "/v1/auth/token", "", tc.form.Encode(), hdr...).want(t, tc.status)
			var te fetch.TokenError
			r.decode(t, &te)
			if te.Error != tc.code || te.ErrorDescription == "" {
				t.Fatalf("error %+v, want %s", te, tc.code)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
			if strings.Contains(string(r.body), "app-secret") {
				t.Errorf("answer holds the client secret: %s", r.body)
			}
		})
	}
}

func TestUnauthorizedCodes(t *testing.T) {
	h := newHarness(t, testSeed())
	h.do("GET", "/v1/secrets/app/db", "", nil).wantErr(t, 401, fetch.CodeAuthFailed)
	h.do("GET", "/v1/secrets/app/db", "", nil, "Authorization", "Basic abc").wantErr(t, 401, fetch.CodeAuthFailed)
	h.do("GET", "/v1/secrets/app/db", "", nil, "Authorization", "Bearer").wantErr(t, 401, fetch.CodeAuthFailed)
	h.do("GET", "/v1/secrets/app/db", "no-such-token", nil).wantErr(t, 401, fetch.CodeInvalidToken)

	tok := h.token("app", "app-secret")
	h.do("GET", "/v1/secrets/app/db", tok, nil).want(t, 200)
	h.clock.Advance(time.Hour)
	h.do("GET", "/v1/secrets/app/db", tok, nil).wantErr(t, 401, fetch.CodeTokenExpired)
	// A fresh token works again.
	h.do("GET", "/v1/secrets/app/db", h.token("app", "app-secret"), nil).want(t, 200)
}

func TestDevExpireTokens(t *testing.T) {
	h := newHarness(t, testSeed())
	app, writer := h.token("app", "app-secret"), h.token("writer", "writer-secret")
	h.do("POST", "/v1/dev/tokens/expire", app, map[string]string{}).wantErr(t, 403, fetch.CodeAccessDenied)
	h.do("POST", "/v1/dev/tokens/expire", rootTok, map[string]string{"client_id": "app"}).want(t, 200)
	h.do("GET", "/v1/auth/whoami", app, nil).wantErr(t, 401, fetch.CodeTokenExpired)
	h.do("GET", "/v1/auth/whoami", writer, nil).want(t, 200)
	h.do("POST", "/v1/dev/tokens/expire", rootTok, nil).want(t, 200)
	h.do("GET", "/v1/auth/whoami", writer, nil).wantErr(t, 401, fetch.CodeTokenExpired)
}

func TestWhoami(t *testing.T) {
	h := newHarness(t, testSeed())
	var w fetch.Whoami
	h.do("GET", "/v1/auth/whoami", rootTok, nil).want(t, 200).decode(t, &w)
	if w.IdentityType != "root" || w.ExpiresAt != nil {
		t.Fatalf("root whoami %+v", w)
	}
	if !strings.Contains(string(h.do("GET", "/v1/auth/whoami", rootTok, nil).body), `"expires_at":null`) {
		t.Fatal("root whoami: expires_at is not null")
	}
	tok := h.token("writer", "writer-secret")
	h.do("GET", "/v1/auth/whoami", tok, nil).want(t, 200).decode(t, &w)
	want := h.clock.Now().Add(10 * time.Minute)
	if w.IdentityID != "writer" || w.IdentityType != "service" || w.ExpiresAt == nil || !w.ExpiresAt.Equal(want) {
		t.Fatalf("client whoami %+v, want expiry %v", w, want)
	}
}

func TestRootTokenGeneratedWhenEmpty(t *testing.T) {
	s, err := New(Options{Seed: &Seed{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.RootToken(), "dev-") || len(s.RootToken()) < 20 {
		t.Fatalf("root token %q", s.RootToken())
	}
}

func TestExportLines(t *testing.T) {
	got := ExportLines("http://127.0.0.1:8200", "it's", "")
	want := "export SCAIVAULT_BASE_URL='http://127.0.0.1:8200'\nexport SCAIVAULT_TOKEN='it'\\''s'\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = ExportLines("https://127.0.0.1:8200", "t", "/tmp/my ca.pem")
	want = "export SCAIVAULT_BASE_URL='https://127.0.0.1:8200'\nexport SCAIVAULT_CACERT='/tmp/my ca.pem'\nexport SCAIVAULT_TOKEN='t'\n"
	if got != want {
		t.Fatalf("with a CA: got %q, want %q", got, want)
	}
}
