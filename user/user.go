// Package user resolves a user and group, given by name or number as in
// --user USER[:GROUP], to the ids a process is started with and a file is
// owned by: uid, primary gid, supplementary groups and home directory. It
// reads /etc/passwd and /etc/group itself (the rules of glibc's files
// backend and of Go's pure os/user), so that a static CGO_ENABLED=0 binary
// on a distroless or scratch image resolves names as gosu and su-exec do,
// and so that the race-enabled (cgo) test build resolves them exactly as
// the product does. On macOS, whose accounts live in Directory Services,
// what the files do not know is asked of the system (os/user, which calls
// libc there even without cgo).
//
// What it must not do: change any process's ids or any file's owner
// (package run and package template do), use NSS or cgo on Linux, or cache
// (every call reads the files anew: they change under a running process).
//
// Concurrency: stateless; every function is safe for concurrent use.
package user

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The files a DB reads when it names none.
const (
	PasswdFile = "/etc/passwd"
	GroupFile  = "/etc/group"
)

// Errors that Lookup and LookupGroup wrap, for errors.Is.
var (
	ErrUnknownUser  = errors.New("unknown user")
	ErrUnknownGroup = errors.New("unknown group")
)

// Creds are the ids a process runs with, as Lookup resolves them.
type Creds struct {
	UID, GID int
	// Groups is the supplementary group list (setgroups): for a user
	// found in the passwd file without :GROUP, its primary group first,
	// then every group of the group file that lists it as a member, as
	// initgroups(3) makes it; empty for USER:GROUP (the group alone, as
	// with Docker's USER user:group, gosu and su-exec) and for a numeric
	// uid the passwd file does not know.
	Groups []uint32
	// Home is the passwd entry's home directory; "/" for a numeric uid
	// the passwd file does not know (gosu's choice).
	Home string
	// Name is the passwd entry's name; "" for an unknown numeric uid.
	Name string
}

// Credential is c as the process attributes of a child want it
// (syscall.SysProcAttr.Credential), groups set.
func (c Creds) Credential() *syscall.Credential {
	return &syscall.Credential{
		Uid:    uint32(c.UID),
		Gid:    uint32(c.GID),
		Groups: append([]uint32{}, c.Groups...), // never nil: an empty list clears the groups
	}
}

// DB is a user database: a passwd and a group file. The zero value reads
// /etc/passwd and /etc/group (and, on macOS, asks the system for what they
// do not hold); tests name other files. A file that does not exist is an
// empty database: a scratch image has none, and numeric ids still work.
type DB struct {
	PasswdFile, GroupFile string
}

// Lookup resolves spec, "USER" or "USER:GROUP", each a name or a decimal
// id, with the zero DB.
func Lookup(spec string) (Creds, error) { return DB{}.Lookup(spec) }

// LookupGroup resolves a group name or decimal gid with the zero DB.
func LookupGroup(name string) (int, error) { return DB{}.LookupGroup(name) }

// ParseSpec splits spec, "USER" or "USER:GROUP", checking only its form:
// USER not empty, GROUP not empty when the colon is there, no second
// colon. It reads no file.
func ParseSpec(spec string) (usr, group string, err error) {
	usr, group, hasGroup := strings.Cut(spec, ":")
	switch {
	case usr == "":
		return "", "", fmt.Errorf("%q: want USER or USER:GROUP (a name or a number), USER not empty", spec)
	case hasGroup && group == "":
		return "", "", fmt.Errorf("%q: want USER:GROUP with GROUP not empty (or USER alone for the user's own groups)", spec)
	case strings.Contains(group, ":"):
		return "", "", fmt.Errorf("%q: want USER or USER:GROUP, one colon at most", spec)
	}
	return usr, group, nil
}

