package main

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
)

// The --user tests run the real static binary (CGO_ENABLED=0, as
// shipped) as root against a dev server in this process, and compare what
// the child gets with what the system's own tools (id, NSS through
// os/user) say of the user. testdata/script/user.txtar has the rest:
// numeric ids, USER:GROUP, --once, owners of files, HOME, errors.

// needRootT skips a test that needs root, except in CI, which runs the
// tests as root: there it fails, so that it cannot go unrun.
func needRootT(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root (to run the child as another user), and CI runs the tests as root")
	}
	t.Skip("needs root to run the child as another user")
}

const userSeed = `{"root_token": "root-user-test", "secrets": {"app/db": {"data": {"password": "pw-user-test"}}}}`

// userEnv starts a dev server and returns the environment a run of the
// binary gets: the server, its root token, a PATH, root's HOME.
func userEnv(t *testing.T) (env []string, admin *devserver.Admin) {
	t.Helper()
	seed, err := devserver.ParseSeed([]byte(userSeed), "seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close() })
	env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "SCAIVAULT_BASE_URL=" + hs.URL, "SCAIVAULT_TOKEN=" + srv.RootToken()}
	return env, &devserver.Admin{BaseURL: hs.URL, Token: srv.RootToken()}
}

// runUser runs the binary with args, as cred (nil: as we are), and
// returns its stdout, stderr and exit status.
func runUser(t *testing.T, env []string, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(buildBinaryT(t), args...)
	cmd.Env, cmd.Dir = env, "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// runAsOther runs argv as uid 4242 (in nobody's group too) and returns
// its combined output and whether it succeeded.
func runAsOther(t *testing.T, argv ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 65534, Groups: []uint32{65534}}}
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// --user nobody with as=file: the child reads its file, which is nobody's,
// 0600 in a 0700 directory of nobody's that it cannot move; another uid
// (even one in nobody's group) can read neither; the directory is gone
// once the run ends.
func TestUserAsFileClosedToOthers(t *testing.T) {
	needRootT(t)
	env, _ := userEnv(t)
	stop, lines, stderr := startBinary(t, env, "/", "--user", "nobody", "--env", "A=scaivault://app/db?as=file#password", "--",
		"sh", "-c", `echo "path=$A"; echo "value=$(cat "$A")"; mv "${A%/*}" "${A%/*}.moved" 2>/dev/null || echo "rename refused"; echo "uid=$(id -u)"; read x || true`)
	if !lines.waitCount("uid=", 1, 20*time.Second) {
		t.Fatalf("the child did not start:\n%s\n%s", lines, stderr.String())
	}
	got := lines.String()
	if !strings.Contains(got, "value=pw-user-test") || !strings.Contains(got, "uid=65534") {
		t.Fatalf("the child (nobody) did not read its file:\n%s\n%s", got, stderr.String())
	}
	// Its own directory, but in one of ours: it cannot move it away (and
	// put a symlink in its place for our next write to follow).
	if !strings.Contains(got, "rename refused") {
		t.Errorf("the child could rename its private directory:\n%s", got)
	}
	path := strings.TrimPrefix(strings.Split(got, "\n")[0], "path=")
	if !filepath.IsAbs(path) {
		t.Fatalf("no path: %q", got)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if st.Uid != 65534 || fi.Mode().Perm() != want {
			t.Errorf("%s: uid %d mode %v, want nobody's, %v", p, st.Uid, fi.Mode().Perm(), want)
		}
	}
	if out, ok := runAsOther(t, "cat", path); ok || !strings.Contains(out, "Permission denied") || strings.Contains(out, "pw-user-test") {
		t.Errorf("another uid read the file (ok %v):\n%s", ok, out)
	}
	if out, ok := runAsOther(t, "ls", filepath.Dir(path)); ok || !strings.Contains(out, "Permission denied") {
		t.Errorf("another uid listed the directory (ok %v):\n%s", ok, out)
	}
	stop()
	if _, err := os.Stat(filepath.Dir(filepath.Dir(path))); !os.IsNotExist(err) {
		t.Errorf("the private directory is still there after the run: %v", err)
	}
}

