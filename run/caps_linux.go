package run

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Capabilities that starting the child as another user needs (see
// missingCaps), by their bit in /proc/self/status's CapEff.
var userCaps = []struct {
	bit  uint
	name string
}{
	{7, "CAP_SETUID"}, // setuid
	{6, "CAP_SETGID"}, // setgid, setgroups
	{0, "CAP_CHOWN"},  // the files given to the user
}

// missingCaps names the capabilities that running the child as another
// user needs and that this process's effective set lacks: root in a
// container started with them dropped (docker run --cap-drop, a pod's
// securityContext) is root only in name. Unreadable: none (the start
// then fails on its own, 126).
func missingCaps() []string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil
		}
		var out []string
		for _, c := range userCaps {
			if eff&(1<<c.bit) == 0 {
				out = append(out, c.name)
			}
		}
		return out
	}
	return nil
}
