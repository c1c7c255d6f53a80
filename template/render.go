package template

// Rendering of --template files (DESIGN.md, "Templates").
//
// A Set holds the parsed templates. Rendering reads values only from a
// fetch.Snapshot: a template function whose source the snapshot lacks
// records the source as missing and returns a placeholder, so that one pass
// finds every source the template needs; the caller resolves the missing
// sources and renders again (RenderAll drives that loop). The output of a
// pass with missing sources is thrown away, and so are its errors: only a
// pass that had everything may fail.
//
// The functions a template may call are listed in funcs.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"

	texttemplate "text/template"

	"github.com/scailabs/scaivault-run/fetch"
)

// MaxPasses bounds the render-resolve rounds of RenderAll. Each round
// resolves every source a pass found missing, so only templates whose
// paths hang on values of other secrets (a chain of such lookups) need more
// than two.
const MaxPasses = 10

// Options configure parsing, rendering and writing. The zero value of each
// field is its documented default.
type Options struct {
	// Delims are the action delimiters (--template-delims, see
	// ParseDelims); zero: "{{" and "}}".
	Delims [2]string
	// CreateDirs creates missing parent directories of a DST, mode 0755
	// (like consul-template: the file's own mode guards its content),
	// instead of failing (--template-create-dirs).
	CreateDirs bool
	// LookupEnv answers {{ env NAME }} and tells envOrDefault whether NAME
	// is set at all (consul-template's default is for an unset variable
	// only, not for an empty one); nil: Getenv when set, else
	// os.LookupEnv, scaivault-run's own environment, credentials included.
	// The caller should pass a lookup that leaves out what the child does
	// not get (main leaves out scaivault-run's credentials).
	LookupEnv func(string) (string, bool)
	// Getenv is the older form of LookupEnv, used only when LookupEnv is
	// nil: it cannot tell an empty variable from an unset one, so
	// envOrDefault takes an empty value for an unset one.
	Getenv func(string) string
	// Logger gets WriteAll's warnings (a replaced file that cannot keep its
	// owner); nil: discarded.
	Logger *slog.Logger
	// Dirs, when set, holds the destinations' directories open from their
	// first write (--user: see Dirs); nil: each write opens them by path.
	Dirs *Dirs
}

// Set is a parsed set of templates. It is immutable after Parse; Render
// and RenderAll may run from several goroutines at once.
type Set struct {
	opt     Options
	entries []*tmplEntry
}

type tmplEntry struct {
	spec Spec
	tmpl *texttemplate.Template // parsed with missingkey=error; cloned per render
	dirs *Dirs                  // {{ file }} reads through it (Options.Dirs)
}

// Rendered is the output of one template.
type Rendered struct {
	Spec Spec
	Data []byte
	// Used lists the sources the template read, in the order it first read
	// them: what the watcher re-renders it for.
	Used []fetch.Source
}

// Parse reads and parses every SRC. A syntax error names the file, line
// and, where it can be found, the column: `template app.tmpl:3:14: ...`.
// Two specs writing the same DST are an error (stdout excepted).
func Parse(specs []Spec, opt Options) (*Set, error) {
	left, right, err := opt.delims()
	if err != nil {
		return nil, err
	}
	s := &Set{opt: opt}
	dsts := map[string]string{}
	for _, sp := range specs {
		if sp.Src == "" || sp.Dst == "" {
			return nil, fmt.Errorf("template %q: empty SRC or DST", sp.Src+":"+sp.Dst)
		}
		if sp.Dst != Stdout {
			key := filepath.Clean(sp.Dst)
			if prev, dup := dsts[key]; dup {
				return nil, fmt.Errorf("templates %s and %s both write %s", prev, sp.Src, sp.Dst)
			}
			dsts[key] = sp.Src
		}
		text, err := opt.Dirs.readFile(sp.Src)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", sp.Src, err)
		}
		l, r := left, right
		if sp.Delims[0] != "" {
			l, r = sp.Delims[0], sp.Delims[1]
		}
		t, err := parseTemplateText(sp.Src, string(text), l, r)
		if err != nil {
			return nil, err
		}
		s.entries = append(s.entries, &tmplEntry{spec: sp, tmpl: t, dirs: opt.Dirs})
	}
	return s, nil
}

// parseTemplateText parses one template; name is the name errors give it.
func parseTemplateText(name, text, left, right string) (*texttemplate.Template, error) {
	t := texttemplate.New(name).Delims(left, right).Option("missingkey=error").Funcs(parseFuncs())
	if _, err := t.Parse(text); err != nil {
		return nil, templateParseError(name, text, left, err)
	}
	return t, nil
}

