package template

// The functions a template may call: consul-template's (and Vault Agent's,
// which uses it), so that its templates port without edits, less those
// that read Consul or have side effects, plus a curated few of Sprig's.
// Names and argument orders follow consul-template where it has the
// function, Sprig otherwise, so that the value being worked on can come
// last, from a pipe. docs/consul-template.md is the table for people.
//
// Values from ScaiVault (secret, secrets, dynamic, pkiCert):
//
//	secret PATH ["version=N"]      .Path .Version .SecretType .Data .Metadata
//	secret "PATH?version=N"        (consul-template's form of the same)
//	                               .CreatedAt .UpdatedAt .Rotation
//	secrets PREFIX                 the names in the folder PREFIX, relative to it and one
//	                               level deep, sorted ("db", "users/"), as consul-template
//	                               gives them (list API, all pages)
//	dynamic ENGINE ROLE ["ttl=2h"] .Data .LeaseID .ExpiresAt .Renewable .LeaseDuration
//	                               .Engine .Role .IssuedAt .MaxExpiresAt
//	pkiCert ROLE "common_name=CN" ["alt_names=a,b"] ["ip_sans=10.0.0.1"] ["ttl=72h"]
//	                               .Cert .Key .CA (the chain as one PEM bundle)
//	                               .CAChain .Serial .CAID .IssuedAt .ExpiresAt, and
//	                               consul-template's .Data.Cert .Data.Key .Data.CA
//	acmeCert ACCOUNT "domains=a.example.com,b.example.com" ["challenge=dns-01"]
//	                               the same fields, from the account's ACME order (funcs_acme.go)
//
// .Data holds the JSON-decoded values: a JSON string is a Go string,
// numbers are json.Number (printed as written; the math functions, in and
// contains take them, eq needs (print .Data.port) or parseInt), objects
// and arrays print as JSON, null is nil. A missing key is an error naming
// the secret and the key, never "<no value>", for .Data.key and index
// alike (index replaces the builtin): use hasKey or get for optional keys. dynamic and pkiCert map
// to the same sources as the env references scaivault+dynamic:// and
// scaivault+pki:// with the same parameters, so that one lease and one
// certificate serve both.
//
// Environment and files: env, envOrDefault, mustEnv, file.
// Encoding: toJSON toJSONPretty toUnescapedJSON toUnescapedJSONPretty toYAML
// toTOML parseJSON parseYAML base64Encode base64Decode base64URLEncode
// base64URLDecode sha256Hex md5sum hmacSHA256Hex.
// Strings: toLower toUpper title toTitle trim trimSpace trimPrefix trimSuffix
// replace replaceAll regexMatch regexReplaceAll split splitToMap join
// contains hasPrefix hasSuffix indent nindent quote squote repeat parseBool
// parseInt parseUint parseFloat.
// Lists and maps: default coalesce empty required list dict keys sortAlpha
// first last in containsAll containsAny containsNone containsNotAll loop
// hasKey get index mergeMap mergeMapWithOverride explodeMap.
// Numbers: add sub subtract multiply divide modulo minimum maximum.
// Templates: executeTemplate, scratch.
// Sprig's names, as consul-template offers them: sprig_NAME for each of the
// above that has a Sprig name (trim trimPrefix trimSuffix title repeat
// replace contains hasPrefix hasSuffix quote squote indent nindent split
// join sortAlpha default empty coalesce list dict get hasKey keys first
// last add sub env regexMatch regexReplaceAll), with Sprig's arguments and
// output (funcs_sprig.go).
//
// Left out on purpose: timestamp and other clocks (an output that changes on
// every render would restart the child on every poll), writeToFile and
// plugin (side effects), sockaddr, spew and the functions that read Consul
// or Nomad. Each fails at parse time with why (funcs_refused.go).

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"

	texttemplate "text/template"

	"github.com/scailabs/scaivault-run/fetch"
)

