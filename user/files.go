package user

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// maxLine bounds a line of a passwd or group file, 64 MiB: a group with
// many members makes a long one (a million 60-byte names fit), and the
// files are root's, so the bound is against a mistake (a binary file
// named as one), not an attacker. A longer line is an error naming the
// file and the line, not a silent skip that would make a user unknown.
// A variable for tests.
var maxLine = 64 << 20

// passwdEntry is one line of a passwd file: name:password:uid:gid:gecos:home:shell.
type passwdEntry struct {
	name     string // "" for a bare uid that no entry has
	uid, gid int
	home     string
}

// groupEntry is one line of a group file: name:password:gid:member,member.
type groupEntry struct {
	name    string
	gid     int
	members []string
}

func (g groupEntry) hasMember(name string) bool {
	for _, m := range g.members {
		if m == name {
			return true
		}
	}
	return false
}

// readPasswd reads a passwd file; a missing file is an empty one.
func readPasswd(path string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(path, func(f []string) {
		if len(f) < 7 {
			return
		}
		uid, ok1 := fileID(f[2])
		gid, ok2 := fileID(f[3])
		if ok1 && ok2 {
			out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
		}
	})
	return out, err
}

// readGroups reads a group file; a missing file is an empty one.
func readGroups(path string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(path, func(f []string) {
		if len(f) < 4 {
			return
		}
		gid, ok := fileID(f[2])
		if !ok {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.members = append(g.members, m)
			}
		}
		out = append(out, g)
	})
	return out, err
}

// readColonFile calls fn with the fields of each entry of a passwd or
// group style file. As glibc and Go's os/user do, it trims blanks around a
// line and skips blank lines, comments (#) and NIS compat entries (names
// starting with + or -); fn skips lines with too few fields or ids that
// are not numbers.
func readColonFile(path string, fn func(fields []string)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read user database: %w", err)
	}
	defer f.Close()
	return scanColonFile(path, f, fn)
}

func scanColonFile(path string, r io.Reader, fn func(fields []string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 1
	for ; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fields := strings.Split(line, ":")
		if fields[0] == "" {
			continue
		}
		fn(fields)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read user database %s: line %d: %w", path, n, err)
	}
	return nil
}

// fileID parses a uid or gid field. macOS writes nobody's as -2: a
// negative id is the 32-bit id it stands for (4294967294).
func fileID(s string) (int, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < -1<<31 {
		return 0, false
	}
	if n < 0 {
		n = int64(uint32(int32(n)))
	}
	if n > maxID {
		return 0, false
	}
	return int(n), true
}
