package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/user"
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
	// templates are the file's template entries (strings or blocks),
	// used unless --template or SCAIVAULT_TEMPLATE gives any.
	templates []template.Spec
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
		if k.Value == "template" {
			specs, err := configTemplates(v, c.Command.Name != "check")
			if err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			fc.templates = specs
			continue
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
		default:
			return nil, fmt.Errorf("line %d: want a string", item.Line)
		}
	}
	return out, nil
}

// configTemplates reads the template list: "SRC:DST[:MODE]" strings
// and blocks, one or a list of them. Without lookupOwners (check) a
// block's user and group are checked for their form only and give no
// owner: the machine that checks (a CI runner) often has another user
// database than the image that runs, as with --user.
func configTemplates(v *yaml.Node, lookupOwners bool) ([]template.Spec, error) {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	var out []template.Spec
	for _, item := range items {
		switch {
		case item.Kind == yaml.MappingNode:
			sp, err := templateBlock(item, lookupOwners)
			if err != nil {
				return nil, err
			}
			out = append(out, sp)
		case item.Kind == yaml.ScalarNode && item.Tag != "!!null":
			sp, err := template.ParseSpec(item.Value)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", item.Line, err)
			}
			out = append(out, sp)
		default:
			return nil, fmt.Errorf("line %d: want \"SRC:DST[:MODE]\" or a block with source and destination", item.Line)
		}
	}
	return out, nil
}

// templateBlock reads one template block of a --config file: source and
// destination (required), mode, user and group (the file's owner, resolved
// from /etc/passwd and /etc/group as --user is), left_delimiter and
// right_delimiter, and
// what to do when the file changes: command (an argv, never a shell; with
// command_timeout) or reload_signal, and wait. Errors name the line and
// the key.
func templateBlock(n *yaml.Node, lookupOwners bool) (template.Spec, error) {
	var sp template.Spec
	uid, gid := -1, -1
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return sp, fmt.Errorf("line %d: template %s given twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		if k.Value == "command" {
			argv, err := commandArgv(v)
			if err != nil {
				return sp, err
			}
			sp.Command = argv
			continue
		}
		if !slices.Contains(templateKeys, k.Value) {
			return sp, fmt.Errorf("line %d: unknown template option %q (want %s)", k.Line, k.Value, strings.Join(templateKeys, ", "))
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Value == "" {
			return sp, fmt.Errorf("line %d: template %s: want a string", v.Line, k.Value)
		}
		var err error
		switch val := v.Value; k.Value {
		case "source":
			sp.Src = val
		case "destination":
			sp.Dst = val
		case "mode":
			sp.Mode, err = template.ParseFileMode(val)
		case "left_delimiter":
			sp.Delims[0] = val
		case "right_delimiter":
			sp.Delims[1] = val
		case "reload_signal":
			sp.ReloadSignal, err = signal.Parse(val)
		case "command_timeout":
			sp.CommandTimeout, err = time.ParseDuration(val)
			if err == nil && sp.CommandTimeout <= 0 {
				err = errors.New("want a positive duration")
			}
		case "wait":
			var w template.Wait
			w.Min, w.Max, err = parseWait(val)
			sp.Wait = &w
		case "user":
			var c user.Creds
			if strings.Contains(val, ":") {
				err = errors.New("a user name or uid (the group goes in group)")
			} else if !lookupOwners {
				continue
			} else if c, err = user.Lookup(val); err == nil {
				uid = c.UID
				if !seen["group"] {
					gid = c.GID
				}
			}
		case "group":
			if lookupOwners {
				gid, err = user.LookupGroup(val)
			}
		}
		if err != nil {
			return sp, fmt.Errorf("line %d: template %s: %v", v.Line, k.Value, err)
		}
	}
	if gid >= 0 {
		// user alone: its primary group; group alone: the uid is filled
		// in at start (--user's, else scaivault-run's own).
		sp.Owner = &template.Owner{UID: uid, GID: gid}
	}
	switch {
	case sp.Src == "" || sp.Dst == "":
		return sp, fmt.Errorf("line %d: a template needs source and destination", n.Line)
	case sp.Owner != nil && sp.Dst == template.Stdout:
		return sp, fmt.Errorf("line %d: template to standard output (-): user and group apply to files", n.Line)
	case sp.Command != nil && sp.ReloadSignal != 0:
		return sp, fmt.Errorf("line %d: template %s: command and reload_signal both given (one action per file: a command, or a signal to the child)", n.Line, sp.Dst)
	case sp.CommandTimeout != 0 && sp.Command == nil:
		return sp, fmt.Errorf("line %d: template %s: command_timeout without a command", n.Line, sp.Dst)
	case (sp.Delims[0] == "") != (sp.Delims[1] == ""):
		return sp, fmt.Errorf("line %d: template %s: left_delimiter and right_delimiter go together", n.Line, sp.Dst)
	case sp.Dst == template.Stdout && (sp.Command != nil || sp.ReloadSignal != 0 || sp.Wait != nil):
		return sp, fmt.Errorf("line %d: template to standard output (-): command, reload_signal and wait apply to files", n.Line)
	}
	if sp.Delims[0] != "" {
		if err := template.CheckDelims(sp.Delims[0], sp.Delims[1]); err != nil {
			return sp, fmt.Errorf("line %d: template %s: delimiters: %v", n.Line, sp.Dst, err)
		}
	}
	return sp, nil
}

// templateKeys are the options of a template block, command aside.
var templateKeys = []string{"source", "destination", "mode", "command", "command_timeout",
	"reload_signal", "wait", "user", "group", "left_delimiter", "right_delimiter"}

// commandArgv reads a template's command: a list of strings, the first
// the program. A single string is refused rather than split or given to a
// shell: scaivault-run never runs one.
func commandArgv(v *yaml.Node) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: template command: want a list, such as [\"nginx\", \"-s\", \"reload\"] (no shell is used; for one, [\"sh\", \"-c\", \"...\"])", v.Line)
	}
	if len(v.Content) == 0 {
		return nil, fmt.Errorf("line %d: template command: empty", v.Line)
	}
	argv := make([]string, 0, len(v.Content))
	for _, a := range v.Content {
		if a.Kind != yaml.ScalarNode || a.Tag == "!!null" {
			return nil, fmt.Errorf("line %d: template command: want strings", a.Line)
		}
		argv = append(argv, a.Value)
	}
	if argv[0] == "" {
		return nil, fmt.Errorf("line %d: template command: empty program name", v.Line)
	}
	return argv, nil
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

// fileTemplates is the --config file's template entries.
func fileTemplates(c *cli.Context) []template.Spec {
	fc, _ := c.App.Metadata[configKey].(*fileConfig)
	if fc == nil {
		return nil
	}
	return fc.templates
}

// configLists is the file's values of a repeatable flag.
func configLists(c *cli.Context, name string) []string {
	fc, _ := c.App.Metadata[configKey].(*fileConfig)
	if fc == nil {
		return nil
	}
	return fc.lists[name]
}
