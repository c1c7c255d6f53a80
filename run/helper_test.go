//go:build linux

package run

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	ossignal "os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/signal"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the processes the tests need, chosen by
// SVTEST_ROLE: "child" is the supervised command (its mode is argv[1]),
// "supervisor" runs Supervisor.Run in a process of its own, so that tests
// can send it signals, kill it, or make it PID 1.

func TestMain(m *testing.M) {
	switch os.Getenv("SVTEST_ROLE") {
	case "child":
		os.Exit(childMain(os.Args[1:]))
	case "supervisor":
		os.Exit(supervisorMain())
	case "becomeuser", "execas":
		os.Exit(userHelperMain(os.Getenv("SVTEST_ROLE")))
	case "exec": // Exec(argv[1:], the env in SVTEST_EXEC_ENV)
		var env []string
		json.Unmarshal([]byte(os.Getenv("SVTEST_EXEC_ENV")), &env)
		err := Exec(os.Args[1:], env)
		fmt.Println("exec failed:", err)
		os.Exit(ExitCodeForExecError(err))
	}
	os.Exit(m.Run())
}

// say prints one line, prefixed with our pid, in one write.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%d %s\n", os.Getpid(), fmt.Sprintf(format, args...))
}

func childMain(args []string) int {
	if len(args) == 0 {
		return 2
	}
	switch args[0] {
	case "signals":
		return childSignals()
	case "printfile": // on each SIGUSR1, print the file at argv[2]
		c := make(chan os.Signal, 1)
		ossignal.Notify(c, syscall.SIGUSR1, syscall.SIGTERM)
		say("ready pg=%d val=%s", unix.Getpgrp(), os.Getenv("SVTEST_VAL"))
		for s := range c {
			if s == syscall.SIGTERM {
				return 0
			}
			b, _ := os.ReadFile(args[1])
			say("file %s", b)
		}
	case "exit":
		say("ready")
		n, _ := strconv.Atoi(args[1])
		return n
	case "argv":
		b, _ := json.Marshal(os.Args)
		os.Stdout.Write(append(b, '\n'))
	case "env":
		b, _ := json.Marshal(os.Environ())
		os.Stdout.Write(append(b, '\n'))
	case "cat":
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			return 1
		}
	case "orphan":
		return childOrphan()
	case "linger":
		g := spawnOrphan("hold")
		say("linger %d", g)
		return 7
	case "middle":
		return childMiddle(args[1])
	case "hold":
		c := make(chan os.Signal, 1)
		ossignal.Notify(c, syscall.SIGTERM)
		<-c
	}
	return 0
}

// childSignals prints "ready" and one line per signal; it exits 0 on the
// signals named in SVTEST_EXIT_ON (default SIGTERM).
func childSignals() int {
	c := make(chan os.Signal, 64)
	ossignal.Notify(c, signal.Forwarded()...)
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		fg = -1
	}
	say("ready pg=%d fg=%d val=%s", unix.Getpgrp(), fg, os.Getenv("SVTEST_VAL"))
	exitOn, ok := os.LookupEnv("SVTEST_EXIT_ON")
	if !ok {
		exitOn = "SIGTERM"
	}
	for s := range c {
		name := signal.Name(s.(syscall.Signal))
		say("got %s", name)
		if strings.Contains(","+exitOn+",", ","+name+",") {
			return 0
		}
	}
	return 1
}

// spawnOrphan starts a middle process that starts a grandchild (mode) and
// exits at once, leaving the grandchild an orphan; it returns the
// grandchild's pid.
func spawnOrphan(mode string) int {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(os.Args[0], "middle", mode)
	cmd.Env = []string{"GORACE=atexit_sleep_ms=0", "SVTEST_ROLE=child"}
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = os.Stdout, os.Stderr, []*os.File{w}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	w.Close()
	var g int
	if _, err := fmt.Fscan(r, &g); err != nil {
		panic(err)
	}
	if err := cmd.Wait(); err != nil {
		panic(err)
	}
	return g
}

func childMiddle(mode string) int {
	syscall.CloseOnExec(3)
	cmd := exec.Command(os.Args[0], mode)
	cmd.Env = []string{"GORACE=atexit_sleep_ms=0", "SVTEST_ROLE=child"}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 1
	}
	fmt.Fprintln(os.NewFile(3, "pid"), cmd.Process.Pid)
	return 0 // without waiting: the grandchild is orphaned
}

// childOrphan leaves an orphan that exits at once and waits, bounded, for
// it to be reaped by whoever adopted it: exit 5 when it was, 6 when it is
// still there (a zombie) after 10s.
func childOrphan() int {
	g := spawnOrphan("quick")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", g)); os.IsNotExist(err) {
			say("reaped %d", g)
			return 5
		}
		time.Sleep(5 * time.Millisecond) // no event tells when another process reaps
	}
	say("zombie %d", g)
	return 6
}

// svConfig is the supervisor helper's configuration, in SVTEST_SV.
type svConfig struct {
	Argv         []string
	Env          []string
	KillSignal   syscall.Signal
	KillTimeout  time.Duration
	ReloadSignal syscall.Signal
	Reap         bool
	Subreaper    bool
	CancelFD     bool // cancel Run's context at EOF on fd 3
}

// supervisorMain runs Supervisor.Run and prints "sv exit CODE" (and, on a
// terminal, whether it got the foreground back); it exits with the code.
func supervisorMain() int {
	var c svConfig
	if err := json.Unmarshal([]byte(os.Getenv("SVTEST_SV")), &c); err != nil {
		panic(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if c.Subreaper {
		if err := signal.SetSubreaper(); err != nil {
			panic(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.CancelFD {
		go func() {
			io.Copy(io.Discard, os.NewFile(3, "cancel"))
			cancel()
		}()
	}
	code, err := New(Config{
		Argv: c.Argv, Env: c.Env, KillSignal: c.KillSignal, KillTimeout: c.KillTimeout,
		ReloadSignal: c.ReloadSignal, Reap: c.Reap || signal.IsPID1(), Logger: log,
	}).Run(ctx)
	if fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil {
		say("sv foreground=%t", fg == unix.Getpgrp())
	}
	say("sv exit %d err=%v", code, err)
	return code
}

// lineReader collects the lines of r on a channel, closed at EOF.
func lineReader(r io.Reader) <-chan string {
	ch := make(chan string, 1000)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- strings.TrimRight(sc.Text(), "\r")
		}
	}()
	return ch
}
