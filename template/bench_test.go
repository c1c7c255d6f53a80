package template_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

const (
	benchSecrets = 1000
	batchRoute   = "POST /v1/secrets/batch-read"
	listRoute    = "GET /v1/secrets"
)

// benchSeed holds bench/s0000 .. bench/s0999.
func benchSeed() *devserver.Seed {
	seed := &devserver.Seed{RootToken: "bench-root", Secrets: map[string]devserver.SeedSecret{}}
	for i := range benchSecrets {
		seed.Secrets[fmt.Sprintf("bench/s%04d", i)] = devserver.SeedSecret{
			Data: map[string]any{"value": fmt.Sprintf("v%04d", i), "n": i},
		}
	}
	return seed
}

// benchSet parses text as one template.
func benchSet(b *testing.B, text string) *template.Set {
	b.Helper()
	src := filepath.Join(b.TempDir(), "bench.tmpl")
	if err := os.WriteFile(src, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	set, err := template.Parse([]template.Spec{{Src: src, Dst: template.Stdout}}, template.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// BenchmarkRender1000Secrets renders a template that reads 1,000 secrets
// by name: "fetch" from nothing (batch-req/op: 10 expected, 100 paths a
// batch), "render" from a snapshot that has them all (target < 50 ms/op).
// The "discover" variant finds the paths with secrets PREFIX first.
//
//	go test ./template/ -run '^$' -bench Render1000 -benchmem
func BenchmarkRender1000Secrets(b *testing.B) {
	env := startDev(b, benchSeed())
	var text strings.Builder
	for i := range benchSecrets {
		fmt.Fprintf(&text, "s%04d={{ (secret %q).Data.value }} {{ add (secret %q).Data.n 1 }}\n",
			i, fmt.Sprintf("bench/s%04d", i), fmt.Sprintf("bench/s%04d", i))
	}
	byName := benchSet(b, text.String())
	discover := benchSet(b, `{{ range secrets "bench/" }}{{ with secret (print "bench/" .) }}{{ .Path }}={{ .Data.value }}
{{ end }}{{ end }}`)
	ctx := context.Background()

	fetchRender := func(set *template.Set) func(b *testing.B) {
		return func(b *testing.B) {
			batches, lists := env.srv.Requests(batchRoute), env.srv.Requests(listRoute)
			for b.Loop() {
				out, _, err := set.RenderAll(ctx, env.resolver.Resolve, nil)
				if err != nil || len(out[0].Data) == 0 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(env.srv.Requests(batchRoute)-batches)/float64(b.N), "batch-req/op")
			b.ReportMetric(float64(env.srv.Requests(listRoute)-lists)/float64(b.N), "list-req/op")
		}
	}
	b.Run("fetch", fetchRender(byName))
	b.Run("discover", fetchRender(discover))
	b.Run("render", func(b *testing.B) {
		_, snap, err := byName.RenderAll(ctx, env.resolver.Resolve, nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			out, missing, err := byName.Render(snap)
			if err != nil || len(missing) > 0 || len(out[0].Data) == 0 {
				b.Fatal(err, missing)
			}
		}
	})
}

// TestRender1000SecretsBatches checks the request count the benchmark
// reports, so that a regression fails the tests, not only the numbers.
func TestRender1000SecretsBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	env := startDev(t, benchSeed())
	var text strings.Builder
	for i := range benchSecrets {
		fmt.Fprintf(&text, "{{ (secret %q).Data.value }}\n", fmt.Sprintf("bench/s%04d", i))
	}
	src := filepath.Join(t.TempDir(), "bench.tmpl")
	if err := os.WriteFile(src, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := template.Parse([]template.Spec{{Src: src, Dst: template.Stdout}}, template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	passes := 1
	count := func(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
		passes++
		return env.resolver.Resolve(ctx, srcs, have)
	}
	out, _, err := set.RenderAll(context.Background(), count, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := env.srv.Requests(batchRoute); n != benchSecrets/100 {
		t.Errorf("%d batch reads, want %d", n, benchSecrets/100)
	}
	if passes != 2 || !strings.HasPrefix(string(out[0].Data), "v0000\nv0001\n") {
		t.Errorf("%d passes, output starts %.20q", passes, out[0].Data)
	}
}
