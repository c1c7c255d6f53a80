package template

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-envparse"

	"github.com/scailabs/scaivault-run/fetch"
)

// CredentialVars are scaivault-run's own credentials, removed from the
// inherited environment unless EnvSpec.KeepCredentials. SCAIVAULT_TOKEN_FILE
// is a path, not a credential, and stays (a child that may read the file can
// do so anyway); SCAIVAULT_BASE_URL stays too. Variables set explicitly
// through --env, --env-file or --secret are the child's and are kept.
var CredentialVars = []string{"SCAIVAULT_TOKEN", "SCAIKEY_CLIENT_SECRET", "SCAIKEY_CLIENT_ID"}

// EnvSpec says where the child's environment comes from (DESIGN.md, "Where
// values come from").
type EnvSpec struct {
	Inherited       []string // os.Environ() normally; nil with --pristine
	Imports         []string // --secret PATHs, in order
	Prefix          string   // --prefix
	Upcase          bool     // --upcase
	EnvFiles        []string // --env-file paths, in order
	Env             []string // --env NAME=VALUE flags, in order
	KeepCredentials bool     // keep CredentialVars of the inherited environment
}

// Layers of the environment, in precedence order (later wins).
const (
	layerInherited = iota
	layerImport
	layerFile
	layerFlag
)

// envEntry is one variable as given, before resolution.
type envEntry struct {
	layer  int
	name   string
	value  string     // as given: a literal or a reference
	ref    *fetch.Ref // nil: a literal
	origin string     // "environment", "--env", ".env:3"
}

// where names the entry in errors: `--env DB_PASS`, `.env.prod:3 DB_PASS`.
func (e *envEntry) where() string { return e.origin + " " + e.name }

// Plan is the parsed environment: every variable given, with its origin,
// ordered by precedence, and its references parsed. It is immutable.
type Plan struct {
	entries []*envEntry          // inherited, files, flags: in precedence order
	winners map[string]*envEntry // name → the entry that wins among entries
	imports []string             // --secret paths, deduplicated, in order
	prefix  string
	upcase  bool
}