// Lookup resolves spec, "USER" or "USER:GROUP", each a name or a decimal
// id, as gosu does:
//
//   - USER is a name of the passwd file, else a number: the entry with that
//     uid, else that uid alone (GID scaivault-run's own, as gosu and Docker
//     give it: 0 when it runs as root; Home "/"; no groups).
//   - GROUP is a name of the group file, else a number (known there or
//     not); it becomes the primary gid, and the only group.
//
// A USER or GROUP that is neither a known name nor a number is an error
// that names it and the file it is not in, wrapping ErrUnknownUser or
// ErrUnknownGroup.
func (db DB) Lookup(spec string) (Creds, error) {
	usr, group, err := ParseSpec(spec)
	if err != nil {
		return Creds{}, err
	}
	u, err := db.findUser(usr)
	if err != nil {
		return Creds{}, err
	}
	c := Creds{UID: u.uid, GID: u.gid, Home: u.home, Name: u.name}
	if u.name == "" { // a uid the passwd file does not know
		c.GID, c.Home = os.Getgid(), "/"
	}
	if group != "" {
		if c.GID, err = db.LookupGroup(group); err != nil {
			return Creds{}, err
		}
		return c, nil
	}
	if u.name != "" {
		if c.Groups, err = db.groupsOf(u); err != nil {
			return Creds{}, err
		}
	}
	return c, nil
}

// LookupGroup resolves a group: a name of the group file, else a decimal
// gid (known there or not). Anything else is an error naming it, wrapping
// ErrUnknownGroup.
func (db DB) LookupGroup(name string) (int, error) {
	if name == "" {
		return 0, fmt.Errorf("%w: empty group name", ErrUnknownGroup)
	}
	groups, err := readGroups(db.groupFile())
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		if g.name == name {
			return g.gid, nil
		}
	}
	id, isNum, err := parseID(name)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	if isNum {
		return id, nil
	}
	if gid, ok := systemGroup(db, name); ok {
		return gid, nil
	}
	return 0, fmt.Errorf("%w %q: not in %s", ErrUnknownGroup, name, db.groupFile())
}

// findUser finds USER: by name, else by uid, else a bare uid (an entry
// without name).
func (db DB) findUser(usr string) (passwdEntry, error) {
	users, err := readPasswd(db.passwdFile())
	if err != nil {
		return passwdEntry{}, err
	}
	for _, u := range users {
		if u.name == usr {
			return u, nil
		}
	}
	id, isNum, err := parseID(usr)
	if err != nil {
		return passwdEntry{}, fmt.Errorf("user %q: %w", usr, err)
	}
	if isNum {
		for _, u := range users {
			if u.uid == id {
				return u, nil
			}
		}
	}
	if u, ok := systemUser(db, usr); ok {
		return u, nil
	}
	if isNum {
		return passwdEntry{uid: id}, nil
	}
	return passwdEntry{}, fmt.Errorf("%w %q: not in %s", ErrUnknownUser, usr, db.passwdFile())
}

// groupsOf is u's group list as initgroups(3) makes it: the primary gid
// first, then each group that lists u's name as a member, once each.
func (db DB) groupsOf(u passwdEntry) ([]uint32, error) {
	if gs, ok := systemGroups(db, u); ok {
		return gs, nil
	}
	groups, err := readGroups(db.groupFile())
	if err != nil {
		return nil, err
	}
	out := []uint32{uint32(u.gid)}
	for _, g := range groups {
		if !g.hasMember(u.name) {
			continue
		}
		if !containsID(out, uint32(g.gid)) {
			out = append(out, uint32(g.gid))
		}
	}
	return out, nil
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (db DB) passwdFile() string {
	if db.PasswdFile == "" {
		return PasswdFile
	}
	return db.PasswdFile
}

func (db DB) groupFile() string {
	if db.GroupFile == "" {
		return GroupFile
	}
	return db.GroupFile
}

// system is whether db is the system's database (the zero DB), which on
// macOS also asks Directory Services.
func (db DB) system() bool { return db.PasswdFile == "" && db.GroupFile == "" }

// maxID is the largest uid or gid: 2^32-1 is (uid_t)-1, "no change" to
// setuid and chown.
const maxID = 1<<32 - 2

// parseID parses a decimal id of a --user spec: isNum false when s is not
// a number at all (a name); an error for a number out of range.
func parseID(s string) (id int, isNum bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxID {
		return 0, true, fmt.Errorf("id %s out of range (0 to %d)", s, uint64(maxID))
	}
	return int(n), true, nil
}
