package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/run"
)

// envName is the environment variable of a flag: SCAIVAULT_ + NAME.
func envName(flag string) []string {
	return []string{"SCAIVAULT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// Repeatable flags. Their variables hold one value per line (see main's doc).
var repeatable = []string{"env", "env-file", "secret", "template"}

// sourceFlags are the flags of the main job and of render: where values come
// from and how they are delivered.
func sourceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: "env", Value: &rawList{}, Usage: "set `NAME=VALUE` in the child; VALUE may be a secret reference (repeatable)"},
		&cli.GenericFlag{Name: "env-file", Value: &rawList{}, Usage: "read variables from a .env `FILE` (repeatable, later files win)"},
		&cli.GenericFlag{Name: "secret", Value: &rawList{}, Usage: "import every key of the secret at `PATH` as a variable (repeatable)"},
		&cli.StringFlag{Name: "prefix", Usage: "prefix for the names of --secret imports", EnvVars: envName("prefix")},
		&cli.BoolFlag{Name: "upcase", Usage: "upper-case the names of --secret imports", EnvVars: envName("upcase")},
		&cli.BoolFlag{Name: "pristine", Usage: "start the child from an empty environment instead of the inherited one", EnvVars: envName("pristine")},
		&cli.BoolFlag{Name: "keep-credentials", Usage: "pass SCAIVAULT_TOKEN and SCAIKEY_CLIENT_* on to the child", EnvVars: envName("keep-credentials")},
		&cli.StringFlag{Name: "user", Usage: "run the child as `USER[:GROUP]` (names or ids; needs root unless it is yourself); as=file files and templates belong to it", EnvVars: envName("user")},
		&cli.GenericFlag{Name: "template", Value: &rawList{}, Usage: "render template `SRC:DST[:MODE]` (repeatable; without MODE an existing DST keeps its mode and owner, a new one is 0600)"},
		&cli.BoolFlag{Name: "template-create-dirs", Usage: "create missing parent directories of template destinations", EnvVars: envName("template-create-dirs")},
		&cli.StringFlag{Name: "template-delims", Usage: "template delimiters as `LEFT:RIGHT`, e.g. '[[:]]'", EnvVars: envName("template-delims")},
		&cli.StringFlag{Name: "ca-cert", Usage: "trust the CAs of this PEM `FILE` besides the system roots", EnvVars: []string{fetch.EnvCACert}},
		&cli.StringFlag{Name: "ca-path", Usage: "trust the CAs of the PEM files in `DIR` besides the system roots", EnvVars: []string{fetch.EnvCAPath}},
		&cli.StringFlag{Name: "client-cert", Usage: "client certificate PEM `FILE` for mTLS (re-read when it changes)", EnvVars: []string{fetch.EnvClientCert}},
		&cli.StringFlag{Name: "client-key", Usage: "private key PEM `FILE` of --client-cert", EnvVars: []string{fetch.EnvClientKey}},
		&cli.StringFlag{Name: "tls-server-name", Usage: "verify the server's certificate for `NAME` instead of the URL's host", EnvVars: []string{fetch.EnvTLSServerName}},
		&cli.BoolFlag{Name: "tls-skip-verify", Usage: "do not verify the server's certificate (insecure; warned about at every start)", EnvVars: []string{fetch.EnvTLSSkipVerify}},
		&cli.StringFlag{Name: "config", Usage: "read flags from this YAML `FILE` (flags and variables win over it)", EnvVars: envName("config")},
		&cli.StringFlag{Name: "token-file", Usage: "read the ScaiVault token from `FILE` (re-read when it changes)", EnvVars: envName("token-file")},
		&cli.GenericFlag{Name: "dev", Usage: "run against an embedded dev server, seeded from `SEED` (--dev=SEED) or demo data (--dev)", Value: &devFlag{}, EnvVars: envName("dev")},
		&cli.DurationFlag{Name: "startup-timeout", Value: 60 * time.Second, Usage: "give up reaching the server at start after this long", EnvVars: envName("startup-timeout")},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: envName("log-level")},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: envName("log-format")},
	}
}

// checkFlags are the check subcommand's own flags.
func checkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: "text", Usage: "text or json", EnvVars: envName("format")},
	}
}

