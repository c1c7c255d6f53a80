package signal

import (
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGHUP", syscall.SIGHUP},
		{"hup", syscall.SIGHUP},
		{"HUP", syscall.SIGHUP},
		{"1", syscall.SIGHUP},
		{"SigTerm", syscall.SIGTERM},
		{"term", syscall.SIGTERM},
		{"15", syscall.SIGTERM},
		{" usr1 ", syscall.SIGUSR1},
		{"SIGKILL", syscall.SIGKILL},
		{"winch", syscall.SIGWINCH},
		{"quit", syscall.SIGQUIT},
		{"int", syscall.SIGINT},
		{"31", syscall.Signal(31)},
		{"SIG31", syscall.Signal(31)},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "SIG", "nosuch", "SIGNOSUCH", "0", "-1", "999", "SIG0", "1.5", "HUP1"} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q): no error", in)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("Parse(%q) error %q does not name the input", in, err)
		}
	}
}

func TestName(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGHUP, "SIGHUP"},
		{syscall.SIGINT, "SIGINT"},
		{syscall.SIGTERM, "SIGTERM"},
		{syscall.SIGKILL, "SIGKILL"},
		{syscall.SIGUSR2, "SIGUSR2"},
		{syscall.SIGWINCH, "SIGWINCH"},
	}
	for _, tt := range tests {
		if got := Name(tt.sig); got != tt.want {
			t.Errorf("Name(%d) = %q; want %q", tt.sig, got, tt.want)
		}
	}
}

// Every signal number has a name that Parse reads back.
func TestNameRoundTrip(t *testing.T) {
	for n := 1; n <= maxSignal; n++ {
		sig := syscall.Signal(n)
		got, err := Parse(Name(sig))
		if err != nil || got != sig {
			t.Errorf("Parse(Name(%d)=%q) = %v, %v", n, Name(sig), got, err)
		}
	}
}
