package signal

import (
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
		{34, Forward},
		{64, Forward},
		{65, NotCaught},
	}
	for _, tt := range tests {
		if got := ActionFor(tt.sig); got != tt.want {
			t.Errorf("ActionFor(%s) = %v; want %v", Name(tt.sig), got, tt.want)
		}
	}
}
