package main

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// The list values of a --config file (env as a mapping or a list, template
// blocks) give values or an error naming a line, never a panic; a template
// block never gives more than SRC:DST:MODE (a path with ":" is refused).
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
			key := root.Content[i].Value
			vals, err := configList(key, root.Content[i+1])
			if err != nil {
				if !strings.Contains(err.Error(), "line ") {
					t.Fatalf("configList(%q): error names no line: %v", key, err)
				}
				continue
			}
			if key != "template" || root.Content[i+1].Kind != yaml.SequenceNode {
				continue
			}
			for j, item := range root.Content[i+1].Content {
				if item.Kind == yaml.MappingNode && strings.Count(vals[j], ":") > 2 {
					t.Fatalf("template block gave %q: more than SRC:DST:MODE", vals[j])
				}
			}
		}
	})
}
