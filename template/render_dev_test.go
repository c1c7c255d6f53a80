package template_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

const generateRoute = "POST /v1/dynamic/{engine}/creds/{role}"

// specsIn writes templates into a temp dir; each renders to dir/NAME.out.
func specsIn(t *testing.T, kv ...string) []template.Spec {
	t.Helper()
	dir := t.TempDir()
	var specs []template.Spec
	for i := 0; i < len(kv); i += 2 {
		src := filepath.Join(dir, kv[i])
		if err := os.WriteFile(src, []byte(kv[i+1]), 0o600); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, template.Spec{Src: src, Dst: src + ".out"})
	}
	return specs
}

func TestLeaseSharedBetweenTemplates(t *testing.T) {
	env := startDev(t, nil)
	specs := specsIn(t,
		"a.tmpl", `{{ with dynamic "support-db" "readonly" "ttl=2h" }}{{ .LeaseID }} {{ .Data.username }}{{ end }}`,
		"b.tmpl", `{{ with dynamic "support-db" "readonly" "ttl=120m" }}{{ .LeaseID }} {{ .Data.username }}{{ end }}`)
	set, err := template.Parse(specs, template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, snap, err := set.RenderAll(context.Background(), env.resolver.Resolve, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer env.revokeAll(snap)
	if n := env.srv.Requests(generateRoute); n != 1 {
		t.Errorf("%d Generate requests, want 1 lease for both templates", n)
	}
	if string(out[0].Data) != string(out[1].Data) || !strings.HasPrefix(string(out[0].Data), "dyn_") {
		t.Errorf("outputs %q and %q should hold one lease", out[0].Data, out[1].Data)
	}
	// The env reference of DESIGN.md maps to the same source.
	ref, _, err := fetch.ParseRef("scaivault+dynamic://support-db/readonly?ttl=2h#username")
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0].Used) != 1 || out[0].Used[0] != ref.Source() || out[1].Used[0] != ref.Source() {
		t.Errorf("used %v and %v, want %v", out[0].Used, out[1].Used, ref.Source())
	}
}

func TestCertSharedWithEnvReference(t *testing.T) {
	env := startDev(t, nil)
	specs := specsIn(t, "c.tmpl",
		`{{ (pkiCert "svc-mtls" "common_name=a.svc.cluster.local" "alt_names=c.svc.cluster.local,b.svc.cluster.local" "ttl=72h").Serial }}`)
	set, err := template.Parse(specs, template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := set.RenderAll(context.Background(), env.resolver.Resolve, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := fetch.ParseRef("scaivault+pki://svc-mtls?common_name=a.svc.cluster.local&alt_names=b.svc.cluster.local,c.svc.cluster.local&ttl=3d#certificate_pem")
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0].Used) != 1 || out[0].Used[0] != ref.Source() {
		t.Errorf("used %v, want %v", out[0].Used, ref.Source())
	}
}

func TestResolveErrorsNameTemplateAndPath(t *testing.T) {
	env := startDev(t, nil)
	app, err := fetch.New(fetch.Config{BaseURL: env.url, ClientID: "app", ClientSecret: "app-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	resolver := &fetch.Resolver{Client: app}
	tests := []struct {
		text     string
		sentinel error
	}{
		{`{{ (secret "app/nope").Data.x }}`, fetch.ErrNotFound},
		{`{{ (secret "other/secret").Data.value }}`, fetch.ErrAccessDenied},
	}
	for _, tt := range tests {
		specs := specsIn(t, "ok.tmpl", `{{ (secret "app/db").Data.username }}`, "bad.tmpl", tt.text)
		set, err := template.Parse(specs, template.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = set.RenderAll(context.Background(), resolver.Resolve, nil)
		path := strings.Split(tt.text, `"`)[1]
		if err == nil || !strings.HasPrefix(err.Error(), "template "+specs[1].Src+": ") ||
			!strings.Contains(err.Error(), path) || !errors.Is(err, tt.sentinel) {
			t.Errorf("%s: error %v, want it to name %s and %s and match %v", tt.text, err, specs[1].Src, path, tt.sentinel)
		}
		if err != nil && strings.Contains(err.Error(), "not for app") {
			t.Errorf("error holds a value: %v", err)
		}
	}
}

func TestDependentDiscoveryAgainstServer(t *testing.T) {
	env := startDev(t, nil)
	specs := specsIn(t, "users.tmpl",
		`{{ range secrets "app/users/" }}{{ with secret (print "app/users/" .) }}{{ .Data.name }}={{ .Data.role }};{{ end }}{{ end }}`)
	set, err := template.Parse(specs, template.Options{})
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
	if got := string(out[0].Data); got != "alice=admin;bob=viewer;carol=viewer;" {
		t.Errorf("output %q", got)
	}
	if passes > 3 {
		t.Errorf("%d passes, want at most 3", passes)
	}
	if n := env.srv.Requests("POST /v1/secrets/batch-read"); n != 1 {
		t.Errorf("%d batch reads, want the three users in one", n)
	}
}
