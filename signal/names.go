package signal

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Parse reads a signal given by name, with or without the SIG prefix and in
// any case, or by number: "SIGHUP", "hup", "HUP" and "1" are all SIGHUP.
// Numbers run from 1 to the platform's highest signal (64 on Linux, where
// the real-time signals have no names and are given by number).
func Parse(name string) (syscall.Signal, error) {
	s := strings.TrimSpace(name)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal %q: number out of range 1..%d", name, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	upper := strings.ToUpper(s)
	if !strings.HasPrefix(upper, "SIG") {
		upper = "SIG" + upper
	}
	if sig := unix.SignalNum(upper); sig != 0 {
		return sig, nil
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(upper, "SIG")); err == nil && n >= 1 && n <= maxSignal {
		return syscall.Signal(n), nil // the form Name gives unnamed signals: "SIG34"
	}
	return 0, fmt.Errorf("signal %q: unknown signal name", name)
}

// Name gives a signal's conventional name, "SIGHUP". A signal without a
// name (Linux real-time signals) is "SIG" and its number, "SIG34", which
// Parse reads back.
func Name(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}