// PlanEnv reads env files and parses every reference in the environment,
// env files and flags. It fetches nothing. Errors name the variable and
// where it came from (`--env DB_PASS`, `.env.prod:3 DB_PASS`, `environment
// DB_PASS`); an env file's parse error is `FILE:LINE: …`.
func PlanEnv(spec EnvSpec) (*Plan, error) {
	p := &Plan{prefix: spec.Prefix, upcase: spec.Upcase, winners: map[string]*envEntry{}}
	var errs []error
	for _, kv := range spec.Inherited {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue // not a variable (e.g. Windows' "=C:")
		}
		if !spec.KeepCredentials && slices.Contains(CredentialVars, name) {
			continue
		}
		errs = p.add(errs, &envEntry{layer: layerInherited, name: name, value: value, origin: "environment"})
	}
	for _, path := range spec.Imports {
		if err := fetch.ValidatePath(path); err != nil {
			errs = append(errs, fmt.Errorf("--secret %q: %w", path, err))
			continue
		}
		if !slices.Contains(p.imports, path) {
			p.imports = append(p.imports, path)
		}
	}
	for _, file := range spec.EnvFiles {
		fileEntries, err := readEnvFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range fileEntries {
			errs = p.add(errs, e)
		}
	}
	for i, kv := range spec.Env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			// Not quoted: a value given without its NAME= may be a secret.
			errs = append(errs, fmt.Errorf("--env argument %d: want NAME=VALUE; it has no \"=\" (not shown: it may hold a secret)", i+1))
			continue
		}
		errs = p.add(errs, &envEntry{layer: layerFlag, name: name, value: value, origin: "--env"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// add validates e, parses its reference and records it; it returns errs with
// any new error appended.
func (p *Plan) add(errs []error, e *envEntry) []error {
	if e.layer != layerInherited {
		if err := validateEnvName(e.name); err != nil {
			return append(errs, fmt.Errorf("%s %q: %w", e.origin, e.name, err))
		}
	}
	ref, isRef, err := fetch.ParseRef(e.value)
	if err != nil {
		return append(errs, fmt.Errorf("%s: %w", e.where(), err))
	}
	if isRef {
		e.ref = &ref
	}
	p.entries = append(p.entries, e)
	p.winners[e.name] = e
	return errs
}

// validateEnvName accepts what execve can pass and a shell or program can
// read back: not empty, no "=", no NUL, whitespace or control character.
func validateEnvName(name string) error {
	if name == "" {
		return errors.New("empty variable name")
	}
	for _, c := range name {
		if c == '=' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("invalid character %q in variable name", c)
		}
	}
	return nil
}

// readEnvFile parses an env file line by line with go-envparse, so that
// every variable keeps its line number.
func readEnvFile(file string) ([]*envEntry, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	return parseEnvFile(file, data)
}

// parseEnvFile parses the content of env file file.
func parseEnvFile(file string, data []byte) ([]*envEntry, error) {
	var out []*envEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		kv, err := envparse.Parse(bytes.NewReader(sc.Bytes()))
		if err != nil {
			var pe *envparse.ParseError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s:%d: %v", file, line, err)
		}
		for name, value := range kv { // at most one
			origin := file + ":" + strconv.Itoa(line)
			if ref, cut := checkCut(sc.Text(), value); cut {
				return nil, &CutRefError{Origin: origin, Name: name, Ref: ref}
			}
			out = append(out, &envEntry{layer: layerFile, name: name, value: value, origin: origin})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", file, line+1, err)
	}
	return out, nil
}

// checkCut reports a reference that envparse cut at an unquoted "#": the
// raw value starts with the parsed one, directly followed by "#". It returns
// the reference as written (up to the first blank after the "#"), for the
// hint.
func checkCut(rawLine, value string) (cut string, ok bool) {
	if _, isRef, _ := fetch.ParseRef(value); !isRef {
		return "", false
	}
	_, raw, _ := strings.Cut(rawLine, "=")
	raw = strings.TrimLeft(raw, " \t")
	if !strings.HasPrefix(raw, value+"#") {
		return "", false
	}
	// Up to the first blank after the "#" (the value itself may hold
	// blanks: `scaivault:// x#k`).
	if i := strings.IndexAny(raw[len(value)+1:], " \t"); i >= 0 {
		raw = raw[:len(value)+1+i]
	}
	return raw, true
}

// ErrCutReference is matched (errors.Is) by a CutRefError.
var ErrCutReference = errors.New(`unquoted "#" cuts the reference: in an env file it starts a comment`)

// CutRefError is an env-file reference cut at an unquoted "#"
// (`K=scaivault://app/db#password`). Its Hint says how to quote it.
type CutRefError struct {
	Origin string // FILE:LINE
	Name   string
	Ref    string // the reference as written, #KEY included
}

func (e *CutRefError) Error() string {
	return fmt.Sprintf("%s %s: %v; quote it: %s=\"%s\"", e.Origin, e.Name, ErrCutReference, e.Name, e.Ref)
}

// Is makes errors.Is(err, ErrCutReference) true.
func (e *CutRefError) Is(target error) bool { return target == ErrCutReference }

// Hint is a line for main's `hint:` output.
func (e *CutRefError) Hint() string {
	return fmt.Sprintf(`in an env file, quote a reference with #KEY: %s="%s"`, e.Name, e.Ref)
}

// winning returns the entries that win, in a stable order: inherited ones
// sorted by name, then those of files and flags as given.
func (p *Plan) winning() []*envEntry {
	var inh, rest []*envEntry
	for _, e := range p.entries {
		if p.winners[e.name] != e {
			continue
		}
		if e.layer == layerInherited {
			inh = append(inh, e)
		} else {
			rest = append(rest, e)
		}
	}
	slices.SortFunc(inh, func(a, b *envEntry) int { return strings.Compare(a.name, b.name) })
	return append(inh, rest...)
}

// Sources returns every source the environment needs, deduplicated, in a
// stable order: the --secret imports, then the references of the variables
// that win (inherited ones sorted by name, then files and flags in order).
// An inherited reference that an import overrides is still listed: import
// names are known only once the secrets are read.
func (p *Plan) Sources() []fetch.Source {
	var out []fetch.Source
	seen := map[fetch.Source]bool{}
	add := func(s fetch.Source) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, path := range p.imports {
		add(fetch.StaticSource(path, 0))
	}
	for _, r := range p.Refs() {
		add(r.Source())
	}
	return out
}

// Refs returns the references of the variables that win, in the order of
// Sources (imports, whose keys are not known yet, are not among them).
func (p *Plan) Refs() []fetch.Ref {
	var out []fetch.Ref
	for _, e := range p.winning() {
		if e.ref != nil {
			out = append(out, *e.ref)
		}
	}
	return out
}

// UsersOf names the variables whose winning reference needs src, as
// `--env DB_PASS` or `app.env:3 DB_PASS`, and the imports that read it, as
// `--secret app/db`.
func (p *Plan) UsersOf(src fetch.Source) []string {
	var out []string
	for _, path := range p.imports {
		if fetch.StaticSource(path, 0) == src {
			out = append(out, "--secret "+path)
		}
	}
	for _, e := range p.winning() {
		if e.ref != nil && e.ref.Source() == src {
			out = append(out, e.where())
		}
	}
	return out
}

// UsersBySource is UsersOf for every source at once, in one pass (UsersOf
// for each of 1,000 sources was a quadratic start-up).
func (p *Plan) UsersBySource() map[fetch.Source][]string {
	out := map[fetch.Source][]string{}
	for _, u := range p.Uses() {
		out[u.Source] = append(out[u.Source], u.Where)
	}
	return out
}

// Use is one place the environment reads a source: a variable with its
// reference (Where `--env DB_PASS`), or a --secret import (Ref nil, Where
// `--secret app/db`).
type Use struct {
	Where  string
	Ref    *fetch.Ref
	Source fetch.Source
}

// Uses lists every use, imports first, then the variables that win, in the
// order of Sources; for the check subcommand, which reports each.
func (p *Plan) Uses() []Use {
	var out []Use
	for _, path := range p.imports {
		out = append(out, Use{Where: "--secret " + path, Source: fetch.StaticSource(path, 0)})
	}
	for _, e := range p.winning() {
		if e.ref != nil {
			out = append(out, Use{Where: e.where(), Ref: e.ref, Source: e.ref.Source()})
		}
	}
	return out
}

// NeedsFiles reports whether a reference that wins has as=file: Build then
// needs a FileDir.
func (p *Plan) NeedsFiles() bool {
	for _, r := range p.Refs() {
		if r.AsFile {
			return true
		}
	}
	return false
}

// EnvVar is one variable of the child's environment.
type EnvVar struct {
	Name    string
	Value   string     // what the child gets (for as=file: the file's absolute path)
	Ref     *fetch.Ref // nil: not a reference (inherited/literal)
	Origin  string     // "environment", "--env", ".env:3", "--secret app/db"
	Version int        // static version read (for render masks)
	File    string     // as=file: the file path
	// FileChanged tells, for as=file, whether Build changed the file's
	// content (a reload rather than a restart may do).
	FileChanged bool
}

// Build resolves the plan against snap: precedence (inherited < --secret
// imports < --env-file files in order < --env flags; later wins), import
// naming (ImportName; two keys making one name are an error naming both),
// as=file values written into files (nil files makes as=file an error). It
// returns the variables sorted by name, or every error joined.
func (p *Plan) Build(snap *fetch.Snapshot, files *FileDir) ([]EnvVar, error) {
	vars, writes, err := p.Stage(snap, files)
	if err != nil {
		return nil, err
	}
	changed, _, err := WriteStep(writes, nil, Options{}, nil)
	if err != nil {
		return nil, err
	}
	MarkFilesChanged(vars, changed)
	return vars, nil
}

// FileWrite is the content of an as=file variable's file, staged by
// Plan.Stage and written by WriteStep.
type FileWrite struct {
	Var   string // the variable
	Path  string
	Data  []byte
	where string // its origin, for errors: `--env DB_PASS`
	owner *Owner // the FileDir's owner; nil: ours
}

// MarkFilesChanged sets FileChanged on the variables named in names (the
// first result of WriteStep).
func MarkFilesChanged(vars []EnvVar, names []string) {
	for i := range vars {
		if slices.Contains(names, vars[i].Name) {
			vars[i].FileChanged = true
		}
	}
}

// Stage is Build without writing anything: each as=file variable gets the
// path its file will have (Value, File), and its content is returned in
// writes, for WriteStep to write with the templates in one step.
func (p *Plan) Stage(snap *fetch.Snapshot, files *FileDir) (vars []EnvVar, writes []FileWrite, err error) {
	cands := map[string]*envEntry{}
	win := p.winning()
	for _, e := range win {
		if e.layer == layerInherited {
			cands[e.name] = e
		}
	}
	imports, errs := p.importEntries(snap)
	for _, e := range imports {
		cands[e.name] = e
	}
	for _, e := range win {
		if e.layer != layerInherited {
			cands[e.name] = e
		}
	}
	names := slices.Sorted(maps.Keys(cands))
	vars = make([]EnvVar, 0, len(names))
	fileOwner := map[string]string{}
	for _, name := range names {
		e := cands[name]
		if e.ref != nil && e.ref.AsFile {
			fn := safeFileName(name)
			if prev, ok := fileOwner[fn]; ok {
				errs = append(errs, fmt.Errorf("%s: as=file: variables %s and %s would share file %s", e.where(), prev, name, fn))
				continue
			}
			fileOwner[fn] = name
		}
		v, content, err := resolveEntry(e, snap, files)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if content != nil {
			path, err := files.pathOf(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.where(), err))
				continue
			}
			v.Value, v.File = path, path
			writes = append(writes, FileWrite{Var: name, Path: path, Data: content, where: e.where(), owner: files.fileOwner()})
		}
		vars = append(vars, v)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return vars, writes, nil
}

