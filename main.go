// Command scaivault-run puts secrets from ScaiVault into a process without
// the process knowing about ScaiVault.
//
//	scaivault-run [flags] -- myapp --port 8080
//	scaivault-run render [flags]
//	scaivault-run dev-server --listen 127.0.0.1:8200 --seed seed.json
//
// It resolves secret references (scaivault://PATH[?version=N][#KEY],
// scaivault+dynamic://ENGINE/ROLE[?ttl=D][#KEY],
// scaivault+pki://ROLE?common_name=CN[&alt_names=..][&ip_sans=..][&ttl=D][#FIELD],
// scaivault+acme://ACCOUNT?domains=a,b[&challenge=dns-01][#FIELD])
// found in the inherited environment, in --env-file files and in --env flags,
// imports whole secrets with --secret, renders --template files, and starts
// the command with the result. It stays beside the child: it forwards
// signals, reaps zombies when it is PID 1 (or with --subreaper), watches the
// secrets it used and restarts or signals the child when they change, and
// exits with the child's status.
//
// Configuration: every flag has an environment variable, SCAIVAULT_ and the
// flag's name in upper case with dashes as underscores (--poll-interval is
// SCAIVAULT_POLL_INTERVAL). The repeatable flags (--env, --env-file,
// --secret, --template) take several values from their variable, one per
// line; those come before the flags' own values. The server is named by
// SCAIVAULT_BASE_URL, the credential by SCAIVAULT_TOKEN (or --token-file) or
// by SCAIKEY_CLIENT_ID and SCAIKEY_CLIENT_SECRET (token endpoint
// SCAIKEY_TOKEN_URL). Those credentials are removed from the child's
// environment unless --keep-credentials.
//
// Exit status: the child's; 128+N when the child died of signal N; 125 when
// scaivault-run failed before or while starting the child; 126 when the
// command cannot be executed; 127 when it is not found.
//
// This file and flags.go only wire the command line to the run, devserver
// and signal packages; main is the only place that prints errors or calls
// os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/scailabs/scaivault-run/run"
)

var version = "dev"

func main() {
	os.Exit(runMain(os.Args, os.Stdout, os.Stderr))
}

// runMain runs the command line and returns the exit status. Errors are
// printed here and nowhere else.
func runMain(args []string, stdout, stderr io.Writer) int {
	st := &status{code: 0}
	app := newApp(stdout, stderr, st)
	err := app.RunContext(context.Background(), args)
	if err != nil {
		printError(stderr, err)
		if st.code == 0 {
			st.code = run.ExitFailure
		}
	}
	return st.code
}

// status carries the exit status out of urfave/cli's actions.
type status struct{ code int }

// hinter is an error that has advice for the user.
type hinter interface{ Hint() string }

// printError prints each error of a joined error on a line of its own.
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "scaivault-run: error: %s\n", line)
	}
	var h hinter
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(w, "scaivault-run: hint: %s\n", h.Hint())
	}
}

func newApp(stdout, stderr io.Writer, st *status) *cli.App {
	return &cli.App{
		Name:                      "scaivault-run",
		Usage:                     "run a command with its secrets from ScaiVault",
		UsageText:                 "scaivault-run [flags] -- command [args...]\nscaivault-run render [flags]\nscaivault-run check [flags] [-- command [args...]]\nscaivault-run dev-server [flags]",
		Version:                   version,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		HideHelpCommand:           true,
		DisableSliceFlagSeparator: true,
		Flags:                     append(runFlags(), sourceFlags()...),
		Action:                    func(c *cli.Context) error { return actionRun(c, st) },
		ExitErrHandler:            func(*cli.Context, error) {},
		OnUsageError:              usageError,
		Commands: []*cli.Command{
			{
				Name:         "render",
				Usage:        "resolve and render once, print the environment, start nothing",
				Flags:        append(renderFlags(), sourceFlags()...),
				Action:       func(c *cli.Context) error { return actionRender(c, st) },
				OnUsageError: usageError,
			},
			{
				Name:         "check",
				Usage:        "pre-flight: may this identity read every secret and create every lease and certificate referenced? (creates nothing)",
				ArgsUsage:    "[-- command [args...]]",
				Flags:        append(append(runFlags(), checkFlags()...), sourceFlags()...),
				Action:       func(c *cli.Context) error { return actionCheck(c, st) },
				OnUsageError: usageError,
			},
			{
				Name:         "dev-server",
				Usage:        "serve the ScaiVault API from memory, for trying things out and for tests",
				Flags:        devServerFlags(),
				Action:       func(c *cli.Context) error { return actionDevServer(c, st) },
				OnUsageError: usageError,
			},
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, "scaivault-run", version)
					return nil
				},
			},
		},
	}
}

func usageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (see %s --help)", err, c.App.Name)
}
