package user

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/bash
# a comment
  daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:App,,,:/home/app:/bin/sh
+nisuser:x:2000:2000::/home/nis:/bin/sh
-excluded:x:2001:2001::/home/ex:/bin/sh
broken:x:notanumber:1::/home/broken:/bin/sh
short:x:3000:3000
1234:x:4321:4321:a user named by digits:/home/digits:/bin/sh
nobody:*:-2:-2:Unprivileged User:/var/empty:/usr/bin/false
dup:x:5000:5000::/first:/bin/sh
dup:x:5001:5001::/second:/bin/sh
shared:x:1000:1000::/home/shared:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:app
app:x:1000:
docker:x:999:other, app ,third
audio:x:29:app
again:x:29:app
ssl-cert:x:103:postgres
+nisgroup:x:7000:app
staff:x:50:
1234:x:60:
weird:x:notanumber:app
nogroup:x:65534:
`

func testDB(t *testing.T) DB {
	t.Helper()
	dir := t.TempDir()
	db := DB{PasswdFile: filepath.Join(dir, "passwd"), GroupFile: filepath.Join(dir, "group")}
	if err := os.WriteFile(db.PasswdFile, []byte(testPasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db.GroupFile, []byte(testGroup), 0o644); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestLookup(t *testing.T) {
	db := testDB(t)
	ours := os.Getgid()
	tests := []struct {
		spec string
		want Creds
	}{
		// By name: primary group first, then the groups listing the user
		// (members trimmed; two groups of one gid count once; NIS and
		// malformed lines skipped).
		{"app", Creds{UID: 1000, GID: 1000, Groups: []uint32{1000, 1, 999, 29}, Home: "/home/app", Name: "app"}},
		// By uid: the first entry with it.
		{"1000", Creds{UID: 1000, GID: 1000, Groups: []uint32{1000, 1, 999, 29}, Home: "/home/app", Name: "app"}},
		{"0", Creds{UID: 0, GID: 0, Groups: []uint32{0}, Home: "/root", Name: "root"}},
		{"daemon", Creds{UID: 1, GID: 1, Groups: []uint32{1}, Home: "/usr/sbin", Name: "daemon"}},
		// A name made of digits is a name first.
		{"1234", Creds{UID: 4321, GID: 4321, Groups: []uint32{4321}, Home: "/home/digits", Name: "1234"}},
		// macOS writes nobody's ids as -2.
		{"nobody", Creds{UID: 4294967294, GID: 4294967294, Groups: []uint32{4294967294}, Home: "/var/empty", Name: "nobody"}},
		// The first of two entries of one name.
		{"dup", Creds{UID: 5000, GID: 5000, Groups: []uint32{5000}, Home: "/first", Name: "dup"}},
		// A uid no entry has: our gid (as gosu), HOME=/, no groups.
		{"77777", Creds{UID: 77777, GID: ours, Home: "/"}},
		// USER:GROUP: that group as primary gid, and no other.
		{"app:staff", Creds{UID: 1000, GID: 50, Home: "/home/app", Name: "app"}},
		{"app:50", Creds{UID: 1000, GID: 50, Home: "/home/app", Name: "app"}},
		{"app:1234", Creds{UID: 1000, GID: 60, Home: "/home/app", Name: "app"}},   // a group named by digits
		{"app:4242", Creds{UID: 1000, GID: 4242, Home: "/home/app", Name: "app"}}, // a gid no group has
		{"77777:88888", Creds{UID: 77777, GID: 88888, Home: "/"}},
		{"77777:staff", Creds{UID: 77777, GID: 50, Home: "/"}},
		{"4294967294", Creds{UID: 4294967294, GID: 4294967294, Groups: []uint32{4294967294}, Home: "/var/empty", Name: "nobody"}},
	}
	for _, tt := range tests {
		got, err := db.Lookup(tt.spec)
		if err != nil {
			t.Errorf("Lookup(%q): %v", tt.spec, err)
			continue
		}
		if got.UID != tt.want.UID || got.GID != tt.want.GID || got.Home != tt.want.Home || got.Name != tt.want.Name || !slices.Equal(got.Groups, tt.want.Groups) {
			t.Errorf("Lookup(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	db := testDB(t)
	tests := []struct {
		spec    string
		is      error
		message string
	}{
		{"bob", ErrUnknownUser, `unknown user "bob": not in ` + db.PasswdFile},
		{"nisuser", ErrUnknownUser, `unknown user "nisuser"`},
		{"excluded", ErrUnknownUser, `unknown user "excluded"`},
		{"broken", ErrUnknownUser, `unknown user "broken"`},
		{"short", ErrUnknownUser, `unknown user "short"`},
		{"app:wheel", ErrUnknownGroup, `unknown group "wheel": not in ` + db.GroupFile},
		{"app:nisgroup", ErrUnknownGroup, `unknown group "nisgroup"`},
		{"bob:wheel", ErrUnknownUser, `unknown user "bob"`}, // the user first
		{"-1", ErrUnknownUser, `unknown user "-1"`},         // not a number: a name
		{"4294967295", nil, `user "4294967295": id 4294967295 out of range`},
		{"99999999999999999999", nil, "out of range"},
		{"app:4294967295", nil, `group "4294967295": id 4294967295 out of range`},
		{"", nil, "USER not empty"},
		{":staff", nil, "USER not empty"},
		{"app:", nil, "GROUP not empty"},
		{"app:staff:x", nil, "one colon at most"},
	}
	for _, tt := range tests {
		_, err := db.Lookup(tt.spec)
		if err == nil {
			t.Errorf("Lookup(%q): no error", tt.spec)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Lookup(%q) = %v, want errors.Is %v", tt.spec, err, tt.is)
		}
		if !strings.Contains(err.Error(), tt.message) {
			t.Errorf("Lookup(%q) = %q, want it to say %q", tt.spec, err, tt.message)
		}
	}
}

func TestLookupGroup(t *testing.T) {
	db := testDB(t)
	for name, want := range map[string]int{"staff": 50, "50": 50, "1234": 60, "4242": 4242, "docker": 999, "nogroup": 65534} {
		got, err := db.LookupGroup(name)
		if err != nil || got != want {
			t.Errorf("LookupGroup(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, name := range []string{"wheel", "", "nisgroup", "weird"} {
		if _, err := db.LookupGroup(name); !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("LookupGroup(%q) = %v, want ErrUnknownGroup", name, err)
		}
	}
}

// A scratch image has no /etc/passwd or /etc/group: numbers still work,
// names are unknown.
func TestLookupWithoutFiles(t *testing.T) {
	dir := t.TempDir()
	db := DB{PasswdFile: filepath.Join(dir, "passwd"), GroupFile: filepath.Join(dir, "group")}
	got, err := db.Lookup("1000:1000")
	if err != nil || got.UID != 1000 || got.GID != 1000 || got.Home != "/" || len(got.Groups) != 0 {
		t.Errorf("Lookup(1000:1000) = %+v, %v", got, err)
	}
	if _, err := db.Lookup("app"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Lookup(app) = %v, want ErrUnknownUser", err)
	}
	if _, err := db.Lookup("1000:staff"); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("Lookup(1000:staff) = %v, want ErrUnknownGroup", err)
	}
}

func TestUnreadableOrHugeFile(t *testing.T) {
	dir := t.TempDir()
	db := DB{PasswdFile: dir, GroupFile: filepath.Join(dir, "group")} // a directory
	if _, err := db.Lookup("app"); err == nil || errors.Is(err, ErrUnknownUser) {
		t.Errorf("Lookup with a directory as passwd file = %v, want a read error", err)
	}
	// A group of 200,000 members (a 2 MiB line) is a group like others.
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, []byte("small:x:2:a\nbig:x:1:"+strings.Repeat("m123456789,", 200_000)+"app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db = DB{PasswdFile: filepath.Join(dir, "passwd"), GroupFile: huge}
	if g, err := db.LookupGroup("big"); err != nil || g != 1 {
		t.Errorf("LookupGroup(big) of 200,000 members = %d, %v", g, err)
	}
	defer func(n int) { maxLine = n }(maxLine)
	maxLine = 1 << 20
	if _, err := db.LookupGroup("big"); err == nil || !strings.Contains(err.Error(), huge+": line 2: ") || !strings.Contains(err.Error(), "too long") {
		t.Errorf("LookupGroup with a line over the bound = %v, want a too-long error naming line 2", err)
	}
}

func TestCredential(t *testing.T) {
	c := Creds{UID: 1000, GID: 50}.Credential()
	if c.Uid != 1000 || c.Gid != 50 || c.Groups == nil || len(c.Groups) != 0 || c.NoSetGroups {
		t.Errorf("Credential() = %+v: want the groups cleared, not kept", c)
	}
	groups := []uint32{1000, 29}
	c = Creds{UID: 1000, GID: 1000, Groups: groups}.Credential()
	c.Groups[0] = 7
	if groups[0] != 1000 {
		t.Error("Credential shares its Groups with the Creds")
	}
}

// The system's own database, as the product reads it: root is uid 0 and a
// numeric uid resolves without an entry.
func TestSystemDB(t *testing.T) {
	c, err := Lookup("root")
	if err != nil || c.UID != 0 || c.Name != "root" {
		t.Fatalf("Lookup(root) = %+v, %v", c, err)
	}
	if _, err := Lookup("no-such-user-here"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Lookup(no-such-user-here) = %v", err)
	}
	if gid, err := LookupGroup("0"); err != nil || gid != 0 {
		t.Errorf("LookupGroup(0) = %d, %v", gid, err)
	}
}
