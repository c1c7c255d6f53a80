package template_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
)

// ctSeed holds, as ScaiVault secrets, the data of consul-template's own
// template tests: its Vault secrets at their paths, and its Consul keys and
// services as secrets (the way docs/consul-template.md ports them).
const ctSeed = `{
  "root_token": "ct-root",
  "secrets": {
    "secret/foo": {"data": {"zip": "zed"}},
    "secret/bar": {"data": {"zip": "zop"}},
    "config/list": {"data": {"foo/bar": "a", "zip/zap": "b"}},
    "config/amp": {"data": {"a": "b&c", "x": "y&z", "k": "<>&&"}},
    "config/zero": {"data": {"z": 0}},
    "svc/webapp": {"data": {"instances": [{"address": "1.2.3.4", "tags": ["prod", "staging"]},
                                          {"address": "5.6.7.8", "tags": ["staging"]}]}},
    "svc/realms": {"data": {"instances": [{"address": "1.2.3.4", "tags": ["prod", "us-realm"]},
                                          {"address": "5.6.7.8", "tags": ["prod", "ca-realm"]}]}},
    "svc/versions": {"data": {"instances": [{"address": "1.2.3.4", "tags": ["prod", "v1"]},
                                            {"address": "5.6.7.8", "tags": ["prod", "v2"]}]}},
    "svc/stages": {"data": {"instances": [{"address": "1.2.3.4", "tags": ["prod", "v1"]},
                                          {"address": "5.6.7.8", "tags": ["devel", "v2"]}]}},
    "svc/es": {"data": {"instances": [{"address": "1.2.3.4", "tags": ["prod", "es-v1"]},
                                      {"address": "5.6.7.8", "tags": ["prod", "hybrid", "es-v1", "es-v2"]}]}}
  },
  "pki": {"roles": {"svc-mtls": {"allowed_domains": ["svc.cluster.local"], "allow_subdomains": true,
                                 "max_ttl": "720h", "key_type": "ec", "key_bits": 256}}}
}`

// ctCase is one case of consul-template's template tests (TestTemplate_Execute
// and the unit tests a template can express), written for scaivault-run.
type ctCase struct {
	name string // the case, as consul-template's tests call it
	text string // the template; Consul data comes from the secrets of ctSeed
	// want is what scaivault-run renders, or "error: " and a part of its
	// error.
	want string
	// ct is consul-template's output where scaivault-run differs on
	// purpose, and why says why (docs/consul-template.md lists them); both
	// are "" where the two agree.
	ct, why string
}

// Each deliberate difference is pinned: the case renders what we say, and
// consul-template's output for it is written down beside it.
const (
	whyErrorNotEmpty = "a missing secret or key is an error, not an empty or <no value> output"
	whyJSON          = "maps decoded from JSON or YAML print as JSON, not Go's map syntax"
	whyRefused       = "a function scaivault-run does not offer fails at parse time, saying why"
	whyNoWrite       = "secret only reads: KEY=VALUE arguments are not a Vault write"
	whyRole          = "pkiCert takes a ScaiVault role name, not a Vault path"
	whyLenient       = "numbers and base64 are read more leniently"
)

