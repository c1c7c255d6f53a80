package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

// Check statuses, as the check subcommand prints them.
const (
	CheckOK       = "ok"
	CheckDenied   = "denied"
	CheckNotFound = "not found"
	CheckInvalid  = "invalid"
)

// CheckOptions are the check subcommand's own options.
type CheckOptions struct {
	Format string    // text or json
	Stdout io.Writer // the report
}

// CheckResult is one line of the check report: one use of a reference (a
// variable, an import, a template) and what the server said about it.
// It never holds a value.
type CheckResult struct {
	Status    string `json:"status"`              // ok, denied, not found, invalid
	Where     string `json:"where,omitempty"`     // `--env DB_PASS`, `--secret app/db`, `template app.tmpl`
	Reference string `json:"reference,omitempty"` // the reference, or the source a template reads
	Reason    string `json:"reason,omitempty"`
}

// Check is the pre-flight of DESIGN.md "Operating it": it parses every
// reference and template, reads every static secret and list (batch
// reads, as a run does) and asks the server, through POST
// /v1/policies/test, whether this identity may generate each dynamic
// credential and issue each certificate. It creates no lease and no
// certificate. It prints one line per use (see CheckResult) and returns 0
// when every one is ok, 1 when any is not, and ExitFailure with an error
// when it could not check: bad options, the server unreachable, the
// credential refused. Templates are rendered with placeholders for leases
// and certificates: a static secret a template names only through a lease's
// value is not found, and a lease's keys are not checked (the server tells
// them only by generating one). The whole check is bounded by
// StartupTimeout.
func Check(ctx context.Context, opts Options, co CheckOptions) (int, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var results []CheckResult
	plan, perr := template.PlanEnv(opts.Env)
	if perr != nil {
		results = append(results, invalidLines(perr)...)
	}
	// Each template on its own: one that does not parse hides no other.
	var good []template.Spec
	for _, spec := range opts.Templates {
		if _, err := template.Parse([]template.Spec{spec}, opts.TemplateOptions); err != nil {
			results = append(results, CheckResult{Status: CheckInvalid, Where: "template " + spec.Src, Reason: err.Error()})
			continue
		}
		good = append(good, spec)
	}
	var set *template.Set
	if len(good) > 0 {
		var terr error
		if set, terr = template.Parse(good, opts.TemplateOptions); terr != nil {
			results = append(results, invalidLines(terr)...)
		}
	}
	opts.Templates = good
	client, err := fetch.New(opts.Client)
	if err != nil {
		return ExitFailure, err
	}
	defer client.Close()
	timeout := opts.StartupTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if w, err := client.Whoami(ctx); err != nil {
		return ExitFailure, fmt.Errorf("check: %w", err)
	} else {
		log.Info("checking references", "identity", w.IdentityID)
	}
	ck := &checker{client: client, resolver: &fetch.Resolver{Client: client, Logger: log}, done: map[fetch.Source]*checked{}}
	if plan != nil {
		uses := plan.Uses()
		var srcs []fetch.Source
		for _, u := range uses {
			srcs = append(srcs, u.Source)
		}
		ck.check(ctx, srcs)
		if ck.fatal != nil {
			return ExitFailure, ck.fatal
		}
		for _, u := range uses {
			ref := u.Source.Describe()
			if u.Ref != nil {
				ref = u.Ref.Raw
			}
			results = append(results, ck.result(u.Where, ref, u.Ref, u.Source))
		}
	}
	if set != nil {
		found, _, derr := set.Discover(ctx, ck.resolve, nil, ck.skip)
		if ck.fatal != nil {
			return ExitFailure, ck.fatal
		}
		for _, spec := range opts.Templates {
			srcs := found[spec.Src]
			ck.check(ctx, srcs) // the leases and certificates Discover skipped
			if ck.fatal != nil {
				return ExitFailure, ck.fatal
			}
			for _, src := range srcs {
				results = append(results, ck.result("template "+spec.Src, src.Describe(), nil, src))
			}
		}
		if derr != nil {
			if ctx.Err() != nil {
				return ExitFailure, fmt.Errorf("check: %w", derr)
			}
			results = append(results, CheckResult{Status: CheckInvalid, Reason: derr.Error()})
		}
	}
	if err := printCheck(co, results); err != nil {
		return ExitFailure, err
	}
	for _, r := range results {
		if r.Status != CheckOK {
			return 1, nil
		}
	}
	return 0, nil
}

// invalidLines makes one invalid line of each error joined in err (each
// names its variable, file and line, or template).
func invalidLines(err error) []CheckResult {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]CheckResult, 0, len(errs))
	for _, e := range errs {
		out = append(out, CheckResult{Status: CheckInvalid, Reason: e.Error()})
	}
	return out
}

// checked is what the server said about one source.
type checked struct {
	status string
	reason string
	secret *fetch.Secret // a static secret read
	list   []fetch.ListEntry
}

// checker checks sources once each: static secrets and lists are read,
// leases and certificates tested. fatal is the first failure that means the
// check itself failed (unreachable, credential refused).
type checker struct {
	client   *fetch.Client
	resolver *fetch.Resolver

	mu    sync.Mutex
	done  map[fetch.Source]*checked
	fatal error
}

func creates(src fetch.Source) bool { return src.Creates() }

