package signal

import (
	"os"
	ossignal "os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestActionForLinux(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		want Action
	}{
		{syscall.SIGSTKFLT, Forward},
		{syscall.SIGPWR, Forward},
		{32, NotCaught},
		{33, NotCaught},
		{34, NotCaught},
		{35, Forward},
		{64, Forward},
		{65, NotCaught},
	}
	for _, tt := range tests {
		if got := ActionFor(tt.sig); got != tt.want {
			t.Errorf("ActionFor(%s) = %v; want %v", Name(tt.sig), got, tt.want)
		}
	}
}

// Every signal the table forwards must really be catchable by os/signal:
// after Notify the kernel reports each as caught (SigCgt), else the child
// would never see it.
func TestForwardedAreCaught(t *testing.T) {
	ch := make(chan os.Signal, 1)
	ossignal.Notify(ch, Forwarded()...)
	defer ossignal.Stop(ch)
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var caught uint64
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			caught, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	for _, s := range Forwarded() {
		n := s.(syscall.Signal)
		if caught&(1<<(n-1)) == 0 {
			t.Errorf("%s is in the forward table but not caught after Notify", Name(n))
		}
	}
}