func consulTemplateCases(file string) []ctCase {
	const webapp = `(secret "svc/webapp").Data.instances`
	return []ctCase{
		{name: "nil", text: `test`, want: "test"},
		{name: "bad_func", text: `{{ bad_func }}`, want: `error: function "bad_func" not defined`},

		// Vault
		{name: "func_secret_read", text: `{{ with secret "secret/foo" }}{{ .Data.zip }}{{ end }}`, want: "zap"},
		{name: "func_secret_read_versions", text: `{{ with secret "secret/foo" }}{{ .Data.zip }}{{ end }}:{{ with secret "secret/foo?version=1" }}{{ .Data.zip }}{{ end }}`, want: "zap:zed"},
		{name: "func_secret_read_version_option", text: `{{ (secret "secret/foo" "version=1").Data.zip }}`, want: "zed"},
		{name: "func_secret_read_no_exist", text: `{{ with secret "secret/nope" }}{{ .Data.zip }}{{ end }}`,
			want: `error: secret "secret/nope": secret secret/nope not found`, ct: "", why: whyErrorNotEmpty},
		{name: "func_secret_read_no_exist_falsey", text: `{{ if secret "secret/nope" }}yes{{ else }}no{{ end }}`,
			want: `error: secret "secret/nope": secret secret/nope not found`, ct: "no", why: whyErrorNotEmpty},
		{name: "func_secret_missing_key", text: `{{ (secret "secret/foo").Data.nope }}`,
			want: `error: no key "nope" in secret "secret/foo" version 2`, ct: "<no value>", why: whyErrorNotEmpty},
		{name: "func_secret_index_missing_key", text: `{{ index (secret "secret/foo").Data "nope" }}`,
			want: `error: no key "nope" in secret "secret/foo" version 2`, ct: "<no value>", why: whyErrorNotEmpty},
		{name: "func_secret_kv2_data", text: `{{ (secret "secret/foo").Data.data.zip }}`,
			want: `error: no key "data" in secret "secret/foo" version 2`, ct: "zap", why: "a KV v2 secret's .Data.data is .Data here"},
		{name: "func_secret_data_prints_as_json", text: `{{ (secret "secret/foo").Data }}`,
			want: `{"zip":"zap"}`, ct: "map[zip:zap]", why: whyJSON},
		{name: "func_secret_write", text: `{{ with secret "transit/encrypt/foo" "plaintext=a" }}{{ .Data.ciphertext }}{{ end }}`,
			want: `error: unknown option "plaintext" (want version=...)`, ct: "encrypted", why: whyNoWrite},
		{name: "func_secrets", text: `{{ secrets "secret/" }}`, want: "[bar foo]"},
		{name: "func_secrets_no_slash", text: `{{ secrets "secret" }}`, want: "[bar foo]"},
		{name: "func_secrets_folders", text: `{{ secrets "svc/" | len }} {{ range secrets "" }}{{ . }} {{ end }}`,
			want: "5 config/ secret/ svc/ ", ct: "5 ", why: `secrets "" lists the top folder`},
		{name: "func_secrets_no_exist", text: `{{ secrets "nothing/" }}`, want: "[]"},
		{name: "func_secrets_no_exist_falsey", text: `{{ if secrets "nothing/" }}yes{{ else }}no{{ end }}`, want: "no"},
		{name: "func_secrets_no_exist_falsey_with", text: `{{ with secrets "nothing/" }}{{ . }}{{ end }}`, want: ""},
		{name: "func_secrets_each", text: `{{ range secrets "secret/" }}{{ . }}={{ (secret (printf "secret/%s" .)).Data.zip }};{{ end }}`, want: "bar=zop;foo=zap;"},
		{name: "func_pkiCert", text: `{{ with pkiCert "svc-mtls" "common_name=foo.svc.cluster.local" }}{{ hasPrefix "-----BEGIN CERTIFICATE-----" .Data.Cert }} {{ hasPrefix "-----BEGIN" .Data.Key }} {{ hasPrefix "-----BEGIN CERTIFICATE-----" .Data.CA }} {{ eq .Data.Cert .Cert }}{{ end }}`,
			want: "true true true true"},
		{name: "func_pkiCert_vault_path", text: `{{ (pkiCert "pki/issue/svc-mtls" "common_name=foo.svc.cluster.local").Cert }}`,
			want: `error: role "pki/issue/svc-mtls": a ScaiVault PKI role is a name, not a Vault path (pkiCert "svc-mtls" "common_name=...")`, ct: "(a certificate)", why: whyRole},

		// Consul, Nomad and the functions left out
		{name: "missing_deps", text: `{{ key "foo" }}`, want: `error: function "key" not defined: consul-template's key reads Consul, which scaivault-run does not; instead: `, ct: "(the key's value)", why: whyRefused},
		{name: "func_keyOrDefault", text: `{{ keyOrDefault "key" "100" }}`, want: `error: consul-template's keyOrDefault reads Consul`, ct: "150", why: whyRefused},
		{name: "func_ls", text: `{{ range ls "list" }}{{ .Key }}{{ end }}`, want: `error: consul-template's ls reads Consul`, ct: "foo", why: whyRefused},
		{name: "func_tree", text: `{{ range tree "key" }}{{ .Key }}{{ end }}`, want: `error: consul-template's tree reads Consul`, ct: "admin/portmaxconnsminconns", why: whyRefused},
		{name: "func_service", text: `{{ range service "webapp" }}{{ .Address }}{{ end }}`, want: `error: consul-template's service reads Consul`, ct: "1.2.3.45.6.7.8", why: whyRefused},
		{name: "func_connect", text: `{{ range connect "webapp" }}{{ .Address }}{{ end }}`, want: `error: consul-template's connect reads Consul`, ct: "1.2.3.45.6.7.8", why: whyRefused},
		{name: "func_nodes", text: `{{ range nodes }}{{ .Node }}{{ end }}`, want: `error: consul-template's nodes reads Consul`, ct: "node1node2", why: whyRefused},
		{name: "func_datacenters", text: `{{ datacenters }}`, want: `error: consul-template's datacenters reads Consul`, ct: "[dc1 dc2]", why: whyRefused},
		{name: "leaf_cert", text: `{{ with caLeaf "foo" }}{{ .CertPEM }}{{ end }}`, want: `error: consul-template's caLeaf reads Consul, which scaivault-run does not; instead: pkiCert`, ct: "PEM", why: whyRefused},
		{name: "helper_by_key", text: `{{ range $k, $p := tree "list" | byKey }}{{ $k }}{{ end }}`, want: `error: consul-template's tree reads Consul`, ct: "foozip", why: whyRefused},
		{name: "helper_explode", text: `{{ range $k, $v := (secret "config/list").Data | explode }}{{ $k }}{{ end }}`, want: `error: consul-template's explode works on what Consul's functions return`, ct: "foozip", why: whyRefused},
		{name: "nomad_service", text: `{{ range nomadService "web" }}{{ .Address }}{{ end }}`, want: `error: consul-template's nomadService reads Nomad, which scaivault-run does not`, ct: "(addresses)", why: whyRefused},
		{name: "helper_timestamp", text: `{{ timestamp }}`, want: `error: consul-template's timestamp is not provided: its output changes on every render`, ct: "1970-01-01T00:00:00Z", why: whyRefused},
		{name: "helper_plugin", text: `{{ "1" | plugin "echo" }}`, want: `error: consul-template's plugin is not provided: it runs a program`, ct: "1", why: whyRefused},
		{name: "writeToFile", text: `{{ "after" | writeToFile "/tmp/f" "" "" "0644" }}`, want: `error: consul-template's writeToFile is not provided: it writes a file`, ct: "", why: whyRefused},
		{name: "helper_sockaddr", text: `{{ sockaddr "GetPrivateIP" }}`, want: `error: consul-template's sockaddr is not provided: it reads this host's network`, ct: "127.0.0.1", why: whyRefused},
		{name: "spew_sdump_helper_split", text: `{{ "a,b,c" | split "," | spew_sdump }}`, want: `error: consul-template's spew_sdump is not provided`, ct: "([]string) (len=3 cap=3) {...}", why: whyRefused},

		// scratch
		{name: "scratch.Key", text: `{{ scratch.Set "a" "2" }}{{ scratch.Key "a" }}`, want: "true"},
		{name: "scratch.Get", text: `{{ scratch.Set "a" "2" }}{{ scratch.Get "a" }}`, want: "2"},
		{name: "scratch.Get_unset", text: `[{{ scratch.Get "a" }}]`, want: "[]", ct: "[<no value>]", why: "nothing prints <no value>"},
		{name: "scratch.SetX", text: `{{ scratch.SetX "a" "2" }}{{ scratch.SetX "a" "1" }}{{ scratch.Get "a" }}`, want: "2"},
		{name: "scratch.MapSet", text: `{{ scratch.MapSet "a" "foo" "bar" }}{{ scratch.MapValues "a" }}`, want: "[bar]"},
		{name: "scratch.MapSetX", text: `{{ scratch.MapSetX "a" "foo" "bar" }}{{ scratch.MapSetX "a" "foo" "baz" }}{{ scratch.MapValues "a" }}`, want: "[bar]"},
		{name: "scratch.MapValues_not_a_map", text: `{{ scratch.Set "a" "x" }}{{ scratch.MapValues "a" }} {{ scratch.MapValues "b" | len }}`, want: "[] 0"},
		{name: "scratch.MapSet_not_a_map", text: `{{ scratch.Set "a" "x" }}{{ scratch.MapSet "a" "k" "v" }}`, want: `error: scratch "a" is not a map`},
		{name: "scratch.MapValues_sorted", text: `{{ scratch.MapSet "m" "b" 2 }}{{ scratch.MapSet "m" "a" 1 }}{{ scratch.MapValues "m" }}`, want: "[1 2]"},

		// helpers
		{name: "func_base64Decode", text: `{{ base64Decode "aGVsbG8=" }}`, want: "hello"},
		{name: "func_base64Decode_bad", text: `{{ base64Decode "aGVsxxbG8=" }}`, want: "error: illegal base64 data"},
		{name: "func_base64Decode_unpadded", text: `{{ base64Decode "aGVsbG8" }}`, want: "hello", ct: "(an error)", why: whyLenient},
		{name: "func_base64Encode", text: `{{ base64Encode "hello" }}`, want: "aGVsbG8="},
		{name: "func_base64URLDecode", text: `{{ base64URLDecode "dGVzdGluZzEyMw==" }}`, want: "testing123"},
		{name: "func_base64URLDecode_bad", text: `{{ base64URLDecode "aGVsxxbG8=" }}`, want: "error: illegal base64 data"},
		{name: "func_base64URLEncode", text: `{{ base64URLEncode "testing123" }}`, want: "dGVzdGluZzEyMw=="},
		{name: "func_file", text: `{{ file "` + file + `" }}`, want: "content"},
		{name: "helper_contains", text: `{{ range ` + webapp + ` }}{{ if .tags | contains "prod" }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.4"},
		{name: "helper_containsAll", text: `{{ $t := parseJSON "[\"prod\",\"us-realm\"]" }}{{ range (secret "svc/realms").Data.instances }}{{ if .tags | containsAll $t }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.4"},
		{name: "helper_containsAll__empty", text: `{{ $t := parseJSON "[]" }}{{ range (secret "svc/realms").Data.instances }}{{ if .tags | containsAll $t }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.45.6.7.8"},
		{name: "helper_containsAny", text: `{{ $t := parseJSON "[\"v2\",\"v3\"]" }}{{ range (secret "svc/versions").Data.instances }}{{ if .tags | containsAny $t }}{{ .address }}{{ end }}{{ end }}`, want: "5.6.7.8"},
		{name: "helper_containsAny__empty", text: `{{ $t := parseJSON "[]" }}{{ range (secret "svc/versions").Data.instances }}{{ if .tags | containsAny $t }}{{ .address }}{{ end }}{{ end }}`, want: ""},
		{name: "helper_containsNone", text: `{{ $t := parseJSON "[\"devel\",\"staging\"]" }}{{ range (secret "svc/stages").Data.instances }}{{ if .tags | containsNone $t }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.4"},
		{name: "helper_containsNone__empty", text: `{{ $t := parseJSON "[]" }}{{ range (secret "svc/stages").Data.instances }}{{ if .tags | containsNone $t }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.45.6.7.8"},
		{name: "helper_containsNotAll", text: `{{ $t := parseJSON "[\"es-v1\",\"es-v2\"]" }}{{ range (secret "svc/es").Data.instances }}{{ if .tags | containsNotAll $t }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.4"},
		{name: "helper_containsNotAll__empty", text: `{{ $t := parseJSON "[]" }}{{ range (secret "svc/es").Data.instances }}{{ if .tags | containsNotAll $t }}{{ .address }}{{ end }}{{ end }}`, want: ""},
		{name: "helper_env", text: `{{ env "CT_TEST" }}`, want: "1"},
		{name: "helper_mustEnv", text: `{{ mustEnv "CT_TEST" }}`, want: "1"},
		{name: "helper_mustEnv_empty", text: `{{ mustEnv "CT_EMPTY" }}`, want: "error: environment variable CT_EMPTY is unset or empty"},
		{name: "helper_envOrDefault", text: `{{ envOrDefault "CT_TEST" "d" }} [{{ envOrDefault "CT_EMPTY" "d" }}] {{ envOrDefault "CT_UNSET" "d" }}`, want: "1 [] d"},
		{name: "helper_env_or", text: `{{ or (env "CT_EMPTY") "5s" }}`, want: "5s"},
		{name: "helper_executeTemplate", text: `{{ define "custom" }}{{ (secret "secret/foo").Data.zip }}{{ end }}{{ executeTemplate "custom" }}`, want: "zap"},
		{name: "helper_executeTemplate__dot", text: `{{ define "custom" }}{{ (secret .).Data.zip }}{{ end }}{{ executeTemplate "custom" "secret/foo" }}`, want: "zap"},
		{name: "helper_mergeMap", text: `{{ $base := "{\"voo\":{\"bar\":\"v\"}}" | parseJSON }}{{ $role := (secret "config/list").Data | explodeMap | mergeMap $base }}{{ range $k, $v := $role }}{{ $k }}{{ toJSON $v }}{{ end }}`,
			want: `foo{"bar":"a"}voo{"bar":"v"}zip{"zap":"b"}`},
		{name: "helper_mergeMapWithOverride", text: `{{ $base := "{\"zip\":{\"zap\":\"t\"},\"voo\":{\"bar\":\"v\"}}" | parseJSON }}{{ $role := (secret "config/list").Data | explodeMap | mergeMapWithOverride $base }}{{ range $k, $v := $role }}{{ $k }}{{ toJSON $v }}{{ end }}`,
			want: `foo{"bar":"a"}voo{"bar":"v"}zip{"zap":"b"}`},
		{name: "helper_mergeMap_keeps_arguments", text: `{{ $a := parseJSON "{\"x\":1}" }}{{ $m := mergeMap $a (dict "y" 2) }}{{ toJSON $a }} {{ toJSON $m }}`,
			want: `{"x":1} {"x":1,"y":2}`, ct: `{"x":1,"y":2} {"x":1,"y":2}`, why: "mergeMap and mergeMapWithOverride change neither argument"},
		{name: "helper_explodeMap_secret", text: `{{ range $k, $v := (secret "config/list").Data | explodeMap }}{{ $k }}{{ $v }}{{ end }}`, want: "foomap[bar:a]zipmap[zap:b]"},
		{name: "helper_explodemap", text: `{{ scratch.MapSet "e" "foo/bar" "a" }}{{ scratch.MapSet "e" "qux" "c" }}{{ scratch.MapSet "e" "zip/zap" "d" }}{{ scratch.Get "e" | explodeMap }}`,
			want: "map[foo:map[bar:a] qux:c zip:map[zap:d]]"},
		{name: "helper_in", text: `{{ range ` + webapp + ` }}{{ if "prod" | in .tags }}{{ .address }}{{ end }}{{ end }}`, want: "1.2.3.4"},
		{name: "helper_indent", text: `{{ "hello\nhello\r\nHELLO\r\nhello\nHELLO" | indent 4 }}`, want: "    hello\n    hello\r\n    HELLO\r\n    hello\n    HELLO"},
		{name: "helper_indent_negative", text: `{{ "hello\nhello" | indent -4 }}`, want: "error: indent must not be negative"},
		{name: "helper_indent_zero", text: `{{ "hello\nhello\r\nHELLO" | indent 0 }}`, want: "hello\nhello\r\nHELLO"},
		{name: "helper_indent_empty_lines", text: `{{ "a\n\nb" | indent 2 }}`, want: "  a\n\n  b"},
		{name: "helper_loop", text: `{{ range loop 3 }}1{{ end }}`, want: "111"},
		{name: "helper_loop__i", text: `{{ range $i := loop 3 }}{{ $i }}{{ end }}`, want: "012"},
		{name: "helper_loop_start", text: `{{ range loop 1 3 }}1{{ end }}`, want: "11"},
		{name: "helper_loop_text", text: `{{ range loop 1 "3" }}1{{ end }}`, want: "11"},
		{name: "helper_loop_parseInt", text: `{{ $i := print "3" | parseInt }}{{ range loop 1 $i }}1{{ end }}`, want: "11"},
		{name: "helper_loop_var", text: `{{ $n := 3 }}{{ range $i := loop $n }}{{ $i }}{{ end }}`, want: "012"},
		{name: "helper_loop_index", text: `{{ range $i, $e := loop 5 7 }}{{ $i }}{{ $e }}{{ end }}`,
			want: "0516", ct: "(an error: range over a channel takes one variable)", why: "loop gives a list, not a channel"},
		{name: "helper_join", text: `{{ "a,b,c" | split "," | join ";" }}`, want: "a;b;c"},
		{name: "helper_trim", text: `{{ "!!hello world!!" | trim "!!" }}`, want: "hello world"},
		{name: "helper_trimPrefix", text: `{{ "hello world!!" | trimPrefix "hello " }}`, want: "world!!"},
		{name: "helper_trimSuffix", text: `{{ "hello world!!" | trimSuffix " world!!" }}`, want: "hello"},
		{name: "helper_trimSpace", text: `{{ "\t hi\n " | trimSpace }}`, want: "hi"},
		{name: "helper_parseBool", text: `{{ "true" | parseBool }} {{ "" | parseBool }}`, want: "true false"},
		{name: "helper_parseFloat", text: `{{ "1.2" | parseFloat }}`, want: "1.2"},
		{name: "helper_parseFloat_format", text: `{{ "1.0" | parseFloat | printf "%.1f" }}`, want: "1.0"},
		{name: "helper_parseInt", text: `{{ "-1" | parseInt }}`, want: "-1"},
		{name: "helper_parseUint", text: `{{ "1" | parseUint }}`, want: "1"},
		{name: "helper_parseJSON", text: `{{ "{\"foo\": \"bar\"}" | parseJSON }}`, want: `{"foo":"bar"}`, ct: "map[foo:bar]", why: whyJSON},
		{name: "helper_parseJSON_key", text: `{{ with "{\"foo\": \"bar\"}" | parseJSON }}{{ .foo }}{{ end }}`, want: "bar"},
		{name: "helper_parseYAML", text: `{{ "foo: bar" | parseYAML }}`, want: `{"foo":"bar"}`, ct: "map[foo:bar]", why: whyJSON},
		{name: "helper_parseYAMLv2", text: `{{ "foo: bar\nbaz: \"foo\"" | parseYAML }}`, want: `{"baz":"foo","foo":"bar"}`, ct: "map[baz:foo foo:bar]", why: whyJSON},
		{name: "helper_parseYAMLnested", text: `{{ "foo:\n  bar: \"baz\"\n  baz: 7" | parseYAML }}`, want: `{"foo":{"bar":"baz","baz":7}}`, ct: "map[foo:map[bar:baz baz:7]]", why: whyJSON},
		{name: "helper_regexMatch", text: `{{ "foo" | regexMatch "[a-z]+" }}`, want: "true"},
		{name: "helper_regexReplaceAll", text: `{{ "foo" | regexReplaceAll "\\w" "x" }}`, want: "xxx"},
		{name: "helper_replaceAll", text: `{{ "hello my hello" | regexReplaceAll "hello" "bye" }} {{ "foo.bar" | replaceAll "." "_" }}`, want: "bye my bye foo_bar"},
		{name: "helper_split", text: `{{ "a,b,c" | split "," }}`, want: "[a b c]"},
		{name: "helper_split_empty", text: `{{ "  " | split "," | len }}`, want: "0"},
		{name: "helper_splitToMap", text: `{{ "foo:bar\nbaz:bat\n" | splitToMap "\n" ":" }}`, want: "map[baz:bat foo:bar]"},
		{name: "helper_sha256Hex", text: `{{ "bladibla" | sha256Hex }}`, want: "54cf4c66bcabb5c20e25331c01dd600b73369e97a947861bd8d3a0e0b8b3d70b"},
		{name: "helper_md5sum", text: `{{ "myString" | md5sum }}`, want: "91c65b6feeb5a6ad66b30e2ebd9405e1"},
		{name: "helper_hmacSHA256Hex", text: `{{ hmacSHA256Hex "somemessage" "somekey" }} {{ "somekey" | hmacSHA256Hex "somemessage" }}`,
			want: "6116e95f2827172aa6ef8b22b883f6a77e966aefc129c6b8228ebd0aac74e98d 6116e95f2827172aa6ef8b22b883f6a77e966aefc129c6b8228ebd0aac74e98d"},
		{name: "helper_toJSON", text: `{{ "a,b,c" | split "," | toJSON }}`, want: `["a","b","c"]`},
		{name: "helper_toJSONPretty", text: `{{ (secret "config/amp").Data | toJSONPretty }}`, want: "{\n  \"a\": \"b\\u0026c\",\n  \"k\": \"\\u003c\\u003e\\u0026\\u0026\",\n  \"x\": \"y\\u0026z\"\n}"},
		{name: "helper_toUnescapedJSON", text: `{{ "a?b&c,x?y&z" | split "," | toUnescapedJSON }}`, want: `["a?b&c","x?y&z"]`},
		{name: "helper_toUnescapedJSONPretty", text: `{{ (secret "config/amp").Data | toUnescapedJSONPretty }}`, want: "{\n  \"a\": \"b&c\",\n  \"k\": \"<>&&\",\n  \"x\": \"y&z\"\n}"},
		{name: "helper_toLower", text: `{{ "HI" | toLower }}`, want: "hi"},
		{name: "helper_toUpper", text: `{{ "hi" | toUpper }}`, want: "HI"},
		{name: "helper_toTitle", text: `{{ "this is a sentence" | toTitle }}`, want: "This Is A Sentence"},
		{name: "helper_toTitle_unicode", text: `{{ "this is a sentence\u2026and another sentence\u2026with a \xf0\x9f\x9a\x80rocket" | toTitle }}`,
			want: "This Is A Sentence\u2026And Another Sentence\u2026With A \xf0\x9f\x9a\x80Rocket"},
		{name: "helper_toTOML", text: `{{ "{\"foo\":\"bar\"}" | parseJSON | toTOML }}`, want: `foo = "bar"`},
		{name: "helper_toTOML_tables", text: `{{ (secret "config/list").Data | explodeMap | mergeMap (dict "maxconns" "5") | toTOML }}`,
			want: "maxconns = \"5\"\n\n[foo]\n  bar = \"a\"\n\n[zip]\n  zap = \"b\""},
		{name: "sprig_default_number_zero", text: `{{ sprig_default 5 (secret "config/zero").Data.z }} {{ sprig_empty (secret "config/zero").Data.z }} {{ default 5 (secret "config/zero").Data.z }}`,
			want: "0 false 5", ct: "0 false 0", why: "our default (not sprig_default) treats a secret's number 0 as empty, as a number; Sprig sees Vault's json.Number as the string \"0\""},
		{name: "helper_toTOML_floats", text: `{{ "{\"small\":0.000001}" | parseJSON | toTOML }}`,
			want: "small = 1e-06", ct: "small = 0.000001", why: "a newer BurntSushi/toml (v1.6, which urfave/cli needs) than consul-template's v1.3.2 writes small and large floats in exponent form (the same TOML value)"},
		{name: "helper_mergeMap_empty", text: `{{ mergeMap (dict "enabled" false "n" 0) (dict "enabled" true "n" 5) }}`,
			want: "map[enabled:false n:0]", ct: "map[enabled:true n:5]", why: "without override a key of the first map keeps its value, false, 0 and \"\" included; mergo (consul-template) treats those as unset"},
		{name: "helper_toYAML", text: `{{ "{\"foo\":\"bar\"}" | parseJSON | toYAML }}`, want: "foo: bar"},
		{name: "helper_toYAML_list", text: `{{ "{\"l\":[1,2]}" | parseJSON | toYAML }}`,
			want: "l:\n  - 1\n  - 2", ct: "l:\n- 1\n- 2", why: "toYAML indents list items by two spaces (the same YAML)"},

		// math
		{name: "math_add", text: `{{ 2 | add 2 }}`, want: "4"},
		{name: "math_subtract", text: `{{ 2 | subtract 2 }} {{ subtract 2 5 }}`, want: "0 3"},
		{name: "math_multiply", text: `{{ 2 | multiply 2 }}`, want: "4"},
		{name: "math_divide", text: `{{ 2 | divide 2 }} {{ divide 2 10 }}`, want: "1 5"},
		{name: "math_modulo", text: `{{ 3 | modulo 2 }}`, want: "1"},
		{name: "math_minimum", text: `{{ 3 | minimum 2 }}`, want: "2"},
		{name: "math_maximum", text: `{{ 3 | maximum 2 }}`, want: "3"},
		{name: "math_add_text", text: `{{ add "1" 2 }}`, want: "3", ct: "(an error: unknown type)", why: whyLenient},

		// Sprig, as sprig_NAME
		{name: "sprig_trim", text: `[{{ sprig_trim "  a  " }}]`, want: "[a]"},
		{name: "sprig_split", text: `{{ "a,b" | sprig_split "," }}`, want: "map[_0:a _1:b]"},
		{name: "sprig_nindent", text: `{{ sprig_nindent 2 "a\n\nb" }}`, want: "\n  a\n  \n  b"},
		{name: "sprig_default", text: `{{ "" | sprig_default "d" }} {{ sprig_dict "a" 1 | toJSON }} {{ sprig_add 1 2 3 }}`, want: `d {"a":1} 6`},
		{name: "sprig_regexReplaceAll", text: `{{ sprig_regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}`, want: "-W-xxW-"},
		{name: "sprig_first_empty", text: `{{ sprig_first (list) }}`, want: "error: empty list", ct: "<no value>", why: whyErrorNotEmpty},
		{name: "sprig_not_provided", text: `{{ sprig_b64enc "a" }}`, want: `error: Sprig's b64enc is not provided; instead: base64Encode`, ct: "YQ==", why: whyRefused},
	}
}

// TestConsulTemplateCompat renders consul-template's template test cases
// against the dev server: the same output where the behaviour is the same,
// and each deliberate difference pinned with consul-template's output beside
// it.
func TestConsulTemplateCompat(t *testing.T) {
	seed, err := devserver.ParseSeed([]byte(ctSeed), "ct.json")
	if err != nil {
		t.Fatal(err)
	}
	env := startDev(t, seed)
	// secret/foo: version 1 "zed", version 2 (current) "zap".
	admin := &devserver.Admin{BaseURL: env.url, Token: env.srv.RootToken()}
	if _, err := admin.Write(context.Background(), "secret/foo", fetch.WriteRequest{Data: map[string]any{"zip": "zap"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(file, []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"CT_TEST": "1", "CT_EMPTY": ""}
	opt := template.Options{LookupEnv: func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}}
	names := map[string]bool{}
	for i, tc := range consulTemplateCases(file) {
		if names[tc.name] {
			t.Fatalf("case %s twice", tc.name)
		}
		names[tc.name] = true
		if (tc.ct != "" || tc.why != "") && (tc.why == "" || tc.ct == tc.want) {
			t.Errorf("%s: a difference needs consul-template's output and why", tc.name)
		}
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(dir, tc.name+".tmpl")
			if err := os.WriteFile(src, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := renderCompat(env, src, opt)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("case %d: got %q, error %v; want an error with %q", i, got, err, want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("case %d: got %q, %v\nwant %q", i, got, err, tc.want)
			}
		})
	}
}

// renderCompat renders one template file against env and revokes what it
// leased.
func renderCompat(env *devEnv, src string, opt template.Options) (string, error) {
	set, err := template.Parse([]template.Spec{{Src: src, Dst: template.Stdout}}, opt)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, snap, err := set.RenderAll(ctx, env.resolver.Resolve, nil)
	_ = env.revokeAll(snap)
	if err != nil {
		return "", err
	}
	return string(out[0].Data), nil
}