// The child's uid, gid, groups and HOME are what the system's id(1) and
// passwd say of the user, supervised and with --once: for nobody, and for
// a user of this machine with supplementary groups when there is one
// (postgres, in ssl-cert, where PostgreSQL is installed, as in CI).
func TestUserIDsMatchTheSystem(t *testing.T) {
	needRootT(t)
	env, _ := userEnv(t)
	users := []string{"nobody"}
	if u := userWithGroups(t); u != "" {
		users = append(users, u)
	} else {
		t.Log("no user with supplementary groups in /etc/group: nobody only")
	}
	t.Logf("users: %v", users)
	for _, name := range users {
		want := systemIDs(t, name)
		for _, mode := range [][]string{nil, {"--once"}} {
			args := append(append([]string{"--user", name}, mode...), "--", "sh", "-c",
				`echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "groups=$(id -G)"; echo "HOME=$HOME"; grep "^Groups:" /proc/self/status`)
			out, errOut, code := runUser(t, env, nil, args...)
			if code != 0 {
				t.Fatalf("--user %s %v: exit %d\n%s", name, mode, code, errOut)
			}
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					got[k] = v
				}
				if v, ok := strings.CutPrefix(line, "Groups:"); ok {
					got["status"] = v
				}
			}
			if got["uid"] != want["uid"] || got["gid"] != want["gid"] || got["HOME"] != want["HOME"] ||
				!sameSet(got["groups"], want["groups"]) || !sameSet(got["status"], want["groups"]) {
				t.Errorf("--user %s %v: the child has %v, the system says %v", name, mode, got, want)
			}
		}
	}
}

// systemIDs is what id(1) and os/user (NSS in this cgo test build) say of
// the user: uid, gid, groups, home.
func systemIDs(t *testing.T, name string) map[string]string {
	t.Helper()
	id := func(flag string) string {
		out, err := exec.Command("id", flag, name).Output()
		if err != nil {
			t.Fatalf("id %s %s: %v", flag, name, err)
		}
		return strings.TrimSpace(string(out))
	}
	u, err := osuser.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"uid": id("-u"), "gid": id("-g"), "groups": id("-G"), "HOME": u.HomeDir}
}

// userWithGroups is a user of passwd that a group of /etc/group lists as
// a member, other than root; "" when there is none.
func userWithGroups(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/etc/group")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 {
			continue
		}
		for _, m := range strings.Split(fields[3], ",") {
			if m == "" || m == "root" {
				continue
			}
			if _, err := osuser.Lookup(m); err == nil {
				return m
			}
		}
	}
	return ""
}

