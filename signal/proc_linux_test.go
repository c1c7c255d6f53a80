package signal

import (
	"syscall"
	"testing"
)

func TestChildAttrParentDeathSignal(t *testing.T) {
	if got := ChildAttr(-1).Pdeathsig; got != syscall.SIGKILL {
		t.Errorf("Pdeathsig = %v; want SIGKILL", got)
	}
}