// Render renders every template against snap (nil: empty). When any
// template read a source snap lacks, out is nil and missing lists those
// sources, each once, in the order found; the caller resolves them and
// renders again. err is a template's failure with nothing missing: a
// missing key, a failing function, a bad option. Errors name the template
// file, line and column, and never hold a secret value.
func (s *Set) Render(snap *fetch.Snapshot) (out []Rendered, missing []fetch.Source, err error) {
	res, err := s.renderPass(nil, snap, nil)
	if err != nil {
		return nil, nil, err
	}
	seen := map[fetch.Source]bool{}
	for _, r := range res {
		for _, src := range r.missing {
			if !seen[src] {
				seen[src] = true
				missing = append(missing, src)
			}
		}
	}
	if len(missing) > 0 {
		return nil, missing, nil
	}
	out = make([]Rendered, len(res))
	for i, r := range res {
		out[i] = r.Rendered
	}
	return out, nil, nil
}

// ResolveFunc is how RenderAll fetches what a pass found missing: it returns
// have plus srcs (fetch.Resolver.Resolve has this shape).
type ResolveFunc func(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error)

// RenderAll renders, resolves what is missing and renders again until
// nothing is missing (at most MaxPasses passes), then returns every output
// and the snapshot they were rendered from. Missing sources are resolved
// template by template, in spec order, so that a resolve error (a 404, an
// access denied) names the template that asked: `template app.tmpl: ...`;
// a source two templates share is fetched once (one lease, one
// certificate). Nothing is written.
//
// The returned snapshot is the last one, also on error: it holds the leases
// generated so far, for the caller to revoke or keep.
func (s *Set) RenderAll(ctx context.Context, resolve ResolveFunc, snap *fetch.Snapshot) ([]Rendered, *fetch.Snapshot, error) {
	for pass := 1; ; pass++ {
		if err := ctx.Err(); err != nil {
			return nil, snap, err
		}
		res, err := s.renderPass(ctx.Done(), snap, nil)
		if err != nil {
			return nil, snap, err
		}
		if !anyMissing(res) {
			out := make([]Rendered, len(res))
			for i, r := range res {
				out[i] = r.Rendered
			}
			return out, snap, nil
		}
		if pass == MaxPasses {
			return nil, snap, passesError(res)
		}
		if snap, err = resolveMissing(ctx, resolve, res, snap); err != nil {
			return nil, snap, err
		}
	}
}

// Discover finds the sources the templates read, creating nothing: it
// renders, resolves what is missing and renders again, as RenderAll does,
// but a missing source for which skip reports true (a lease or a
// certificate, a secret that could not be read) is never resolved: the
// templates go on with a placeholder for it. It ends when nothing but
// skipped sources is missing, and returns every source found missing on
// the way, each once, by template (a source two templates read is listed
// for both). resolve need not resolve everything it is asked for: what it
// leaves out must then be skipped (else Discover reports it missing after
// MaxPasses). err is a template's own failure (a missing key, a failing
// function) or a resolve error; found holds what was found until then.
// Nothing is written. For the check subcommand.
func (s *Set) Discover(ctx context.Context, resolve ResolveFunc, snap *fetch.Snapshot, skip func(fetch.Source) bool) (found map[string][]fetch.Source, _ *fetch.Snapshot, err error) {
	found = map[string][]fetch.Source{}
	seen := map[string]map[fetch.Source]bool{}
	for pass := 1; ; pass++ {
		if err := ctx.Err(); err != nil {
			return found, snap, err
		}
		res, err := s.renderPass(ctx.Done(), snap, func(src fetch.Source) bool { return !skip(src) })
		if err != nil {
			return found, snap, err
		}
		var need []fetch.Source
		for _, r := range res {
			src := r.Spec.Src
			if seen[src] == nil {
				seen[src] = map[fetch.Source]bool{}
			}
			for _, m := range r.missing {
				if !seen[src][m] {
					seen[src][m] = true
					found[src] = append(found[src], m)
				}
				if !skip(m) && !snap.Has(m) && !slices.Contains(need, m) {
					need = append(need, m)
				}
			}
		}
		if len(need) == 0 {
			return found, snap, nil
		}
		if pass == MaxPasses {
			return found, snap, passesError(res)
		}
		if snap, err = resolve(ctx, need, snap); err != nil {
			return found, snap, err
		}
	}
}

func anyMissing(res []passResult) bool {
	for _, r := range res {
		if len(r.missing) > 0 {
			return true
		}
	}
	return false
}

func passesError(res []passResult) error {
	for _, r := range res {
		if len(r.missing) > 0 {
			return r.errorf(nil, "%s still missing after %d passes (lookups that depend on each other too deeply?)",
				r.missing[0], MaxPasses)
		}
	}
	return errors.New("template: sources still missing")
}

