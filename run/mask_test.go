package run

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/mask"
	"github.com/scailabs/scaivault-run/template"
)

// The values the child runs on are always concealed, however often they
// rotate: a 60 KB value rotated again and again (each conceal is a start
// or a change) is concealed each time, and the bound on what the set
// keeps is kept by dropping the oldest superseded values, named in a
// warning without their value.
func TestConcealRotations(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	set := mask.NewSet()
	r := rand.New(rand.NewPCG(1, 2))
	var vals []string
	for i := range 12 {
		raw := make([]byte, 45000)
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		v := base64.StdEncoding.EncodeToString(raw)
		vals = append(vals, v)
		vars := []template.EnvVar{
			{Name: "BIG", Value: v, Ref: &fetch.Ref{Kind: fetch.Static, Path: "app/big", Key: "v"}},
			{Name: "SMALL", Value: fmt.Sprintf("small-secret-%d", i), Ref: &fetch.Ref{Kind: fetch.Static, Path: "app/small", Key: "v"}},
		}
		conceal(set, log, vars, nil, nil)
		var out bytes.Buffer
		f := mask.NewFilter(&out, set)
		fmt.Fprintf(f, "now %s %s\nbefore %s\n", v, vars[1].Value, vals[max(0, i-1)])
		f.Close()
		if want := "now <concealed:BIG> <concealed:SMALL>\nbefore <concealed:BIG>\n"; out.String() != want {
			t.Fatalf("rotation %d: %.200q", i, out.String())
		}
	}
	if !strings.Contains(logs.String(), "names=[BIG") || strings.Contains(logs.String(), vals[0][:20]) {
		t.Errorf("logs: %.500s", logs.String())
	}
}
