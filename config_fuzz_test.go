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
				specs, err := configTemplates(v)
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

// The example config files hold only known keys and valid template blocks.
func TestExampleConfigs(t *testing.T) {
	for _, name := range []string{"examples/nginx.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], root.Content[i+1]
			if !knownFlag(k.Value) {
				t.Errorf("%s:%d: unknown key %s", name, k.Line, k.Value)
			}
			if k.Value == "template" {
				specs, err := configTemplates(v)
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				for _, sp := range specs { // the templates beside it, as installed
					sp.Src = filepath.Join("examples/nginx", filepath.Base(sp.Src))
					if _, err := template.Parse([]template.Spec{sp}, template.Options{}); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
			}
		}
	}
}
