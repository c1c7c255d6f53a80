package template_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

var update = flag.Bool("update", false, "rewrite testdata/templates/*.golden from the current output")

const goldenDir = "../testdata/templates"

// devEnv is a dev server seeded from testdata/templates/seed.json, with a
// root-token client and a resolver.
type devEnv struct {
	srv      *devserver.Server
	url      string
	client   *fetch.Client
	resolver *fetch.Resolver
}

func startDev(t testing.TB, seed *devserver.Seed) *devEnv {
	t.Helper()
	if seed == nil {
		data, err := os.ReadFile(filepath.Join(goldenDir, "seed.json"))
		if err != nil {
			t.Fatal(err)
		}
		if seed, err = devserver.ParseSeed(data, "seed.json"); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	// Cleanups run last-in first-out: the dev server closes its event
	// streams before httptest waits for them.
	t.Cleanup(ts.Close)
	t.Cleanup(func() { srv.Close() })
	client, err := fetch.New(fetch.Config{BaseURL: ts.URL, Token: srv.RootToken()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return &devEnv{srv: srv, url: ts.URL, client: client, resolver: &fetch.Resolver{Client: client}}
}

// testEnv is the environment {{ env }} sees in the golden tests.
func testEnv(name string) string {
	return map[string]string{"HOME": "/home/test", "REGION": "eu-west"}[name]
}

// renderGolden renders one template file and returns its output, or its
// error as text, with request ids made stable.
func renderGolden(t *testing.T, env *devEnv, src string) []byte {
	t.Helper()
	opt := template.Options{Getenv: testEnv}
	set, err := template.Parse([]template.Spec{{Src: src, Dst: template.Stdout}}, opt)
	if err != nil {
		return []byte("error: " + err.Error() + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, snap, err := set.RenderAll(ctx, env.resolver.Resolve, nil)
	t.Cleanup(func() {
		if err := env.revokeAll(snap); err != nil {
			t.Errorf("revoke: %v", err)
		}
	})
	if err != nil {
		return []byte("error: " + requestID.ReplaceAllString(err.Error(), "req_ID") + "\n")
	}
	var buf bytes.Buffer
	if _, err := template.WriteAll(out, opt, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var requestID = regexp.MustCompile(`req_[0-9A-Za-z]+`)

// TestGolden renders every testdata/templates/*.tmpl against the dev server
// and compares with NAME.golden (err_*.tmpl: the error). Regenerate with
// go test ./template/ -run TestGolden -update.
func TestGolden(t *testing.T) {
	env := startDev(t, nil)
	writeVersions(t, env)
	srcs, err := filepath.Glob(filepath.Join(goldenDir, "*.tmpl"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, src := range srcs {
		name := strings.TrimSuffix(filepath.Base(src), ".tmpl")
		t.Run(name, func(t *testing.T) {
			got := renderGolden(t, env, src)
			golden := strings.TrimSuffix(src, ".tmpl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, golden, got, want)
			}
			if strings.HasPrefix(name, "err_") != bytes.HasPrefix(got, []byte("error: ")) {
				t.Errorf("err_ templates must fail, the others succeed:\n%s", got)
			}
		})
	}
}

// writeVersions gives app/versioned two versions, for "version=N".
func writeVersions(t *testing.T, env *devEnv) {
	t.Helper()
	for _, v := range []string{"first", "second"} {
		req := fetch.WriteRequest{Data: map[string]any{"value": v}}
		if _, err := (&devserver.Admin{BaseURL: env.url, Token: env.srv.RootToken()}).Write(context.Background(), "app/versioned", req); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoldenCoversEveryFunction makes sure each function a template may
// call is rendered by some golden template.
func TestGoldenCoversEveryFunction(t *testing.T) {
	srcs, _ := filepath.Glob(filepath.Join(goldenDir, "*.tmpl"))
	var all strings.Builder
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	for _, name := range template.FuncNames() {
		if !regexp.MustCompile(`(^|[\s({|])` + name + `([\s)}.]|$)`).MatchString(all.String()) {
			t.Errorf("no golden template calls %s", name)
		}
	}
}

// revokeAll revokes every lease of snap (in the product, the ledger's job).
func (e *devEnv) revokeAll(snap *fetch.Snapshot) error {
	var errs []error
	if snap != nil {
		for _, l := range snap.Leases {
			errs = append(errs, e.client.Revoke(context.Background(), l.LeaseID))
		}
	}
	return errors.Join(errs...)
}
