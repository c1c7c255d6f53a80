package fetch_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"SCAIVAULT_BASE_URL":        " https://vault.example ",
		"SCAIVAULT_TOKEN":           "tok\n",
		"SCAIVAULT_TOKEN_FILE":      "/run/token",
		"SCAIKEY_CLIENT_ID":         "app",
		"SCAIKEY_CLIENT_SECRET":     "s",
		"SCAIKEY_TOKEN_URL":         "https://auth.example/token",
		"SCAIVAULT_CACERT":          "/etc/ca.pem",
		"SCAIVAULT_CAPATH":          "/etc/cas",
		"SCAIVAULT_CLIENT_CERT":     "/run/tls.crt",
		"SCAIVAULT_CLIENT_KEY":      "/run/tls.key",
		"SCAIVAULT_TLS_SERVER_NAME": "vault.internal",
		"SCAIVAULT_TLS_SKIP_VERIFY": "1",
	}
	got, err := fetch.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := fetch.Config{BaseURL: "https://vault.example", Token: "tok", TokenFile: "/run/token",
		ClientID: "app", ClientSecret: "s", TokenURL: "https://auth.example/token",
		TLS: fetch.TLSConfig{CACert: "/etc/ca.pem", CAPath: "/etc/cas", ClientCert: "/run/tls.crt",
			ClientKey: "/run/tls.key", ServerName: "vault.internal", SkipVerify: true}}
	if got != want {
		t.Errorf("ConfigFromEnv = %+v\nwant %+v", got, want)
	}
	env["SCAIVAULT_TLS_SKIP_VERIFY"] = "ture"
	if _, err := fetch.ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "SCAIVAULT_TLS_SKIP_VERIFY") {
		t.Errorf("ConfigFromEnv with a misspelt boolean: err = %v, want one naming the variable", err)
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     fetch.Config
		wantErr string // "" for success
	}{
		{"https", fetch.Config{BaseURL: "https://vault.example/", Token: "t"}, ""},
		{"http loopback v4", fetch.Config{BaseURL: "http://127.0.0.1:8200", Token: "t"}, ""},
		{"http loopback v6", fetch.Config{BaseURL: "http://[::1]:8200", Token: "t"}, ""},
		{"http localhost", fetch.Config{BaseURL: "http://localhost:8200", Token: "t"}, ""},
		{"http sub.localhost", fetch.Config{BaseURL: "http://vault.localhost", Token: "t"}, ""},
		{"path prefix", fetch.Config{BaseURL: "https://host/vault", Token: "t"}, ""},
		{"http remote", fetch.Config{BaseURL: "http://vault.example", Token: "t"}, "https is required"},
		{"no base", fetch.Config{Token: "t"}, "SCAIVAULT_BASE_URL"},
		{"bad scheme", fetch.Config{BaseURL: "ftp://h", Token: "t"}, "scheme"},
		{"no host", fetch.Config{BaseURL: "https://", Token: "t"}, "no host"},
		{"user info", fetch.Config{BaseURL: "https://u:pw@h", Token: "t"}, "user info"},
		{"unparsable", fetch.Config{BaseURL: "https://h/%zz", Token: "t"}, "invalid URL"},
		{"no credentials", fetch.Config{BaseURL: "https://h"},
			"SCAIVAULT_TOKEN, SCAIVAULT_TOKEN_FILE, or SCAIKEY_CLIENT_ID and SCAIKEY_CLIENT_SECRET"},
		{"id without secret", fetch.Config{BaseURL: "https://h", ClientID: "a"}, "SCAIKEY_CLIENT_SECRET"},
		{"secret without id", fetch.Config{BaseURL: "https://h", ClientSecret: "s"}, "SCAIKEY_CLIENT_ID"},
		{"client credentials", fetch.Config{BaseURL: "https://h", ClientID: "a", ClientSecret: "s"}, ""},
		{"token URL http remote", fetch.Config{BaseURL: "https://h", ClientID: "a", ClientSecret: "s",
			TokenURL: "http://auth.example/token"}, "SCAIKEY_TOKEN_URL"},
		{"token wins over client credentials", fetch.Config{BaseURL: "https://h", Token: "t", ClientID: "a"}, ""},
		{"token with newline", fetch.Config{BaseURL: "https://h", Token: "a\nb"}, "control character"},
		{"token file", fetch.Config{BaseURL: "https://h", TokenFile: tokFile}, ""},
		{"token file wins over client credentials", fetch.Config{BaseURL: "https://h", TokenFile: tokFile, ClientID: "a"}, ""},
		{"token and token file", fetch.Config{BaseURL: "https://h", Token: "t", TokenFile: tokFile},
			"both SCAIVAULT_TOKEN and SCAIVAULT_TOKEN_FILE"},
		{"missing token file", fetch.Config{BaseURL: "https://h", TokenFile: filepath.Join(dir, "nope")}, "no such file"},
		{"empty token file", fetch.Config{BaseURL: "https://h", TokenFile: emptyFile}, "empty token"},
		{"negative timeout", fetch.Config{BaseURL: "https://h", Token: "t", RequestTimeout: -1}, "timeout"},
		{"bad retry", fetch.Config{BaseURL: "https://h", Token: "t", Retry: fetch.RetryPolicy{Multiplier: 0.5}}, "multiplier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := fetch.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("New succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			for _, secret := range []string{"pw", "a\nb"} {
				if strings.Contains(err.Error(), secret) && tt.name != "no credentials" {
					t.Errorf("error %q quotes a credential", err)
				}
			}
		})
	}
}
