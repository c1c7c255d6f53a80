package signal

import (
	"syscall"
	"testing"
)

func TestExitCode(t *testing.T) {
	// Both Linux and darwin encode wait statuses the traditional way:
	// exit code in bits 8-15, terminating signal in bits 0-6, core flag 0x80.
	tests := []struct {
		name string
		ws   syscall.WaitStatus
		want int
	}{
		{"exit 0", 0 << 8, 0},
		{"exit 3", 3 << 8, 3},
		{"exit 42", 42 << 8, 42},
		{"exit 255", 255 << 8, 255},
		{"SIGTERM", syscall.WaitStatus(syscall.SIGTERM), 143},
		{"SIGKILL", syscall.WaitStatus(syscall.SIGKILL), 137},
		{"SIGINT", syscall.WaitStatus(syscall.SIGINT), 130},
		{"SIGSEGV with core", syscall.WaitStatus(syscall.SIGSEGV) | 0x80, 139},
		{"stopped", syscall.WaitStatus(syscall.SIGSTOP)<<8 | 0x7f, 1},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.ws); got != tt.want {
			t.Errorf("%s: ExitCode(%#x) = %d; want %d", tt.name, uint32(tt.ws), got, tt.want)
		}
		if got := (Status{Wait: tt.ws}).Code(); got != tt.want {
			t.Errorf("%s: Status.Code() = %d; want %d", tt.name, got, tt.want)
		}
	}
}
