package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/template"
	yaml "go.yaml.in/yaml/v3"
)

// The list values of a --config file (env as a mapping or a list, template
// blocks) give values or an error naming a line, never a panic; a template
// that is accepted has a source and a destination and at most one action.
func FuzzConfigList(f *testing.F) {
	for _, s := range []string{
		"env: {A: x, B: \"scaivault://app/db#p\"}",
		"env: [A=1, B=2]",
		"template: [{source: a, destination: b, mode: \"0640\"}, \"c:d\"]",
		"template: [{source: a}]",
		"template: [{source: a, destination: b, command: [x]}]",
		"secret: app/db",
		"env: {A: [1]}",
		"template: [[a]]",
		"template: [{source: a:b, destination: c}]",
		"template: {source: a, destination: b, reload_signal: HUP, wait: 1s:5s}",
		"template: [{source: a, destination: b, command: [x, y], command_timeout: 2s, left_delimiter: '[[', right_delimiter: ']]'}]",
		"template: [{source: a, destination: b, command: [x], reload_signal: HUP}]",
		"template: [{source: a, destination: '-', command: [x]}]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(s), &doc) != nil || len(doc.Content) == 0 {
			return
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(root.Content); i += 2 {
			key, v := root.Content[i].Value, root.Content[i+1]
			if key == "template" {
				specs, err := configTemplates(v, true)
				if err != nil {
					if !strings.Contains(err.Error(), "line ") {
						t.Fatalf("configTemplates: error names no line: %v", err)
					}
					continue
				}
				for _, sp := range specs {
					switch {
					case sp.Src == "" || sp.Dst == "":
						t.Fatalf("template %+v accepted without source or destination", sp)
					case sp.Command != nil && sp.ReloadSignal != 0:
						t.Fatalf("template %+v accepted with two actions", sp)
					case sp.Command != nil && (len(sp.Command) == 0 || sp.Command[0] == ""):
						t.Fatalf("template %+v accepted with an empty command", sp)
					case (sp.Delims[0] == "") != (sp.Delims[1] == ""):
						t.Fatalf("template %+v accepted with one delimiter", sp)
					}
				}
				continue
			}
			if _, err := configList(key, v); err != nil && !strings.Contains(err.Error(), "line ") {
				t.Fatalf("configList(%q): error names no line: %v", key, err)
			}
		}
	})
}

// The example config files hold only known keys and valid template blocks,
// whose templates (beside them, or in the same ConfigMap) parse.
func TestExampleConfigs(t *testing.T) {
	nginx, err := os.ReadFile("examples/nginx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkExampleConfig(t, "examples/nginx.yaml", nginx, func(name string) string { return filepath.Join("examples/nginx", name) })

	raw, err := os.ReadFile("examples/kubernetes-sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	for {
		var cm struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if dec.Decode(&cm) != nil {
			break
		}
		if cm.Kind != "ConfigMap" {
			continue
		}
		dir := t.TempDir()
		for name, text := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		checkExampleConfig(t, "examples/kubernetes-sidecar.yaml", []byte(cm.Data["scaivault-run.yaml"]), func(name string) string { return filepath.Join(dir, name) })
		return
	}
	t.Fatal("examples/kubernetes-sidecar.yaml: no ConfigMap")
}

func checkExampleConfig(t *testing.T, name string, data []byte, source func(base string) string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		t.Fatalf("%s: %v", name, err)
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !knownFlag(k.Value) {
			t.Errorf("%s:%d: unknown key %s", name, k.Line, k.Value)
		}
		if k.Value != "template" {
			continue
		}
		specs, err := configTemplates(v, true)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, sp := range specs { // the templates as installed
			sp.Src = source(filepath.Base(sp.Src))
			if _, err := template.Parse([]template.Spec{sp}, template.Options{}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
