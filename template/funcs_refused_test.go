package template

import (
	"os"
	"strings"
	"testing"
)

// Every function refused by name fails at parse time with its reason, and
// none of them is one we define (a refusal of a defined function would
// never show).
func TestRefusedFuncsFailAtParse(t *testing.T) {
	for name, r := range refusedFuncs {
		if _, ok := parseFuncs()[name]; ok {
			t.Errorf("%s is refused and defined", name)
		}
		_, err := parseTemplateText("app.tmpl", "text\n{{ "+name+" }}", "{{", "}}")
		want := `template app.tmpl:2:4: function "` + name + `" not defined: consul-template's ` + name + " " + r.why
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %v\nwant it to start with %s", name, err, want)
		}
		if r.instead != "" && !strings.HasSuffix(err.Error(), "; instead: "+r.instead) {
			t.Errorf("%s: error %v does not say what to use instead", name, err)
		}
	}
}

// A sprig_NAME we do not offer says that Sprig's NAME is not provided, and
// the function named as its replacement exists.
func TestRefusedSprigNames(t *testing.T) {
	for name, r := range sprigRefused {
		if _, ok := parseFuncs()["sprig_"+name]; ok {
			t.Errorf("sprig_%s is refused and defined", name)
		}
		_, err := parseTemplateText("app.tmpl", "{{ sprig_"+name+" }}", "{{", "}}")
		want := `template app.tmpl:1:4: function "sprig_` + name + `" not defined: Sprig's ` + name + " is not provided"
		if err == nil || !strings.HasPrefix(err.Error(), want) || (r.why != "" && !strings.Contains(err.Error(), r.why)) {
			t.Errorf("sprig_%s: error %v\nwant it to start with %s", name, err, want)
		}
		if use := strings.FieldsFunc(r.instead, func(c rune) bool { return c == ' ' || c == ',' })[0]; r.why == "" {
			if _, ok := parseFuncs()[use]; !ok && use != "print" {
				t.Errorf("sprig_%s: instead names %s, which is not defined", name, use)
			}
		}
	}
	_, err := parseTemplateText("app.tmpl", `{{ "a" | sprig_wrap 2 }}`, "{{", "}}")
	if err == nil || !strings.HasSuffix(err.Error(), `function "sprig_wrap" not defined: Sprig's wrap is not provided (docs/consul-template.md lists the sprig_ names there are)`) {
		t.Errorf("sprig_wrap: %v", err)
	}
	// Any other unknown name keeps text/template's message.
	_, err = parseTemplateText("app.tmpl", `{{ nosuch }}`, "{{", "}}")
	if err == nil || err.Error() != `template app.tmpl:1:4: function "nosuch" not defined` {
		t.Errorf("nosuch: %v", err)
	}
}

// docs/consul-template.md names every consul-template function refused
// here and every sprig_NAME there is.
func TestMigrationGuideNamesEveryFunction(t *testing.T) {
	b, err := os.ReadFile("../docs/consul-template.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for name := range refusedFuncs {
		if name == "key_exists" || name == "key_or_default" {
			continue // consul-template's old names
		}
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/consul-template.md does not name %s", name)
		}
	}
	for name := range parseFuncs() {
		if strings.HasPrefix(name, "sprig_") && !strings.Contains(doc, "`"+name) {
			t.Errorf("docs/consul-template.md does not name %s", name)
		}
	}
}