// resolveMissing resolves the missing sources of each template in turn.
func resolveMissing(ctx context.Context, resolve ResolveFunc, res []passResult, snap *fetch.Snapshot) (*fetch.Snapshot, error) {
	for _, r := range res {
		var need []fetch.Source
		for _, src := range r.missing {
			if !snap.Has(src) {
				need = append(need, src)
			}
		}
		if len(need) == 0 {
			continue
		}
		next, err := resolve(ctx, need, snap)
		if err != nil {
			if next != nil {
				// What a failing resolve did fetch (leases included) is
				// handed back, so that the caller can revoke it.
				snap = next
			}
			return snap, r.errorf(err, "%v", err)
		}
		for _, src := range need {
			if !next.Has(src) {
				return next, r.errorf(nil, "%s was not resolved", src)
			}
		}
		snap = next
	}
	return snap, nil
}

// passResult is one template's pass: its output when complete, else what it
// found missing.
type passResult struct {
	Rendered
	missing []fetch.Source
	// redact hides in a message the values this pass read: a source it
	// asks for may be named by one ({{ secret (secret "a").Data.path }}).
	redact func(msg string, keep ...string) string
}

// errorf is a resolve error of r's template, with no value r read in it.
func (r passResult) errorf(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if r.redact != nil {
		msg = r.redact(msg)
	}
	return &renderError{msg: fmt.Sprintf("template %s: %s", r.Spec.Src, msg), err: err}
}

// renderPass renders every template once; a {{ file }} read that blocks
// (a FIFO, a hung mount) ends with an error when interrupt is closed
// (RenderAll's ctx ends: a signal during start-up, the watcher stopping).
//
// pending (nil: every source) tells which missing secrets and lists the
// caller will resolve: leases and certificates found past one of those are
// deferred (deferCreating).
func (s *Set) renderPass(interrupt <-chan struct{}, snap *fetch.Snapshot, pending func(fetch.Source) bool) ([]passResult, error) {
	res := make([]passResult, 0, len(s.entries))
	lookupEnv := s.opt.lookupEnv()
	for _, e := range s.entries {
		r, err := e.render(snap, lookupEnv, interrupt, pending)
		if err != nil {
			return nil, err
		}
		res = append(res, r)
	}
	return res, nil
}

// render executes the template once against snap. When sources are
// missing and the strict run stopped early (a placeholder has no keys), a
// lenient run (missingkey=zero, failing functions return zero values)
// carries on to find the rest, so that one pass finds what it can.
func (e *tmplEntry) render(snap *fetch.Snapshot, lookupEnv func(string) (string, bool), interrupt <-chan struct{}, pending func(fetch.Source) bool) (passResult, error) {
	st := newRenderState(snap, lookupEnv, false)
	st.interrupt, st.dirs = interrupt, e.dirs
	var buf bytes.Buffer
	err := e.execute(st, &buf)
	if len(st.missing) == 0 {
		if err != nil {
			return passResult{}, templateExecError(e.spec.Src, err, st)
		}
		return passResult{Rendered: Rendered{Spec: e.spec, Data: buf.Bytes(), Used: st.used}}, nil
	}
	redact := st.redact
	if err != nil {
		lax := newRenderState(snap, lookupEnv, true)
		lax.interrupt, lax.dirs = interrupt, e.dirs
		lax.missing, lax.missingSet = st.missing, st.missingSet
		_ = e.execute(lax, io.Discard)
		st.missing = deferCreating(lax.missing, len(st.missing), pending)
		// The lenient run read on past where the strict one stopped: a
		// missing source may be named by a value only it read.
		redact = lax.redact
	}
	return passResult{Rendered: Rendered{Spec: e.spec, Used: st.used}, missing: st.missing, redact: redact}, nil
}

// deferCreating drops, from the misses a lenient run added after the
// strict run's first n, the leases and certificates while a secret or list
// is still missing: their arguments may come from that secret's
// placeholder ({{ pkiCert "r" (printf "common_name=%s" (secret "a").Data.cn) }}
// would ask the server for "common_name=map[]"), and generating one creates
// something on the server. The next pass, with the secret there, finds
// them with their real arguments.
func deferCreating(missing []fetch.Source, n int, pending func(fetch.Source) bool) []fetch.Source {
	if !slices.ContainsFunc(missing, func(s fetch.Source) bool {
		return !s.Creates() && (pending == nil || pending(s))
	}) {
		return missing
	}
	out := missing[:n:n]
	for _, s := range missing[n:] {
		if !s.Creates() {
			out = append(out, s)
		}
	}
	return out
}

// execute runs a clone of the template whose functions are bound to st.
func (e *tmplEntry) execute(st *renderState, w io.Writer) error {
	t, err := e.tmpl.Clone()
	if err != nil {
		return fmt.Errorf("template %s: %w", e.spec.Src, err)
	}
	st.tmpl = t
	t.Funcs(st.funcMap())
	opt := "missingkey=error"
	if st.lax {
		opt = "missingkey=zero"
	}
	for _, x := range t.Templates() {
		x.Option(opt)
	}
	return t.Execute(w, nil)
}