// pureFuncs are the functions that depend on nothing but their arguments.
var pureFuncs = texttemplate.FuncMap{
	// encoding (funcs_encoding.go)
	"toJSON": fnToJSON, "toJSONPretty": fnToJSONPretty,
	"toUnescapedJSON": fnToUnescapedJSON, "toUnescapedJSONPretty": fnToUnescapedJSONPretty,
	"toYAML": fnToYAML, "toTOML": fnToTOML, "parseJSON": fnParseJSON, "parseYAML": fnParseYAML,
	"base64Encode": fnBase64Encode, "base64Decode": fnBase64Decode,
	"base64URLEncode": fnBase64URLEncode, "base64URLDecode": fnBase64URLDecode,
	"sha256Hex": fnSha256Hex, "md5sum": fnMd5sum, "hmacSHA256Hex": fnHmacSHA256Hex,
	// strings (funcs_strings.go)
	"toLower": fnToLower, "toUpper": fnToUpper, "title": fnTitle, "toTitle": fnTitle,
	"trim": fnTrim, "trimSpace": fnTrimSpace, "trimPrefix": fnTrimPrefix, "trimSuffix": fnTrimSuffix,
	"replace": fnReplaceAll, "replaceAll": fnReplaceAll,
	"regexMatch": fnRegexMatch, "regexReplaceAll": fnRegexReplaceAll,
	"split": fnSplit, "splitToMap": fnSplitToMap, "join": fnJoin,
	"contains": fnContains, "hasPrefix": fnHasPrefix, "hasSuffix": fnHasSuffix,
	"indent": fnIndent, "nindent": fnNindent, "quote": fnQuote, "squote": fnSquote, "repeat": fnRepeat,
	"parseBool": fnParseBool, "parseInt": fnParseInt, "parseUint": fnParseUint, "parseFloat": fnParseFloat,
	// lists and maps (funcs_lists.go)
	"default": fnDefault, "coalesce": fnCoalesce, "empty": fnEmpty, "required": fnRequired,
	"list": fnList, "dict": fnDict, "keys": fnKeys, "sortAlpha": fnSortAlpha,
	"first": fnFirst, "last": fnLast, "in": fnIn,
	"containsAll": fnContainsAll, "containsAny": fnContainsAny,
	"containsNone": fnContainsNone, "containsNotAll": fnContainsNotAll,
	"loop": fnLoop, "hasKey": fnHasKey, "get": fnGet,
	"mergeMap": fnMergeMap, "mergeMapWithOverride": fnMergeMapWithOverride, "explodeMap": fnExplodeMap,
	// numbers (funcs_math.go)
	"add": fnAdd, "sub": fnSub, "subtract": fnSubtract, "multiply": fnMultiply,
	"divide": fnDivide, "modulo": fnModulo, "minimum": fnMinimum, "maximum": fnMaximum,
	// Sprig's own versions of functions whose namesakes here behave
	// otherwise (funcs_sprig.go); the other sprig_NAMEs are aliases.
	"sprig_default": fnSprigDefault, "sprig_empty": fnSprigEmpty, "sprig_coalesce": fnSprigCoalesce,
	"sprig_split": fnSprigSplit, "sprig_indent": fnSprigIndent, "sprig_nindent": fnSprigNindent,
	"sprig_regexReplaceAll": fnSprigRegexReplaceAll, "sprig_add": fnSprigAdd, "sprig_keys": fnSprigKeys,
}

// parseFuncs declares every function name at parse time; each render binds
// its own. Built on first use: a start without templates does not pay
// for its 200 closures.
var parseFuncs = sync.OnceValue(func() texttemplate.FuncMap { return newRenderState(nil, nil, false).funcMap() })

// laxPureFuncs are pureFuncs that return zero values instead of errors.
var laxPureFuncs = sync.OnceValue(func() texttemplate.FuncMap {
	m := texttemplate.FuncMap{}
	for k, f := range pureFuncs {
		m[k] = laxFunc(f)
	}
	return m
})

// renderState is one execution of one template: the snapshot it reads, what it
// used and found missing, and the views it handed out. Only the goroutine
// executing the template touches it.
type renderState struct {
	snap      *fetch.Snapshot
	lookupEnv func(string) (string, bool)
	interrupt <-chan struct{} // RenderAll's ctx.Done()
	dirs      *Dirs           // {{ file }} reads through it
	// lax is the discovery run after a strict run stopped at a
	// placeholder: missingkey=zero and no function fails.
	lax  bool
	tmpl *texttemplate.Template

	used, missing       []fetch.Source
	usedSet, missingSet map[fetch.Source]bool

	secrets map[fetch.Source]*secretValue
	leases  map[fetch.Source]*leaseValue
	certs   map[fetch.Source]*certValue
	// owners maps each .Data map handed out to what it belongs to, and
	// lastData is the one last reached through .Data: error messages name
	// the secret whose key is missing.
	owners   map[uintptr]*dataRef
	lastData *dataRef
	pad      *scratchPad
	depth    int
}