// runFlags are the flags of the main job only.
func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pid-file", Usage: "write scaivault-run's pid to `FILE` (removed at exit; with --once it stays, naming the command)", EnvVars: envName("pid-file")},
		&cli.BoolFlag{Name: "once", Usage: "resolve once and exec the command in place of scaivault-run (no watching)", EnvVars: envName("once")},
		&cli.DurationFlag{Name: "poll-interval", Value: 60 * time.Second, Usage: "how often to poll static secrets (5m safety poll with events)", EnvVars: envName("poll-interval")},
		&cli.StringFlag{Name: "wait", Value: "0", Usage: "debounce changes: `MIN[:MAX]`", EnvVars: envName("wait")},
		&cli.StringFlag{Name: "kill-signal", Value: "SIGTERM", Usage: "signal that stops the child", EnvVars: envName("kill-signal")},
		&cli.DurationFlag{Name: "kill-timeout", Value: 7 * time.Second, Usage: "wait this long after the kill signal before SIGKILL", EnvVars: envName("kill-timeout")},
		&cli.StringFlag{Name: "reload-signal", Usage: "signal sent when only files changed (default: restart)", EnvVars: envName("reload-signal")},
		&cli.StringFlag{Name: "reload-pid-file", Usage: "with no command (files only): send the reload signal to the pid in `FILE`, read at each signal", EnvVars: envName("reload-pid-file")},
		&cli.DurationFlag{Name: "restart-splay", Usage: "wait a random 0..`D` before acting on a change", EnvVars: envName("restart-splay")},
		&cli.BoolFlag{Name: "exit-on-lost", Usage: "stop the child and exit 125 when a secret is lost for good", EnvVars: envName("exit-on-lost")},
		&cli.DurationFlag{Name: "cleanup-timeout", Value: 2 * time.Second, Usage: "bound the lease revocations on exit, all of them together", EnvVars: envName("cleanup-timeout")},
		&cli.BoolFlag{Name: "no-revoke", Usage: "leave leases to their ttl on exit", EnvVars: envName("no-revoke")},
		&cli.BoolFlag{Name: "mask", Usage: "conceal every injected value in the child's stdout and stderr as <concealed:NAME> (they become pipes; not with --once)", EnvVars: envName("mask")},
		&cli.BoolFlag{Name: "subreaper", Usage: "reap orphaned descendants even when not PID 1 (Linux)", EnvVars: envName("subreaper")},
		&cli.StringFlag{Name: "status-addr", Usage: "serve /healthz, /readyz, /status and /metrics on `ADDR` (e.g. 127.0.0.1:9100; default: off)", EnvVars: envName("status-addr")},
		&cli.StringFlag{Name: "state-file", Usage: "keep what the child runs on in this encrypted `FILE`, for crash recovery and fallback (needs --state-key-file)", EnvVars: envName("state-file")},
		&cli.StringFlag{Name: "state-key-file", Usage: "the age identity `KEY` file (age-keygen) the state file is encrypted to", EnvVars: envName("state-key-file")},
		&cli.DurationFlag{Name: "fallback-after", Value: run.DefaultFallbackAfter, Usage: "with --state-file: start the child on the state file when the server has not answered for this long at start", EnvVars: envName("fallback-after")},
		&cli.DurationFlag{Name: "fallback-max-age", Value: run.DefaultFallbackMaxAge, Usage: "never fall back on a state file older than this", EnvVars: envName("fallback-max-age")},
	}
}

func renderFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: "env", Usage: "env or json", EnvVars: envName("format")},
		&cli.BoolFlag{Name: "show-values", Usage: "print values instead of where they came from", EnvVars: envName("show-values")},
	}
}

func devServerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8200", Usage: "listen `ADDR`", EnvVars: []string{"SCAIVAULT_DEV_LISTEN"}},
		&cli.StringFlag{Name: "seed", Usage: "seed `FILE` (JSON, or YAML by extension); default demo data", EnvVars: []string{"SCAIVAULT_DEV_SEED"}},
		&cli.StringFlag{Name: "data", Usage: "keep state in `FILE` across restarts", EnvVars: []string{"SCAIVAULT_DEV_DATA"}},
		&cli.Float64Flag{Name: "fault-rate", Usage: "answer 503 at this rate (0..1)", EnvVars: []string{"SCAIVAULT_DEV_FAULT_RATE"}},
		&cli.DurationFlag{Name: "latency", Usage: "add this latency to every answer", EnvVars: []string{"SCAIVAULT_DEV_LATENCY"}},
		&cli.DurationFlag{Name: "acme-delay", Value: time.Second, Usage: "how long an ACME order takes to turn valid (or invalid)", EnvVars: []string{"SCAIVAULT_DEV_ACME_DELAY"}},
		&cli.StringFlag{Name: "export-file", Usage: "also write the export lines to `FILE` (0600, once listening; removed at exit)", EnvVars: []string{"SCAIVAULT_DEV_EXPORT_FILE"}},
		&cli.BoolFlag{Name: "tls", Usage: "serve HTTPS with a certificate from the dev CA for 127.0.0.1, ::1 and localhost", EnvVars: []string{"SCAIVAULT_DEV_TLS"}},
		&cli.StringFlag{Name: "tls-ca-out", Usage: "write the dev CA (PEM) to `FILE` (default: beside --data, else in the temporary directory, removed at exit)", EnvVars: []string{"SCAIVAULT_DEV_TLS_CA_OUT"}},
		&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with this certificate PEM `FILE` (implies --tls)", EnvVars: []string{"SCAIVAULT_DEV_TLS_CERT"}},
		&cli.StringFlag{Name: "tls-key", Usage: "private key PEM `FILE` of --tls-cert", EnvVars: []string{"SCAIVAULT_DEV_TLS_KEY"}},
		&cli.StringFlag{Name: "tls-client-ca", Usage: "require client certificates signed by the CAs of this PEM `FILE` (implies --tls)", EnvVars: []string{"SCAIVAULT_DEV_TLS_CLIENT_CA"}},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: envName("log-level")},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: envName("log-format")},
	}
}

// devFlag is --dev[=SEED]: a boolean flag that also takes a value.
type devFlag struct {
	on   bool
	seed string
}

func (d *devFlag) IsBoolFlag() bool { return true }

func (d *devFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1":
		d.on, d.seed = true, ""
	case "false", "0", "":
		d.on, d.seed = false, ""
	default:
		d.on, d.seed = true, s
	}
	return nil
}

func (d *devFlag) String() string {
	if d == nil || !d.on {
		return ""
	}
	if d.seed == "" {
		return "true"
	}
	return d.seed
}

// rawList is a repeatable flag that keeps every value exactly as given.
// urfave/cli's StringSliceFlag trims blanks around each value (and splits
// at commas unless told not to): `--env 'A=x  '` must give the child "x  ".
type rawList struct{ vals []string }

func (l *rawList) Set(s string) error {
	l.vals = append(l.vals, s)
	return nil
}

func (l *rawList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.vals, ", ")
}

// repeated returns a repeatable flag's values: its variable's lines first,
// then the flag's values, each as given; with neither, the --config file's. Blank lines of the variable are
// skipped and a line's CR (a CRLF file) dropped; other lines are trimmed
// of blanks, except --env's, whose values keep them (a NAME has none).
func repeated(c *cli.Context, name string) []string {
	var out []string
	if v, ok := os.LookupEnv(envName(name)[0]); ok {
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSuffix(line, "\r")
			if strings.TrimSpace(line) == "" {
				continue
			}
			if name == "env" {
				line = strings.TrimLeft(line, " \t")
			} else {
				line = strings.TrimSpace(line)
			}
			out = append(out, line)
		}
	}
	if l, ok := c.Generic(name).(*rawList); ok && l != nil {
		out = append(out, l.vals...)
	}
	_, inEnv := os.LookupEnv(envName(name)[0])
	if len(out) == 0 && !inEnv {
		return configLists(c, name) // the command line and the variable replace the file's list
	}
	return out
}

// parseWait parses --wait MIN[:MAX].
func parseWait(s string) (min, max time.Duration, err error) {
	lo, hi, two := strings.Cut(s, ":")
	if min, err = parseDur(lo); err != nil {
		return 0, 0, fmt.Errorf("--wait %q: %v", s, err)
	}
	max = 4 * min // consul-template's default when MAX is not given
	if min > math.MaxInt64/4 {
		max = math.MaxInt64 // 4*MIN would wrap around to a negative MAX
	}
	if two {
		if max, err = parseDur(hi); err != nil {
			return 0, 0, fmt.Errorf("--wait %q: %v", s, err)
		}
	}
	if min < 0 || max < 0 {
		return 0, 0, fmt.Errorf("--wait %q: durations cannot be negative", s)
	}
	if max < min {
		return 0, 0, fmt.Errorf("--wait %q: MAX is below MIN", s)
	}
	return min, max, nil
}

func parseDur(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}
