package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	yaml "go.yaml.in/yaml/v3"
)

// maxConfigFile bounds what is read of a --config file.
const maxConfigFile = 1 << 20

// fileConfig is what a --config file gave: the values of repeatable flags
// (which repeated falls back to when neither the command line nor the
// variable gave any), the scalar ones having been set on the context.
type fileConfig struct {
	lists map[string][]string
}

// configKey is where repeated finds a context's fileConfig.
const configKey = "config"

// applyConfig reads --config (or SCAIVAULT_CONFIG), a YAML mapping of long
// flag names to values, into c: a flag given on the command line or by its
// variable wins over the file; a repeatable flag given so replaces the
// file's list. It is a small loader rather than urfave's altsrc, so that
// every error names the file, the line and the key: an unknown key, a
// value of the wrong shape, a flag that is not this command's.
//
// Values: scalars as YAML scalars (`poll-interval: 30s`, `once: true`);
// repeatable flags as lists; env also as a mapping (`env: {A: "scaivault://app/db#password"}`,
// in the file's order); template entries as "SRC:DST[:MODE]" strings or as
// mappings with source, destination and mode.
func applyConfig(c *cli.Context) error {
	name := c.String("config")
	if name == "" {
		return nil
	}
	data, err := readConfigFile(name)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("--config %s: %v", name, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("--config %s:%d: want a mapping of flag names to values", name, root.Line)
	}
	flags := map[string]cli.Flag{}
	for _, f := range c.Command.Flags {
		flags[f.Names()[0]] = f
	}
	if len(c.Command.Flags) == 0 { // the app's own action
		for _, f := range c.App.Flags {
			flags[f.Names()[0]] = f
		}
	}
	fc := &fileConfig{lists: map[string][]string{}}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		at := fmt.Sprintf("--config %s:%d: %s", name, k.Line, k.Value)
		f, ok := flags[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			return fmt.Errorf("--config %s:%d: a key must be a flag name", name, k.Line)
		case !knownFlag(k.Value) || k.Value == "config" || k.Value == "help":
			return fmt.Errorf("%s: unknown key (not a flag of scaivault-run, render or check)", at)
		case seen[k.Value]:
			return fmt.Errorf("%s: given twice", at)
		}
		seen[k.Value] = true
		if !ok {
			continue // a flag of another command: one file serves a run, render and check
		}
		if slices.Contains(repeatable, k.Value) {
			vals, err := configList(k.Value, v)
			if err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			fc.lists[k.Value] = vals
			continue
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return fmt.Errorf("--config %s:%d: %s: want a single value", name, v.Line, k.Value)
		}
		if c.IsSet(k.Value) {
			continue // the command line or the variable wins
		}
		if _, isBool := f.(*cli.BoolFlag); isBool && v.Tag != "!!bool" {
			return fmt.Errorf("--config %s:%d: %s: want true or false", name, v.Line, k.Value)
		}
		if err := c.Set(k.Value, v.Value); err != nil {
			return fmt.Errorf("--config %s:%d: %s: %v", name, v.Line, k.Value, err)
		}
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[configKey] = fc
	return nil
}

// knownFlag reports whether name is a flag of the main job, render or check.
func knownFlag(name string) bool {
	for _, set := range [][]cli.Flag{runFlags(), sourceFlags(), renderFlags(), checkFlags()} {
		for _, f := range set {
			if slices.Contains(f.Names(), name) {
				return true
			}
		}
	}
	return false
}

// configList reads a repeatable flag's values.
func configList(key string, v *yaml.Node) ([]string, error) {
	switch {
	case v.Kind == yaml.MappingNode && key == "env":
		var out []string
		for i := 0; i+1 < len(v.Content); i += 2 {
			n, val := v.Content[i], v.Content[i+1]
			if n.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: want NAME: VALUE", n.Line)
			}
			out = append(out, n.Value+"="+val.Value)
		}
		return out, nil
	case v.Kind == yaml.ScalarNode && v.Tag != "!!null":
		return []string{v.Value}, nil
	case v.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf("line %d: want a list", v.Line)
	}
	var out []string
	for _, item := range v.Content {
		switch {
		case item.Kind == yaml.ScalarNode && item.Tag != "!!null":
			out = append(out, item.Value)
		case item.Kind == yaml.MappingNode && key == "template":
			s, err := templateBlock(item)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		default:
			return nil, fmt.Errorf("line %d: want a string", item.Line)
		}
	}
	return out, nil
}

// templateBlock turns {source, destination, mode} into SRC:DST[:MODE].
// The other per-template options of DESIGN.md (command, reload_signal,
// wait, user, group, delimiters) are not supported yet: an error says so.
func templateBlock(n *yaml.Node) (string, error) {
	vals := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "source", "destination", "mode":
		case "command", "reload_signal", "wait", "user", "group", "left_delimiter", "right_delimiter":
			return "", fmt.Errorf("line %d: template option %q is not supported yet (use the global flags)", k.Line, k.Value)
		default:
			return "", fmt.Errorf("line %d: unknown template option %q (want source, destination, mode)", k.Line, k.Value)
		}
		if v.Kind != yaml.ScalarNode || v.Value == "" {
			return "", fmt.Errorf("line %d: template %s: want a string", v.Line, k.Value)
		}
		if _, dup := vals[k.Value]; dup {
			return "", fmt.Errorf("line %d: template %s given twice", k.Line, k.Value)
		}
		vals[k.Value] = v.Value
	}
	if vals["source"] == "" || vals["destination"] == "" {
		return "", fmt.Errorf("line %d: a template needs source and destination", n.Line)
	}
	for _, k := range []string{"source", "destination", "mode"} {
		if strings.Contains(vals[k], ":") {
			return "", fmt.Errorf("line %d: template %s %q: a value with \":\" is not supported", n.Line, k, vals[k])
		}
	}
	s := vals["source"] + ":" + vals["destination"]
	if m := vals["mode"]; m != "" {
		s += ":" + m
	}
	return s, nil
}

func readConfigFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("--config %s: is a directory", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", name, err)
	}
	if len(data) > maxConfigFile {
		return nil, errors.New("--config " + name + ": larger than 1 MiB")
	}
	return data, nil
}

// configLists is the file's values of a repeatable flag.
func configLists(c *cli.Context, name string) []string {
	fc, _ := c.App.Metadata[configKey].(*fileConfig)
	if fc == nil {
		return nil
	}
	return fc.lists[name]
}