func sameSet(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// A restart (the secret rotated) starts the new child as the user too.
func TestUserRestartKeepsIDs(t *testing.T) {
	needRootT(t)
	env, admin := userEnv(t)
	stop, lines, stderr := startBinary(t, env, "/", "--user", "nobody", "--env", "A=scaivault://app/db#password", "--",
		"sh", "-c", `echo "start $(id -u) $(id -G) ${#A}"; read x || true`)
	if !lines.waitCount("start ", 1, 20*time.Second) {
		t.Fatalf("no first start:\n%s", stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.Rotate(ctx, "app/db", fetch.RotateRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if !lines.waitCount("start ", 2, 20*time.Second) {
		t.Fatalf("no restart after the rotation:\n%s\n%s", lines, stderr)
	}
	if n := lines.count("start 65534 65534 "); n != 2 {
		t.Errorf("%d of 2 starts as nobody:\n%s", n, lines)
	}
	stop()
}

// Not root: another user is a 125 saying why, before anything is fetched;
// our own user is fine (the child keeps our ids), and the child still
// cannot read our environment (--user does not undo PR_SET_DUMPABLE).
func TestUserNotRoot(t *testing.T) {
	needRootT(t)
	bin := buildBinaryT(t)
	os.Chmod(filepath.Dir(bin), 0o755) // reachable by nobody
	env, _ := userEnv(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	_, errOut, code := runUser(t, env, nobody, "--user", "daemon", "--", "true")
	if code != 125 || !strings.Contains(errOut, "scaivault-run: error: --user daemon: scaivault-run runs as uid 65534, not as root, so it cannot start the child as another user (uid 1)") {
		t.Errorf("another user, not root: exit %d\n%s", code, errOut)
	}
	if strings.Contains(errOut, "child started") {
		t.Errorf("a child was started:\n%s", errOut)
	}
	_, errOut, code = runUser(t, env, nobody, "--user", "nobody:daemon", "--", "true")
	if code != 125 || !strings.Contains(errOut, "cannot start the child with another group (gid 1)") {
		t.Errorf("another group, not root: exit %d\n%s", code, errOut)
	}
	_, errOut, code = runUser(t, env, nobody, "render", "--user", "daemon")
	if code != 125 || !strings.Contains(errOut, "not as root") {
		t.Errorf("render for another user, not root: exit %d\n%s", code, errOut)
	}
	out, errOut, code := runUser(t, env, nobody, "--user", "nobody", "--env", "A=scaivault://app/db#password", "--",
		"sh", "-c", `id -u; cat /proc/$PPID/environ || echo refused`)
	if code != 0 || !strings.Contains(out, "65534\n") || !strings.Contains(out, "refused") || strings.Contains(out, "root-user-test") {
		t.Errorf("ourselves, not root: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = runUser(t, env, nobody, "--once", "--user", "65534", "--", "id", "-u")
	if code != 0 || out != "65534\n" {
		t.Errorf("--once, ourselves, not root: exit %d\n%s\n%s", code, out, errOut)
	}
}

// A child running as the user cannot redirect scaivault-run's (root's)
// writes of a template: it renames the destination's directory, which
// sits in a directory of its own, and leaves a symlink to a root-only
// directory in its place; the next rendering still goes into the
// directory first written (held open), none lands behind the symlink. A
// later start that finds the symlink refuses it: 125, naming it.
func TestUserCannotRedirectTemplates(t *testing.T) {
	needRootT(t)
	env, admin := userEnv(t)
	base, err := os.MkdirTemp("", "redirect-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	userDir, conf, rootOnly := filepath.Join(base, "userdir"), filepath.Join(base, "userdir", "conf"), filepath.Join(base, "rootonly")
	for _, d := range []string{userDir, conf, rootOnly} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(os.Chmod(base, 0o755), os.Chmod(rootOnly, 0o700), os.Chown(userDir, 65534, 65534)); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(base, "app.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{ (secret "app/db").Data.password }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--user", "nobody", "--template", tmpl + ":" + filepath.Join(conf, "app.conf")}
	stop, lines, stderr := startHostile(t, env, base,
		`[ -e userdir/moved ] || { mv userdir/conf userdir/conf-old && ln -s ../rootonly userdir/conf && touch userdir/moved; } || exit 3`, args...)
	if !lines.waitCount("start", 1, 20*time.Second) {
		t.Fatalf("no first start:\n%s", stderr)
	}
	if fi, err := os.Lstat(conf); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the child did not put its symlink in place: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.Rotate(ctx, "app/db", fetch.RotateRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if !lines.waitCount("start", 2, 20*time.Second) {
		t.Fatalf("no restart after the rotation:\n%s\n%s", lines, stderr)
	}
	stop()
	if ents, _ := os.ReadDir(rootOnly); len(ents) != 0 {
		t.Errorf("root's write followed the child's symlink: %s holds %v", rootOnly, ents)
	}
	b, err := os.ReadFile(filepath.Join(userDir, "conf-old", "app.conf"))
	if err != nil || len(b) == 0 || string(b) == "pw-user-test" {
		t.Errorf("the rotated value is not in the directory first written: %q, %v", b, err)
	}

	out, errOut, code := runUser(t, env, nil, append(args, "--", "echo", "started")...)
	if code != 125 || strings.Contains(out, "started") || !strings.Contains(errOut, conf+" is a symlink that uid 65534 (--user) may have made") {
		t.Errorf("a start through the planted symlink: exit %d\n%s\n%s", code, out, errOut)
	}
	if ents, _ := os.ReadDir(rootOnly); len(ents) != 0 {
		t.Errorf("a start wrote through the planted symlink: %s holds %v", rootOnly, ents)
	}
}

// Root with its capabilities to change ids dropped (docker run --cap-drop
// SETUID) is root in name only: --user is a 125 naming what is missing,
// before anything is fetched or started, not a 126 from the failed start.
func TestUserRootWithoutCapabilities(t *testing.T) {
	needRootT(t)
	setpriv := setprivT(t)
	env, _ := userEnv(t)
	cmd := exec.Command(setpriv, "--bounding-set=-setuid,-chown", "--", buildBinaryT(t), "--user", "nobody", "--", "echo", "started")
	cmd.Env, cmd.Dir = env, "/"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 || strings.Contains(string(out), "started") ||
		!strings.Contains(string(out), "--user nobody: scaivault-run runs as root but without CAP_SETUID and CAP_CHOWN") {
		t.Errorf("root without CAP_SETUID: %v\n%s", err, out)
	}

	// "Drop ALL, add SETUID, SETGID and CHOWN": enough for templates
	// (the mode is set before the file is given away, which would need
	// CAP_FOWNER); as=file also needs CAP_DAC_OVERRIDE (root writes into
	// the user's 0700 directory), and says so.
	dir, _, _ := hostileBase(t) // reachable by nobody
	tmpl, conf := filepath.Join(dir, "t.tmpl"), filepath.Join(dir, "t.conf")
	if err := os.WriteFile(tmpl, []byte(`{{ (secret "app/db").Data.password }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	three := "--bounding-set=-all,+setuid,+setgid,+chown"
	cmd = exec.Command(setpriv, three, "--", buildBinaryT(t), "--user", "nobody", "--template", tmpl+":"+conf, "--", "cat", conf)
	cmd.Env, cmd.Dir = env, "/"
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "pw-user-test") {
		t.Errorf("a template with SETUID, SETGID and CHOWN only: %v\n%s", err, out)
	}
	// --user root changes no id but the groups: CAP_SETGID alone.
	cmd = exec.Command(setpriv, "--bounding-set=-setuid,-chown", "--", buildBinaryT(t), "--user", "root", "--", "id", "-u")
	cmd.Env, cmd.Dir = env, "/"
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "\n0\n") && !strings.HasPrefix(string(out), "0\n") {
		t.Errorf("--user root without CAP_SETUID and CAP_CHOWN: %v\n%s", err, out)
	}
	cmd = exec.Command(setpriv, three, "--", buildBinaryT(t), "--user", "nobody", "--env", "A=scaivault://app/db?as=file#password", "--", "echo", "started")
	cmd.Env, cmd.Dir = env, "/"
	out, err = cmd.CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 125 || strings.Contains(string(out), "started") || !strings.Contains(string(out), "without CAP_DAC_OVERRIDE") {
		t.Errorf("as=file without CAP_DAC_OVERRIDE: %v\n%s", err, out)
	}
}

// In a user namespace that maps only root (a rootless container), the
// user's ids cannot be set: 125 naming --user and the unmapped id, before
// anything is fetched, not a 126 from the failed start.
func TestUserUnmappedInUserNamespace(t *testing.T) {
	needRootT(t)
	if err := exec.Command("unshare", "--user", "--map-root-user", "true").Run(); err != nil {
		t.Skipf("no user namespaces here (unshare --user: %v)", err)
	}
	env, _ := userEnv(t)
	cmd := exec.Command("unshare", "--user", "--map-root-user", buildBinaryT(t), "--user", "nobody", "--", "echo", "CHILD-RAN")
	cmd.Env, cmd.Dir = env, "/"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 || strings.Contains(string(out), "CHILD-RAN") ||
		!strings.Contains(string(out), "--user nobody: uid 65534 is not mapped in this user namespace") {
		t.Errorf("an unmapped uid: %v\n%s", err, out)
	}
}

// startBinary starts the binary with args (with the child's argv after
// "--") in dir, its stdin a pipe that stop closes; stop then waits for the
// run to end (an error fails the test) and returns its stderr.
func startBinary(t *testing.T, env []string, dir string, args ...string) (stop func() string, lines *lineLog, stderr *lockedBuilder) {
	t.Helper()
	cmd := exec.Command(buildBinaryT(t), args...)
	cmd.Env, cmd.Dir = env, dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &lockedBuilder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return func() string {
		t.Helper()
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("scaivault-run: %v\n%s", err, stderr)
		}
		return stderr.String()
	}, newLineLog(stdout), stderr
}

// startHostile starts the binary with args and a child script (run in
// dir) that prints "start" once per start and waits for stdin to close.
func startHostile(t *testing.T, env []string, dir, script string, args ...string) (stop func() string, lines *lineLog, stderr *lockedBuilder) {
	t.Helper()
	return startBinary(t, env, dir, append(args, "--", "sh", "-c", script+"; echo start; read x || true")...)
}

// hostileBase is a directory for these tests (0755, reachable by nobody)
// with userdir, nobody's, and victim, root's alone (0700).
func hostileBase(t *testing.T) (base, userDir, victim string) {
	t.Helper()
	base, err := os.MkdirTemp("", "hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	userDir, victim = filepath.Join(base, "userdir"), filepath.Join(base, "victim")
	if err := errors.Join(os.Chmod(base, 0o755), os.Mkdir(userDir, 0o755), os.Chown(userDir, 65534, 65534), os.Mkdir(victim, 0o700)); err != nil {
		t.Fatal(err)
	}
	return base, userDir, victim
}

// The pid file and the state file withstand the same child: it moves
// their directory (in one of its own) away and leaves a symlink to a
// root-only directory; the state written after a rotation and the pid
// file's removal at exit go to the directory they were first in, and
// root's files behind the symlink are untouched.
func TestUserCannotRedirectPidAndStateFiles(t *testing.T) {
	needRootT(t)
	env, admin := userEnv(t)
	base, userDir, victim := hostileBase(t)
	d := filepath.Join(userDir, "d")
	key := filepath.Join(base, "state.key")
	if err := errors.Join(os.Mkdir(d, 0o755), os.WriteFile(filepath.Join(victim, "app.state"), []byte("ORIGINAL"), 0o600),
		os.WriteFile(filepath.Join(victim, "app.pid.lock"), nil, 0o600)); err != nil {
		t.Fatal(err)
	}
	writeStateKey(t, key)
	stop, lines, stderr := startHostile(t, env, base,
		`[ -e userdir/moved ] || { mv userdir/d userdir/d.old && ln -s ../victim userdir/d && touch userdir/moved; } || exit 3`,
		"--user", "nobody", "--pid-file", filepath.Join(d, "app.pid"), "--state-file", filepath.Join(d, "app.state"),
		"--state-key-file", key, "--env", "A=scaivault://app/db#password")
	if !lines.waitCount("start", 1, 20*time.Second) {
		t.Fatalf("no first start:\n%s", stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.Rotate(ctx, "app/db", fetch.RotateRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if !lines.waitCount("start", 2, 20*time.Second) {
		t.Fatalf("no restart after the rotation:\n%s\n%s", lines, stderr)
	}
	stop()
	if b, _ := os.ReadFile(filepath.Join(victim, "app.state")); string(b) != "ORIGINAL" {
		t.Errorf("root's file behind the symlink was replaced: %q", b)
	}
	if _, err := os.Stat(filepath.Join(victim, "app.pid.lock")); err != nil {
		t.Errorf("root's file behind the symlink was removed: %v", err)
	}
	old := filepath.Join(userDir, "d.old")
	if _, err := os.Stat(filepath.Join(old, "app.pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the pid file was not removed from its own directory: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(old, "app.state")); err != nil || fi.Size() == 0 {
		t.Errorf("the state file is not in its own directory: %v", err)
	}
}

// {{ file }} and a template's source are read as root: a child that
// swaps in a symlink to a root-only file does not get it read for it. A
// symlink it made is refused (the render fails, logged; nothing is
// written); the same symlink at start is a 125.
func TestUserCannotRedirectTemplateReads(t *testing.T) {
	needRootT(t)
	env, admin := userEnv(t)
	base, userDir, victim := hostileBase(t)
	secret := filepath.Join(victim, "secret")
	inc := filepath.Join(userDir, "inc.txt")
	if err := errors.Join(os.WriteFile(secret, []byte("ROOT-ONLY"), 0o600), os.WriteFile(inc, []byte("included"), 0o644), os.Chown(inc, 65534, 65534)); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(base, "app.tmpl")
	if err := os.WriteFile(tmpl, []byte(`p={{ (secret "app/db").Data.password }} inc={{ file "`+inc+`" }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(out, "app.conf")
	stop, lines, stderr := startHostile(t, env, base,
		`[ -L userdir/inc.txt ] || { rm userdir/inc.txt && ln -s ../victim/secret userdir/inc.txt; } || exit 3`,
		"--user", "nobody", "--template", tmpl+":"+conf)
	if !lines.waitCount("start", 1, 20*time.Second) {
		t.Fatalf("no first start:\n%s", stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.Rotate(ctx, "app/db", fetch.RotateRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "may have made") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // another process logs it; poll, bounded
	}
	log := stop()
	if !strings.Contains(log, "read "+inc+": a symlink on it that uid 65534 (--user) may have made is refused") {
		t.Errorf("the render through the child's symlink did not fail naming it:\n%s", log)
	}
	if b, _ := os.ReadFile(conf); strings.Contains(string(b), "ROOT-ONLY") || !strings.Contains(string(b), "inc=included") {
		t.Errorf("the rendered file: %q", b)
	}

	// A source that is the child's symlink, at start: 125.
	_, errOut, code := runUser(t, env, nil, "--user", "nobody", "--template", inc+":"+filepath.Join(out, "leak.conf"), "--", "true")
	if code != 125 || !strings.Contains(errOut, "may have made") {
		t.Errorf("a template source through the child's symlink: exit %d\n%s", code, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(out, "leak.conf")); err == nil {
		t.Errorf("written from the child's symlink: %q", b)
	}
}

// writeStateKey writes a new age identity file as age-keygen does.
func writeStateKey(t *testing.T, path string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lockedBuilder is a strings.Builder that a process's output goroutine
// writes while the test reads it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
