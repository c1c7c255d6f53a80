package template

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultMode is the mode of a rendered file when its spec gives none.
const DefaultMode os.FileMode = 0o600

// Stdout is the DST that writes a rendered template to standard output
// (the render subcommand) instead of a file.
const Stdout = "-"

// Spec is one --template flag: render the Go text/template file Src into
// Dst with permission bits Mode. Dst "-" (Stdout) means standard output.
// Mode 0 (no MODE given) keeps the mode and owner of an existing Dst, and
// is DefaultMode (0600) for a new one.
type Spec struct {
	Src, Dst string
	Mode     os.FileMode

	// Owner, when not nil, is the owner the written file is given (its
	// config block's user and group, or --user's). Nil keeps the owner of
	// the file it replaces, or the process's own for a new file.
	Owner *Owner

	// Delims, when set, are this template's action delimiters (its config
	// block's left_delimiter and right_delimiter), in place of
	// Options.Delims.
	Delims [2]string

	// What to do when this file changed on a re-render (its config block;
	// package run acts on them, package template only carries them). At
	// most one of Command and ReloadSignal is set; with neither, the
	// run's --reload-signal or a restart.
	Command        []string       // an argv run after the file changed; no shell
	CommandTimeout time.Duration  // 0: DefaultCommandTimeout
	ReloadSignal   syscall.Signal // sent to the child instead of a restart
	// Wait, when set, debounces this file's changes in place of --wait.
	Wait *Wait
}

// DefaultCommandTimeout bounds a template's command when its block gives
// no command_timeout (consul-template's default too).
const DefaultCommandTimeout = 30 * time.Second

// Wait is a debounce, --wait MIN[:MAX]: act once no change came for Min,
// and at the latest Max after the first (0: no limit).
type Wait struct {
	Min, Max time.Duration
}

// Owner is a file's numeric user and group.
type Owner struct {
	UID, GID int
}

// ParseSpec parses a --template value, "SRC:DST[:MODE]", MODE being octal
// permission bits (0640, 640 or 0o640; at most 0777); left out, Mode is 0
// (see Spec). The error quotes the whole value.
func ParseSpec(s string) (Spec, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Spec{}, fmt.Errorf("template %q: want SRC:DST[:MODE]", s)
	}
	sp := Spec{Src: parts[0], Dst: parts[1]}
	if sp.Src == "" || sp.Dst == "" {
		return Spec{}, fmt.Errorf("template %q: want SRC:DST[:MODE] with SRC and DST not empty", s)
	}
	if len(parts) == 3 {
		m, err := ParseFileMode(parts[2])
		if err != nil {
			return Spec{}, fmt.Errorf("template %q: %v", s, err)
		}
		sp.Mode = m
	}
	return sp, nil
}

// ParseFileMode parses octal permission bits (0640, 640 or 0o640; at
// most 0777, not 0).
func ParseFileMode(s string) (os.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || digits == "" {
		return 0, fmt.Errorf("bad mode %q (want octal permission bits such as 0600 or 0644)", s)
	}
	if n > 0o777 {
		return 0, fmt.Errorf("bad mode %q (at most 0777: no setuid, setgid or sticky bits)", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("bad mode %q (a file nobody may read)", s)
	}
	return os.FileMode(n), nil
}

// ParseDelims parses a --template-delims value, "LEFT:RIGHT" such as
// "[[:]]" or "<%:%>". With more than one colon, a value of odd length is
// split at its middle colon ("<::>" is not, "<<:>>" is "<<" and ">>").
func ParseDelims(s string) ([2]string, error) {
	var left, right string
	switch n := strings.Count(s, ":"); {
	case n == 1:
		left, right, _ = strings.Cut(s, ":")
	case n > 1 && len(s)%2 == 1 && s[len(s)/2] == ':':
		left, right = s[:len(s)/2], s[len(s)/2+1:]
	default:
		return [2]string{}, fmt.Errorf("template delimiters %q: want LEFT:RIGHT, such as [[:]]", s)
	}
	if err := CheckDelims(left, right); err != nil {
		return [2]string{}, fmt.Errorf("template delimiters %q: %w", s, err)
	}
	return [2]string{left, right}, nil
}

// CheckDelims checks a pair of action delimiters: both given, neither
// holding a blank (text/template would take it for a trim marker's).
func CheckDelims(left, right string) error {
	if left == "" || right == "" {
		return errors.New("want LEFT:RIGHT, neither empty")
	}
	if strings.ContainsAny(left+right, " \t\r\n") {
		return errors.New("no spaces allowed")
	}
	return nil
}

// delims returns the delimiters of opt, "{{" and "}}" when unset.
func (opt Options) delims() (left, right string, err error) {
	left, right = opt.Delims[0], opt.Delims[1]
	if left == "" && right == "" {
		return "{{", "}}", nil
	}
	if left == "" || right == "" {
		return "", "", fmt.Errorf("template delimiters %q and %q: set both or neither", left, right)
	}
	return left, right, nil
}

// lookupEnv is opt.LookupEnv, else opt.Getenv (an empty value counting as
// unset), else os.LookupEnv.
func (opt Options) lookupEnv() func(string) (string, bool) {
	switch {
	case opt.LookupEnv != nil:
		return opt.LookupEnv
	case opt.Getenv != nil:
		getenv := opt.Getenv
		return func(name string) (string, bool) {
			v := getenv(name)
			return v, v != ""
		}
	}
	return os.LookupEnv
}