// importEntries turns each --secret import into one entry per key.
func (p *Plan) importEntries(snap *fetch.Snapshot) ([]*envEntry, []error) {
	var (
		out   []*envEntry
		errs  []error
		owner = map[string]string{} // name → `key "k" of "path"`
	)
	for _, path := range p.imports {
		var sec *fetch.Secret
		if snap != nil {
			sec = snap.Secrets[fetch.StaticSource(path, 0)]
		}
		if sec == nil {
			errs = append(errs, fmt.Errorf("--secret %s: secret %q: not resolved", path, path))
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(sec.Data)) {
			desc := fmt.Sprintf("key %q of %q", key, path)
			name := ImportName(p.prefix, key, p.upcase)
			if name == "" {
				errs = append(errs, fmt.Errorf("--secret %s: %s makes an empty variable name", path, desc))
				continue
			}
			if prev, ok := owner[name]; ok {
				errs = append(errs, fmt.Errorf("--secret: %s and %s both make variable %s", prev, desc, name))
				continue
			}
			owner[name] = desc
			ref := fetch.Ref{Raw: "scaivault://" + path + "#" + url.PathEscape(key), Kind: fetch.Static, Path: path, Key: key}
			out = append(out, &envEntry{layer: layerImport, name: name, value: ref.Raw, ref: &ref, origin: "--secret " + path})
		}
	}
	return out, errs
}

