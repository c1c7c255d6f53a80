package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/scailabs/scaivault-run/run"
)

// stateOptions reads --state-file, --state-key-file, --fallback-after and
// --fallback-max-age (run/state.go).
func stateOptions(c *cli.Context, opts *run.Options) error {
	opts.StateFile = strings.TrimSpace(c.String("state-file"))
	opts.StateKeyFile = strings.TrimSpace(c.String("state-key-file"))
	opts.FallbackAfter, opts.FallbackMaxAge = c.Duration("fallback-after"), c.Duration("fallback-max-age")
	switch {
	case opts.StateFile == "" && opts.StateKeyFile == "":
		return nil
	case opts.StateKeyFile == "":
		return errors.New("--state-file needs --state-key-file KEY: the age identity (age-keygen) it is encrypted to")
	case opts.StateFile == "":
		return errors.New("--state-key-file without --state-file: no state file to encrypt")
	case opts.FallbackAfter <= 0:
		return fmt.Errorf("--fallback-after %v: want a positive duration", opts.FallbackAfter)
	case opts.FallbackMaxAge <= 0:
		return fmt.Errorf("--fallback-max-age %v: want a positive duration", opts.FallbackMaxAge)
	case opts.StartupTimeout > 0 && opts.FallbackAfter >= opts.StartupTimeout:
		return fmt.Errorf("--fallback-after %v is not shorter than --startup-timeout %v: the start-up would give up before falling back", opts.FallbackAfter, opts.StartupTimeout)
	}
	return nil
}
