package devserver

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsAndErrorsHoldNoSecrets drives every kind of call, good and bad,
// and scans the log and every error body for every secret value in play.
func TestLogsAndErrorsHoldNoSecrets(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, testSeed(), func(o *Options) { o.Logger = logger })
	secrets := []string{rootTok, "app-secret", "writer-secret", "ops-secret", "pw1", "key-1", "s3cr3t-value"}
	var errorBodies []string
	record := func(r *resp) {
		if r.status >= 400 {
			errorBodies = append(errorBodies, string(r.body))
		}
	}

	tok := h.token("app", "app-secret")
	secrets = append(secrets, tok)
	h.write("app/x", map[string]any{"data": map[string]any{"v": "s3cr3t-value"}})
	record(h.do("PUT", "/v1/secrets/app/x", rootTok, `{"data":{"v":"s3cr3t-value"},"cas":9}`))
	record(h.do("PUT", "/v1/secrets/app/x", rootTok, `{"data":{"v":"s3cr3t-value"`))
	record(h.do("PUT", "/v1/secrets/app/x", rootTok, `{"data":{"v":s3cr3t-value}}`))
	record(h.do("PUT", "/v1/secrets/app/x", rootTok, `{"data":{"value":"s3cr3t-value"},"secret_type":"binary"}`))
	record(h.do("GET", "/v1/secrets/app/x", "s3cr3t-value", nil))
	record(h.do("GET", "/v1/secrets/other/secret", tok, nil))
	record(h.do("POST", "/v1/auth/token", "", "grant_type=client_credentials&client_id=app&client_secret=s3cr3t-value",
		"Content-Type", formType))
	l := h.generate("support-db/creds/readonly", rootTok, nil)
	secrets = append(secrets, str(t, l.Data["password"]))
	record(h.do("POST", "/v1/dynamic/leases/"+l.LeaseID+"/renew", rootTok, `{"increment":"soon"}`))
	var c fetch.Cert
	h.do("POST", "/v1/pki/issue/svc-mtls", rootTok, map[string]any{"common_name": "localhost"}).want(t, 200).decode(t, &c)
	secrets = append(secrets, strings.Split(c.PrivateKeyPEM, "\n")[1])
	h.s.SetFaults(Faults{Next: 1})
	record(h.do("GET", "/v1/secrets/app/x", rootTok, nil))

	text := logs.String() + strings.Join(errorBodies, "\n")
	for _, sec := range secrets {
		if strings.Contains(text, sec) {
			t.Errorf("a secret value (%d chars) appears in logs or error bodies", len(sec))
		}
	}
	// Each request is logged with method, path, status and request id.
	var line map[string]any
	first := strings.SplitN(logs.String(), "\n", 2)[0]
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"method", "path", "status", "request_id"} {
		if line[k] == nil {
			t.Errorf("log line without %s: %s", k, first)
		}
	}
}
