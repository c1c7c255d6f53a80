package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/scailabs/scaivault-run/template"
)

// needRoot skips a test that changes ids, except in CI, which runs the
// tests as root: there it fails, so that it cannot go unrun.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root (to change ids), and CI runs the tests as root")
	}
	t.Skip("needs root to change ids")
}

// userHelper runs the test binary in role (see userHelperMain) with cred,
// and returns its output and exit status.
func userHelper(t *testing.T, role string, cred syscall.Credential, extraEnv ...string) (string, int) {
	t.Helper()
	b, _ := json.Marshal(cred)
	cmd := exec.Command(os.Args[0], "sh", "-c", `grep -E "^(Uid|Gid|Groups):" /proc/self/status`)
	cmd.Env = append([]string{"SVTEST_ROLE=" + role, "SVTEST_CRED=" + string(b), "GORACE=atexit_sleep_ms=0", "PATH=/usr/bin:/bin"}, extraEnv...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// userHelperMain is the test binary as a process that changes its ids
// (SVTEST_ROLE): "becomeuser" calls becomeUser and reports what it holds
// then (ids, groups, dumpable) and whether it can get root back;
// "execas" calls ExecAs with its arguments, after first giving up root
// to SVTEST_PRE_UID when set (so that the change fails).
func userHelperMain(role string) int {
	var cred syscall.Credential
	json.Unmarshal([]byte(os.Getenv("SVTEST_CRED")), &cred)
	switch role {
	case "becomeuser":
		if err := becomeUser(&cred); err != nil {
			fmt.Println("becomeUser:", err)
			return 3
		}
		status, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") || strings.HasPrefix(line, "Groups:") {
				fmt.Println(line)
			}
		}
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		fmt.Printf("dumpable=%d %v\n", d, err)
		fmt.Printf("regain root: %v\n", syscall.Setuid(0))
		return 0
	case "execas":
		if pre := os.Getenv("SVTEST_PRE_UID"); pre != "" {
			var n int
			fmt.Sscan(pre, &n)
			if err := syscall.Setuid(n); err != nil {
				fmt.Println("pre setuid:", err)
				return 4
			}
		}
		err := ExecAs(os.Args[1:], os.Environ(), &cred)
		fmt.Println("exec failed:", err)
		return exitCodeFor(err)
	}
	return 2
}

func statusLines(t *testing.T, out string, uid, gid string, groups string) {
	t.Helper()
	for _, want := range []string{
		"Uid:\t" + strings.Repeat(uid+"\t", 3) + uid,
		"Gid:\t" + strings.Repeat(gid+"\t", 3) + gid,
		strings.TrimRight("Groups:\t"+groups, "\t"),
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.TrimRight(line, " \t") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no line %q in:\n%s", want, out)
		}
	}
}

// becomeUser (--once --user) sets groups, gid and uid (real, effective,
// saved: root cannot be got back) and leaves the process non-dumpable
// until execve, whatever the kernel's suid_dumpable says.
func TestBecomeUser(t *testing.T) {
	needRoot(t)
	out, code := userHelper(t, "becomeuser", syscall.Credential{Uid: 4242, Gid: 4343, Groups: []uint32{4343, 29}})
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	statusLines(t, out, "4242", "4343", "29 4343")
	if !strings.Contains(out, "dumpable=0 <nil>") {
		t.Errorf("dumpable after the change of ids:\n%s", out)
	}
	if !strings.Contains(out, "regain root: operation not permitted") {
		t.Errorf("root could be got back:\n%s", out)
	}
	// No groups at all (USER:GROUP, a bare uid).
	out, _ = userHelper(t, "becomeuser", syscall.Credential{Uid: 4242, Gid: 0})
	statusLines(t, out, "4242", "0", "")
}

// ExecAs: the exec'd program has the ids; a change that fails is exit
// status 125 (scaivault-run's failure, not the command's) and nothing is
// exec'd.
func TestExecAs(t *testing.T) {
	needRoot(t)
	out, code := userHelper(t, "execas", syscall.Credential{Uid: 4242, Gid: 4343})
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	statusLines(t, out, "4242", "4343", "")
	out, code = userHelper(t, "execas", syscall.Credential{Uid: 4242, Gid: 4343}, "SVTEST_PRE_UID=4444")
	if code != ExitFailure || !strings.Contains(out, "set groups") || !strings.Contains(out, "operation not permitted") || strings.Contains(out, "Uid:") {
		t.Errorf("a change of ids that fails: exit %d (want %d), output:\n%s", code, ExitFailure, out)
	}
}

// resolveUser: as root any user; the inherited HOME becomes the user's,
// a HOME of a later layer or a reference stays, --pristine adds none;
// templates without an Owner get the user's, those with one keep it, and
// stdout gets none.
func TestRunAsApply(t *testing.T) {
	needRoot(t)
	u, err := resolveUser("4242:4343")
	if err != nil {
		t.Fatal(err)
	}
	if c := u.credential(); c == nil || c.Uid != 4242 || c.Gid != 4343 || len(c.Groups) != 0 {
		t.Fatalf("credential %+v", c)
	}
	other := &template.Owner{UID: 1, GID: 2}
	opts := Options{
		Env:       template.EnvSpec{Inherited: []string{"A=1", "HOME=/root", "B=2"}},
		Templates: []template.Spec{{Src: "a", Dst: "/x/a"}, {Src: "b", Dst: "/x/b", Owner: other}, {Src: "c", Dst: template.Stdout}},
	}
	got := u.apply(opts)
	if strings.Join(got.Env.Inherited, " ") != "A=1 HOME=/ B=2" {
		t.Errorf("inherited env %q", got.Env.Inherited)
	}
	if o := got.Templates[0].Owner; o == nil || *o != (template.Owner{UID: 4242, GID: 4343}) {
		t.Errorf("template without owner: %+v", o)
	}
	if got.Templates[1].Owner != other || got.Templates[2].Owner != nil {
		t.Errorf("owners %+v %+v", got.Templates[1].Owner, got.Templates[2].Owner)
	}
	if opts.Templates[0].Owner != nil {
		t.Error("apply changed the caller's specs")
	}
	if env := withHome([]string{"A=1"}, "/home/app"); strings.Join(env, " ") != "A=1 HOME=/home/app" {
		t.Errorf("no HOME inherited: %q", env)
	}
	if env := withHome([]string{"HOME=scaivault://app/home#dir"}, "/home/app"); env[0] != "HOME=scaivault://app/home#dir" {
		t.Errorf("a reference as HOME: %q", env)
	}
	if got := u.apply(Options{}); got.Env.Inherited != nil {
		t.Errorf("--pristine: %q", got.Env.Inherited)
	}
	if _, err := resolveUser("no-such-user-xyz"); err == nil || !strings.Contains(err.Error(), `--user no-such-user-xyz: unknown user "no-such-user-xyz"`) {
		t.Errorf("unknown user: %v", err)
	}
}
