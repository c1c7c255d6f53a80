package run

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/scailabs/scaivault-run/template"
)

// printEnv writes the variables that scaivault-run sets or resolves (not the
// plain inherited environment) in .env syntax or as one JSON object. Values
// are masked unless ro.ShowValues: a masked value shows where it came from.
// The env format quotes values so that the output reads back as an
// --env-file.
func printEnv(ro RenderOptions, vars []template.EnvVar) error {
	out := make([][2]string, 0, len(vars))
	for _, v := range vars {
		if v.Ref == nil && v.Origin == "environment" {
			continue
		}
		val := v.Value
		if !ro.ShowValues {
			val = template.Mask(v)
		}
		out = append(out, [2]string{v.Name, val})
	}
	switch ro.Format {
	case "json":
		m := make(map[string]string, len(out))
		for _, kv := range out {
			m[kv[0]] = kv[1]
		}
		enc := json.NewEncoder(ro.Stdout)
		enc.SetEscapeHTML(false) // masks are <scaivault://…>
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	default:
		return writeDotenv(ro.Stdout, out)
	}
}

func writeDotenv(w io.Writer, kvs [][2]string) error {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(template.QuoteDotenv(kv[1]))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
