package template

// The consul-template functions scaivault-run does not offer, and why. A
// template that calls one fails at parse time (the name is not defined),
// and the error says why and what to use instead, so that a ported
// template is fixed once rather than found out at the first render.
// docs/consul-template.md has the same table for people.

import "strings"

// refusal is why a function is not offered and what does its job here
// ("" when nothing does).
type refusal struct{ why, instead string }

const (
	whyConsul     = "reads Consul, which scaivault-run does not"
	whyNomad      = "reads Nomad, which scaivault-run does not"
	whyConsulData = "works on what Consul's functions return (tree, ls, service), which scaivault-run does not read"
	whyClock      = "its output changes on every render, so the file would be rewritten, and the child restarted or reloaded, on every poll"
	whyRandom     = "its output is new on every render, so the file would be rewritten, and the child restarted or reloaded, on every poll"
	whyNetwork    = "it reads this host's network while rendering, and rendering reads nothing but ScaiVault, the environment and files"

	insteadKV      = `keep the value in a ScaiVault secret and read it with (secret "PATH").Data.KEY`
	insteadAddress = "pass what the program needs in the environment and read it with env"
	insteadCert    = "pkiCert issues a certificate from ScaiVault's PKI (.Cert, .Key, .CA)"
	insteadTime    = `use a time the secret carries ((secret "PATH").UpdatedAt.Format "2006-01-02"), or let the program read its own clock`
	insteadRandom  = "generate the value once and keep it in ScaiVault (dynamic and pkiCert for credentials and certificates)"
)

// refusedFuncs are consul-template's functions that are not here.
var refusedFuncs = map[string]refusal{
	"key":              {whyConsul, insteadKV},
	"key_or_default":   {whyConsul, `(get (secret "PATH").Data "KEY") | default "DEFAULT"`},
	"keyOrDefault":     {whyConsul, `(get (secret "PATH").Data "KEY") | default "DEFAULT"`},
	"key_exists":       {whyConsul, `hasKey (secret "PATH").Data "KEY"`},
	"keyExists":        {whyConsul, `hasKey (secret "PATH").Data "KEY"`},
	"ls":               {whyConsul, `secrets "FOLDER" lists the secrets in a ScaiVault folder, and a secret's .Data holds its keys`},
	"safeLs":           {whyConsul, `secrets "FOLDER" lists the secrets in a ScaiVault folder, and a secret's .Data holds its keys`},
	"tree":             {whyConsul, `a secret's .Data holds a set of keys: range $k, $v := (secret "PATH").Data`},
	"safeTree":         {whyConsul, `a secret's .Data holds a set of keys: range $k, $v := (secret "PATH").Data`},
	"service":          {whyConsul, insteadAddress},
	"services":         {whyConsul, insteadAddress},
	"connect":          {whyConsul, insteadAddress},
	"node":             {whyConsul, insteadAddress},
	"nodes":            {whyConsul, insteadAddress},
	"datacenters":      {whyConsul, insteadAddress},
	"partitions":       {whyConsul, insteadAddress},
	"peerings":         {whyConsul, insteadAddress},
	"exportedServices": {whyConsul, insteadAddress},
	"importedServices": {whyConsul, insteadAddress},
	"caLeaf":           {whyConsul, insteadCert},
	"caRoots":          {whyConsul, insteadCert},
	"byKey":            {whyConsulData, `explodeMap turns a map, such as a secret's .Data, into nested maps`},
	"byTag":            {whyConsulData, ""},
	"byPort":           {whyConsulData, ""},
	"byMeta":           {whyConsulData, ""},
	"explode":          {whyConsulData, `explodeMap turns a map, such as a secret's .Data, into nested maps`},
	"nomadServices":    {whyNomad, insteadAddress},
	"nomadService":     {whyNomad, insteadAddress},
	"nomadVarList":     {whyNomad, `secrets "FOLDER" lists the secrets in a ScaiVault folder`},
	"nomadVarListSafe": {whyNomad, `secrets "FOLDER" lists the secrets in a ScaiVault folder`},
	"nomadVar":         {whyNomad, `(secret "PATH").Data`},
	"nomadVarExists":   {whyNomad, ""},
	"timestamp":        {notProvided + whyClock, insteadTime},
	"writeToFile": {notProvided + "it writes a file as a side effect of rendering, on every render pass and outside the all-or-nothing write of the templates",
		"render that file with a --template of its own"},
	"plugin": {notProvided + "it runs a program as a side effect of rendering, on every render pass, handing it the values it is given",
		"compute the value with the template functions, or let the child run the program"},
	"sockaddr":     {notProvided + whyNetwork, insteadAddress},
	"spew_dump":    {notProvided + "it dumps Go values for debugging, to scaivault-run's own output", `toJSONPretty, or printf "%#v"`},
	"spew_sdump":   {notProvided + "it dumps Go values for debugging", `toJSONPretty, or printf "%#v"`},
	"spew_printf":  {notProvided + "it dumps Go values for debugging, to scaivault-run's own output", `printf`},
	"spew_sprintf": {notProvided + "it dumps Go values for debugging", `printf`},
}