// skip tells Discover what not to resolve: leases, certificates, and
// secrets that could not be read.
func (ck *checker) skip(src fetch.Source) bool {
	if creates(src) {
		return true
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	c := ck.done[src]
	return ck.fatal != nil || (c != nil && c.status != CheckOK)
}

// resolve is Discover's ResolveFunc: it reads what was not read yet and
// returns have with every source that could be read.
func (ck *checker) resolve(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
	ck.check(ctx, srcs)
	ck.mu.Lock()
	defer ck.mu.Unlock()
	if ck.fatal != nil {
		return have, ck.fatal
	}
	snap := have.Merge(nil)
	for _, src := range srcs {
		c := ck.done[src]
		switch {
		case c == nil || c.status != CheckOK:
		case c.secret != nil:
			snap.Secrets[src] = c.secret
		case src.Kind == fetch.List:
			snap.Lists[src] = c.list
		}
	}
	return snap, nil
}

// check finds out about every source of srcs not checked yet.
func (ck *checker) check(ctx context.Context, srcs []fetch.Source) {
	var read, test []fetch.Source
	ck.mu.Lock()
	for _, src := range srcs {
		if ck.done[src] != nil || slices.Contains(read, src) || slices.Contains(test, src) {
			continue
		}
		if creates(src) {
			test = append(test, src)
		} else {
			read = append(read, src)
		}
	}
	ck.mu.Unlock()
	if len(read) > 0 {
		snap, err := ck.resolver.Resolve(ctx, read, nil)
		failed := map[fetch.Source]error{}
		for _, e := range splitErrors(err) {
			var se *fetch.SourceError
			if !errors.As(e, &se) {
				ck.setFatal(e)
				continue
			}
			failed[se.Source] = se.Err
		}
		for _, src := range read {
			c := &checked{status: CheckOK}
			switch {
			case failed[src] != nil:
				c = ck.outcome(failed[src])
			case src.Kind == fetch.List && snap != nil:
				c.list = snap.Lists[src]
			case snap != nil && snap.Secrets[src] != nil:
				c.secret = snap.Secrets[src]
			default:
				continue // not fetched: a fatal error says why
			}
			ck.set(src, c)
		}
	}
	for _, src := range test {
		if src.Kind == fetch.ACME {
			ck.set(src, ck.checkACME(ctx, src))
			continue
		}
		req := fetch.PolicyTestRequest{Permission: "dynamic", Path: "dynamic/" + src.Engine + "/" + src.Role}
		if src.Kind == fetch.PKI {
			req = fetch.PolicyTestRequest{Permission: "pki", Path: "pki/" + src.PKIRole}
		}
		d, err := ck.client.TestPolicy(ctx, req)
		var c *checked
		switch {
		case err != nil:
			c = ck.outcome(err)
		case d.Allowed:
			by := ""
			if d.Policy != nil {
				by = fmt.Sprintf(" (policy %q)", *d.Policy)
			}
			c = &checked{status: CheckOK, reason: fmt.Sprintf("may use %s on %s%s; nothing was created", req.Permission, req.Path, by)}
		default:
			c = &checked{status: CheckDenied, reason: fmt.Sprintf("no policy of this identity allows %s on %s", req.Permission, req.Path)}
		}
		if c != nil {
			ck.set(src, c)
		}
	}
}

// outcome classifies a failure about one source; nil for one that means
// the check itself failed (recorded in fatal).
func (ck *checker) outcome(err error) *checked {
	switch {
	case errors.Is(err, fetch.ErrNotFound):
		return &checked{status: CheckNotFound, reason: err.Error()}
	case errors.Is(err, fetch.ErrAccessDenied):
		return &checked{status: CheckDenied, reason: err.Error()}
	case errors.Is(err, fetch.ErrValidation):
		return &checked{status: CheckInvalid, reason: err.Error()}
	}
	ck.setFatal(err)
	return nil
}

func (ck *checker) set(src fetch.Source, c *checked) {
	if c == nil {
		return
	}
	ck.mu.Lock()
	ck.done[src] = c
	ck.mu.Unlock()
}

func (ck *checker) setFatal(err error) {
	ck.mu.Lock()
	if ck.fatal == nil {
		ck.fatal = fmt.Errorf("check: could not check: %w", err)
	}
	ck.mu.Unlock()
}

// result is the line of one use: the source's outcome, and for a static
// reference with a key, whether the secret has that key.
func (ck *checker) result(where, ref string, r *fetch.Ref, src fetch.Source) CheckResult {
	ck.mu.Lock()
	c := ck.done[src]
	ck.mu.Unlock()
	if c == nil {
		return CheckResult{Status: CheckInvalid, Where: where, Reference: ref, Reason: "not checked"}
	}
	out := CheckResult{Status: c.status, Where: where, Reference: ref, Reason: c.reason}
	if c.status != CheckOK || c.secret == nil {
		if out.Status == CheckOK && src.Kind == fetch.List {
			out.Reason = fmt.Sprintf("%d entries", len(c.list))
		}
		return out
	}
	out.Reason = fmt.Sprintf("version %d", c.secret.Version)
	if r != nil && r.Key != "" {
		snap := &fetch.Snapshot{Secrets: map[fetch.Source]*fetch.Secret{src: c.secret}}
		if _, err := snap.Value(*r); err != nil {
			out.Status, out.Reason = CheckInvalid, err.Error()
		}
	}
	return out
}

func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func printCheck(co CheckOptions, results []CheckResult) error {
	if co.Format == "json" {
		enc := json.NewEncoder(co.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if results == nil {
			results = []CheckResult{}
		}
		return enc.Encode(results)
	}
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%-9s", r.Status)
		named := false
		for _, part := range []string{r.Where, r.Reference} {
			if part != "" {
				b.WriteString("  " + part)
				named = true
			}
		}
		switch {
		case r.Reason != "" && named:
			b.WriteString(": " + r.Reason)
		case r.Reason != "":
			b.WriteString("  " + r.Reason)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(co.Stdout, b.String())
	return err
}
