//go:build linux

package run

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/scailabs/scaivault-run/signal"
)

// On a terminal the child's group is the foreground group: ^C reaches the
// child once and the supervisor not at all; the supervisor gets the
// terminal back when the child has exited.
func TestTerminalForeground(t *testing.T) {
	t.Parallel()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	p := startSupervisor(t, svConfig{Argv: childArgv("signals"), Env: childEnv()}, nil, func(cmd *exec.Cmd) io.Reader {
		cmd.Stdin, cmd.Stdout = tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		return ptmx
	})
	tty.Close() // the supervisor has its own copy
	// Lines come through the terminal, after echoes such as "^C": unanchored.
	m := p.expect(`(\d+) ready pg=(\d+) fg=(-?\d+)`)
	if m[2] != m[3] {
		t.Fatalf("child's group %s is not the terminal's foreground group %s", m[2], m[3])
	}
	if m[1] != m[2] {
		t.Errorf("child %s is not its group's leader %s", m[1], m[2])
	}
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C
		t.Fatal(err)
	}
	p.expect(`\d+ got SIGINT$`)
	// A marker through the supervisor: had it seen the SIGINT, the kill
	// signal it sent (SIGTERM, a lower number) would arrive no later.
	p.signal(syscall.SIGWINCH)
	p.expect(`\d+ got SIGWINCH$`)
	if n := p.count(`got SIGINT`); n != 1 {
		t.Errorf("child got SIGINT %d times; want once", n)
	}
	if n := p.count(`got SIGTERM`); n != 0 {
		t.Errorf("child got SIGTERM: the supervisor acted on the terminal's SIGINT")
	}
	p.signal(syscall.SIGTERM)
	p.expect(`\d+ got SIGTERM$`)
	p.expect(`\d+ sv foreground=true$`)
	p.expect(`\d+ sv exit 0 `)
	if code := p.wait(); code != 0 {
		t.Errorf("supervisor exit %d", code)
	}
	logs, _ := os.ReadFile(p.stderr.Name())
	if strings.Contains(string(logs), "signal=SIGINT") {
		t.Errorf("supervisor received SIGINT:\n%s", logs)
	}
}

// The child starts with default dispositions and an empty mask, though the
// supervisor was started with signals ignored and ignores SIGTTIN/SIGTTOU.
func TestChildSignalDispositions(t *testing.T) {
	t.Parallel()
	// The child reads the supervisor's mask only when a forwarded SIGUSR1
	// arrives: the supervisor forwards from the goroutine that started the
	// child, so by then the start (which catches SIGTTIN/SIGTTOU for the
	// moment of the fork) is over.
	script := `grep -E "^Sig(Ign|Blk)" /proc/self/status
trap 'grep "^SigIgn" /proc/$PPID/status | sed s/^SigIgn/ParentIgn/; kill $s 2>/dev/null; exit 0' USR1
sleep 60 & s=$!
echo ready
wait $s`
	wrap := []string{"/bin/sh", "-c", `trap "" HUP PIPE TTIN TTOU TSTP USR1 WINCH; exec "$0"`}
	p := startSupervisor(t, svConfig{Argv: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}}, wrap, nil)
	masks := map[string]uint64{}
	for _, field := range []string{"SigBlk", "SigIgn"} {
		m := p.expect(`^` + field + `:\s+([0-9a-f]+)$`)
		masks[field], _ = strconv.ParseUint(m[1], 16, 64)
	}
	p.expect(`^ready$`)
	p.signal(syscall.SIGUSR1)
	m := p.expect(`^ParentIgn:\s+([0-9a-f]+)$`)
	masks["ParentIgn"], _ = strconv.ParseUint(m[1], 16, 64)
	// Signals the supervisor does not catch (32 and 33, reserved by libc
	// and the Go runtime) keep the disposition they were started with:
	// whatever ignores of those the test itself inherited pass through.
	kept := inheritedIgnored(t) & notCaughtMask()
	if masks["SigIgn"] != kept || masks["SigBlk"] != 0 {
		t.Errorf("child ignores %#x, blocks %#x; want %#x (inherited, not catchable), nothing", masks["SigIgn"], masks["SigBlk"], kept)
	}
	tty := uint64(1)<<(syscall.SIGTTIN-1) | uint64(1)<<(syscall.SIGTTOU-1)
	if masks["ParentIgn"] != tty|kept {
		t.Errorf("supervisor ignores %#x; want SIGTTIN and SIGTTOU only (%#x)", masks["ParentIgn"], tty|kept)
	}
	if code := p.wait(); code != 0 {
		t.Errorf("supervisor exit %d", code)
	}
}

// inheritedIgnored is the SigIgn mask this test process was started with.
func inheritedIgnored(t *testing.T) uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			m, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return m
		}
	}
	t.Fatal("no SigIgn in /proc/self/status")
	return 0
}

// notCaughtMask has a bit for every signal the supervisor leaves alone.
func notCaughtMask() uint64 {
	var m uint64
	for n := 1; n <= 64; n++ {
		sig := syscall.Signal(n)
		if sig != syscall.SIGKILL && sig != syscall.SIGSTOP && signal.ActionFor(sig) == signal.NotCaught {
			m |= 1 << (n - 1)
		}
	}
	return m
}
