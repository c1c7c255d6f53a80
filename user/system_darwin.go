package user

import (
	osuser "os/user"
	"strconv"
)

// On macOS the accounts of people live in Directory Services, not in
// /etc/passwd (which holds only system accounts such as nobody and
// _www): what the files do not know, the zero DB asks os/user, which
// calls libc's getpwnam_r and friends there even in a CGO_ENABLED=0
// build. A DB that names its files asks nothing else.

func systemUser(db DB, usr string) (passwdEntry, bool) {
	if !db.system() {
		return passwdEntry{}, false
	}
	u, err := osuser.Lookup(usr)
	if err != nil {
		if u, err = osuser.LookupId(usr); err != nil {
			return passwdEntry{}, false
		}
	}
	uid, ok1 := fileID(u.Uid)
	gid, ok2 := fileID(u.Gid)
	if !ok1 || !ok2 {
		return passwdEntry{}, false
	}
	return passwdEntry{name: u.Username, uid: uid, gid: gid, home: u.HomeDir}, true
}

func systemGroup(db DB, name string) (int, bool) {
	if !db.system() {
		return 0, false
	}
	g, err := osuser.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	return fileID(g.Gid)
}

// systemGroups is the group list Directory Services gives a user (the
// files' /etc/group does not hold the groups of people's accounts).
func systemGroups(db DB, u passwdEntry) ([]uint32, bool) {
	if !db.system() {
		return nil, false
	}
	ou := &osuser.User{Username: u.name, Uid: strconv.Itoa(u.uid), Gid: strconv.Itoa(u.gid)}
	ids, err := ou.GroupIds()
	if err != nil {
		return nil, false
	}
	out := []uint32{uint32(u.gid)}
	for _, s := range ids {
		if id, ok := fileID(s); ok && !containsID(out, uint32(id)) {
			out = append(out, uint32(id))
		}
	}
	return out, true
}
