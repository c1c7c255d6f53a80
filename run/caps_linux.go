package run

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/scailabs/scaivault-run/user"
)

// capability is one Linux capability, by its bit in /proc/self/status's
// CapEff and its name.
type capability struct {
	bit  uint
	name string
}

// Capabilities that starting the child as another user needs.
var (
	capSetuid      = capability{7, "CAP_SETUID"}       // setuid
	capSetgid      = capability{6, "CAP_SETGID"}       // setgid, setgroups
	capChown       = capability{0, "CAP_CHOWN"}        // the files given to the user
	capDACOverride = capability{1, "CAP_DAC_OVERRIDE"} // writing as=file files into the user's 0700 directory
)

// missingCaps names the capabilities of want that this process's
// effective set lacks: root in a container started with them dropped
// (docker run --cap-drop, a pod's securityContext) is root only in name.
// Unreadable: none (the start then fails on its own).
func missingCaps(want ...capability) []string {
	eff, ok := procStatusHex("CapEff:")
	if !ok {
		return nil
	}
	var out []string
	for _, c := range want {
		if eff&(1<<c.bit) == 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// procStatusHex is the hexadecimal field key of /proc/self/status.
func procStatusHex(key string) (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if hex, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// unmappedIDs is why creds cannot be set in this user namespace (a
// rootless container, `unshare --user --map-root-user`): a uid or gid
// that its uid_map or gid_map does not map, or supplementary groups where
// setgroups is denied. nil when they can (or the maps cannot be read).
func unmappedIDs(creds user.Creds) error {
	uids, ok1 := idMap("/proc/self/uid_map")
	gids, ok2 := idMap("/proc/self/gid_map")
	if !ok1 || !ok2 {
		return nil
	}
	if !uids.maps(uint64(creds.UID)) {
		return fmt.Errorf("uid %d is not mapped in this user namespace (/proc/self/uid_map)", creds.UID)
	}
	if !gids.maps(uint64(creds.GID)) {
		return fmt.Errorf("gid %d is not mapped in this user namespace (/proc/self/gid_map)", creds.GID)
	}
	for _, g := range creds.Groups {
		if !gids.maps(uint64(g)) {
			return fmt.Errorf("supplementary group %d is not mapped in this user namespace (/proc/self/gid_map)", g)
		}
	}
	if b, err := os.ReadFile("/proc/self/setgroups"); err == nil && strings.TrimSpace(string(b)) == "deny" {
		return fmt.Errorf("setgroups is denied in this user namespace (/proc/self/setgroups), so the child's groups cannot be set")
	}
	return nil
}

// idRanges are the inside ranges of a uid_map or gid_map.
type idRanges [][2]uint64 // first, count

func (r idRanges) maps(id uint64) bool {
	for _, x := range r {
		if id >= x[0] && id-x[0] < x[1] {
			return true
		}
	}
	return false
}

func idMap(path string) (idRanges, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var out idRanges
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		first, err1 := strconv.ParseUint(f[0], 10, 64)
		count, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 == nil && err2 == nil {
			out = append(out, [2]uint64{first, count})
		}
	}
	return out, true
}