// ImportName is the variable name of an imported key: prefix + key, each
// character outside [A-Za-z0-9_] made "_", a "_" before a leading digit,
// then, with upcase, all of it in upper case.
func ImportName(prefix, key string, upcase bool) string {
	var b strings.Builder
	for _, c := range prefix + key {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		name = "_" + name
	}
	if upcase {
		name = strings.ToUpper(name)
	}
	return name
}

// resolveEntry gives one entry its value from snap.
func resolveEntry(e *envEntry, snap *fetch.Snapshot, files *FileDir) (v EnvVar, fileContent []byte, err error) {
	v = EnvVar{Name: e.name, Value: e.value, Ref: e.ref, Origin: e.origin}
	if e.ref == nil {
		return v, nil, nil
	}
	val, err := snap.Value(*e.ref)
	if err != nil {
		return v, nil, fmt.Errorf("%s: %w", e.where(), err)
	}
	if e.ref.Kind == fetch.Static {
		v.Version = snap.Secrets[e.ref.Source()].Version
	}
	if e.ref.AsFile {
		if files == nil {
			return v, nil, fmt.Errorf("%s: as=file needs the private file directory", e.where())
		}
		return v, []byte(val), nil
	}
	if strings.IndexByte(val, 0) >= 0 {
		return v, nil, fmt.Errorf("%s: the value holds a NUL byte, which an environment variable cannot (use as=file)", e.where())
	}
	v.Value = val
	return v, nil, nil
}

// Environ returns vars as sorted NAME=VALUE strings, for exec.Cmd.Env. It
// never returns nil, so that an empty environment stays empty.
func Environ(vars []EnvVar) []string {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		out = append(out, v.Name+"="+v.Value)
	}
	slices.Sort(out)
	return out
}

// Mask gives the render subcommand's masked value: `<scaivault://app/db#password v3>`
// for static references (the version read), `<REFERENCE>` for dynamic and
// PKI ones (as=file ones too: masked like any reference), the value itself
// for variables that are not references.
func Mask(v EnvVar) string {
	if v.Ref == nil {
		return v.Value
	}
	if v.Ref.Kind == fetch.Static {
		return fmt.Sprintf("<%s v%d>", v.Ref.Raw, v.Version)
	}
	return "<" + v.Ref.Raw + ">"
}