// dataRef describes a .Data map: `secret "app/db" version 3`.
type dataRef struct {
	desc string
	data jsonObject
}

func newRenderState(snap *fetch.Snapshot, lookupEnv func(string) (string, bool), lax bool) *renderState {
	return &renderState{
		snap: snap, lookupEnv: lookupEnv, lax: lax,
		usedSet: map[fetch.Source]bool{}, missingSet: map[fetch.Source]bool{},
		secrets: map[fetch.Source]*secretValue{},
		leases:  map[fetch.Source]*leaseValue{},
		certs:   map[fetch.Source]*certValue{},
		owners:  map[uintptr]*dataRef{},
	}
}

// funcMap is the function map bound to st.
func (st *renderState) funcMap() texttemplate.FuncMap {
	bound := texttemplate.FuncMap{
		"secret": st.secret, "secrets": st.secretList,
		"dynamic": st.dynamic, "pkiCert": st.pkiCert, "acmeCert": st.acmeCert,
		"env": st.env, "envOrDefault": st.envOrDefault, "mustEnv": st.mustEnv,
		"file": st.readFile, "index": st.index,
		"executeTemplate": st.executeTemplate, "scratch": st.scratchFunc,
	}
	pure := pureFuncs
	if st.lax {
		pure = laxPureFuncs()
		for k, f := range bound {
			bound[k] = laxFunc(f)
		}
	}
	m := make(texttemplate.FuncMap, len(bound)+len(pure))
	for k, f := range pure {
		m[k] = f
	}
	for _, k := range mapMakers {
		m[k] = st.forgetting(m[k])
	}
	for k, f := range bound {
		m[k] = f
	}
	addSprigAliases(m)
	return m
}

// mapMakers are the functions that may return a map not reached through
// .Data: calling one makes the state forget which .Data it last handed out,
// so that a missing key in their map is not blamed on a secret. (The bound
// functions that return maps forget by themselves.)
var mapMakers = []string{
	"dict", "parseJSON", "parseYAML", "mergeMap", "mergeMapWithOverride", "explodeMap",
	"splitToMap", "get", "first", "last", "coalesce", "default", "sprig_split",
	"sprig_default", "sprig_coalesce",
}

// forgetting wraps fn to clear st.lastData before each call.
func (st *renderState) forgetting(fn any) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		st.lastData = nil
		if t.IsVariadic() {
			return v.CallSlice(args)
		}
		return v.Call(args)
	}).Interface()
}

func (st *renderState) use(src fetch.Source) {
	if !st.usedSet[src] {
		st.usedSet[src] = true
		st.used = append(st.used, src)
	}
}

func (st *renderState) miss(src fetch.Source) {
	if !st.missingSet[src] {
		st.missingSet[src] = true
		st.missing = append(st.missing, src)
	}
}

// laxFunc wraps a function returning (T, error) so that an error becomes
// T's zero value: in a discovery run a failure is most likely a placeholder's
// doing, and stopping would hide the sources further on.
func laxFunc(fn any) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.NumOut() != 2 {
		return fn
	}
	return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		var out []reflect.Value
		if t.IsVariadic() {
			out = v.CallSlice(args)
		} else {
			out = v.Call(args)
		}
		if !out[1].IsNil() {
			return []reflect.Value{reflect.Zero(t.Out(0)), reflect.Zero(t.Out(1))}
		}
		return out
	}).Interface()
}

// maxTemplateDepth bounds executeTemplate recursion.
const maxTemplateDepth = 100

// executeTemplate renders the named {{ define }} template with data as dot
// and returns its output (consul-template's executeTemplate).
func (st *renderState) executeTemplate(name string, data ...any) (string, error) {
	st.lastData = nil
	var dot any
	switch len(data) {
	case 0:
	case 1:
		dot = data[0]
	default:
		return "", fmt.Errorf("want NAME [DATA], got %d arguments", len(data)+1)
	}
	t := st.tmpl.Lookup(name)
	if t == nil {
		return "", fmt.Errorf("no template %q defined", name)
	}
	if st.depth >= maxTemplateDepth {
		return "", fmt.Errorf("%q: nested more than %d deep", name, maxTemplateDepth)
	}
	st.depth++
	defer func() { st.depth-- }()
	var buf bytes.Buffer
	if err := t.Execute(&buf, dot); err != nil {
		var ee texttemplate.ExecError
		if errors.As(err, &ee) {
			return "", ee.Err
		}
		return "", err
	}
	return buf.String(), nil
}