// notProvided starts the why of a consul-template function that is left
// out for what it does rather than for what it reads.
const notProvided = "is not provided: "

// sprigRefused are Sprig functions that have a reason beyond "not provided",
// or a function here that does their job.
var sprigRefused = map[string]refusal{
	"b64enc": {"", "base64Encode"}, "b64dec": {"", "base64Decode"},
	"upper": {"", "toUpper"}, "lower": {"", "toLower"},
	"toJson": {"", "toJSON"}, "mustToJson": {"", "toJSON"},
	"toPrettyJson": {"", "toJSONPretty"}, "mustToPrettyJson": {"", "toJSONPretty"},
	"toRawJson": {"", "toUnescapedJSON"}, "mustToRawJson": {"", "toUnescapedJSON"},
	"fromJson": {"", "parseJSON"}, "mustFromJson": {"", "parseJSON"},
	"sha256sum": {"", "sha256Hex"},
	"mul":       {"", "multiply (two numbers)"},
	"div":       {"", "divide, whose arguments are the other way round: sprig_div A B is divide B A, or A | divide B"},
	"mod":       {"", "modulo, whose arguments are the other way round: sprig_mod A B is modulo B A, or A | modulo B"},
	"max":       {"", "maximum (two numbers)"}, "biggest": {"", "maximum (two numbers)"},
	"min":       {"", "minimum (two numbers)"},
	"splitList": {"", "split SEP S (a list)"},
	"trimAll":   {"", "trim CUTSET S"}, "trimall": {"", "trim CUTSET S"},
	"merge": {"", "mergeMap"}, "mustMerge": {"", "mergeMap"},
	"mergeOverwrite": {"", "mergeMapWithOverride"}, "mustMergeOverwrite": {"", "mergeMapWithOverride"},
	"until": {"", "loop"},
	"fail":  {"", `required "MESSAGE" ""`},
	"has":   {"", "in LIST V (the arguments the other way round)"}, "mustHas": {"", "in LIST V (the arguments the other way round)"},
	"mustFirst": {"", "first"}, "mustLast": {"", "last"},
	"mustRegexMatch":      {"", "regexMatch"},
	"mustRegexReplaceAll": {"", "sprig_regexReplaceAll, or regexReplaceAll RE REPL S"},
	"toString":            {"", "print"},
	"atoi":                {"", "parseInt"}, "int": {"", "parseInt"}, "int64": {"", "parseInt"},
	"float64":   {"", "parseFloat"},
	"expandenv": {"", "env"},
	"now":       {whyClock, insteadTime}, "date": {whyClock, insteadTime},
	"dateInZone": {whyClock, insteadTime}, "date_in_zone": {whyClock, insteadTime},
	"dateModify": {whyClock, insteadTime}, "date_modify": {whyClock, insteadTime},
	"mustDateModify": {whyClock, insteadTime}, "must_date_modify": {whyClock, insteadTime},
	"htmlDate": {whyClock, insteadTime}, "htmlDateInZone": {whyClock, insteadTime},
	"ago":          {whyClock, insteadTime},
	"randAlphaNum": {whyRandom, insteadRandom}, "randAlpha": {whyRandom, insteadRandom},
	"randAscii": {whyRandom, insteadRandom}, "randNumeric": {whyRandom, insteadRandom},
	"randBytes": {whyRandom, insteadRandom}, "randInt": {whyRandom, insteadRandom},
	"uuidv4": {whyRandom, insteadRandom}, "shuffle": {whyRandom, insteadRandom},
	"bcrypt": {whyRandom, insteadRandom}, "htpasswd": {whyRandom, insteadRandom},
	"encryptAES": {whyRandom, insteadRandom}, "genPrivateKey": {whyRandom, insteadRandom},
	"genCA": {whyRandom, insteadRandom}, "genCAWithKey": {whyRandom, insteadRandom},
	"genSelfSignedCert": {whyRandom, insteadRandom}, "genSelfSignedCertWithKey": {whyRandom, insteadRandom},
	"genSignedCert": {whyRandom, insteadRandom}, "genSignedCertWithKey": {whyRandom, insteadRandom},
	"getHostByName": {whyNetwork, insteadAddress},
}

// refusedFunc explains why the function name, which the template calls and
// which is not defined, is not offered: "" for a name it knows nothing of
// (a typo keeps text/template's plain message).
func refusedFunc(name string) string {
	if r, ok := refusedFuncs[name]; ok {
		return "consul-template's " + name + " " + r.why + instead(r.instead)
	}
	sprig, ok := strings.CutPrefix(name, "sprig_")
	if !ok || sprig == "" {
		return ""
	}
	msg := "Sprig's " + sprig + " is not provided"
	r, ok := sprigRefused[sprig]
	if !ok {
		return msg + " (docs/consul-template.md lists the sprig_ names there are)"
	}
	if r.why != "" {
		msg += ": " + r.why
	}
	return msg + instead(r.instead)
}

func instead(s string) string {
	if s == "" {
		return ""
	}
	return "; instead: " + s
}
