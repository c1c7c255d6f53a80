package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/internal/pgtest"
	"github.com/scailabs/scaivault-run/signal"
)

// TestMain lets testscript run the real main as "scaivault-run", and a small
// child program, "testchild", as the command under it.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"scaivault-run": func() { os.Exit(runMain(os.Args, os.Stdout, os.Stderr)) },
		"testchild":     testChild,
	})
}

// TestScripts runs the CLI scenarios in testdata/script against the real
// binary and a real dev server on loopback.
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams("testdata/script", nil))
}

// TestPostgresScripts runs the scenarios that need a real PostgreSQL
// (started here on a loopback port; $PG_URL is its superuser URL).
func TestPostgresScripts(t *testing.T) {
	pg := pgtest.Start(t)
	testscript.Run(t, scriptParams("testdata/script-pg", map[string]string{
		"PG_URL":  pg.URL(),
		"PG_PORT": strconv.Itoa(pg.Port()),
	}))
}

func scriptParams(dir string, vars map[string]string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// A clean slate: no credentials or flags from the machine.
			for _, kv := range os.Environ() {
				if strings.HasPrefix(kv, "SCAIVAULT_") || strings.HasPrefix(kv, "SCAIKEY_") {
					env.Setenv(strings.SplitN(kv, "=", 2)[0], "")
				}
			}
			for k, v := range vars {
				env.Setenv(k, v)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"devserver": cmdDevserver,
			"svctl":     cmdSvctl,
			"sig":       cmdSig,
			"fifowrite": cmdFifoWrite,
		},
	}
}

// cmdDevserver starts a dev server in the test process, seeded from the
// named file of the script (or demo data), and exports SCAIVAULT_BASE_URL
// and SCAIVAULT_TOKEN (the root token) to the script.
func cmdDevserver(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! devserver")
	}
	var opts devserver.Options
	if len(args) > 0 {
		// $VARS in the seed are expanded from the script's environment
		// (e.g. the port of the test's PostgreSQL).
		raw, err := os.ReadFile(ts.MkAbs(args[0]))
		ts.Check(err)
		seed, err := devserver.ParseSeed([]byte(os.Expand(string(raw), ts.Getenv)), args[0])
		ts.Check(err)
		opts.Seed = seed
	}
	srv, err := devserver.New(opts)
	ts.Check(err)
	hs := httptest.NewServer(srv.Handler())
	ts.Defer(func() {
		srv.Close() // first: it ends event streams that hs.Close waits for
		hs.Close()
	})
	ts.Setenv("SCAIVAULT_BASE_URL", hs.URL)
	ts.Setenv("SCAIVAULT_TOKEN", srv.RootToken())
	servers.Store(ts, srv)
}

// cmdSvctl changes the dev server from a script, through our own client:
//
//	svctl write PATH KEY=VALUE...     new version of a json secret
//	svctl rotate PATH                 rotate with a generated value
//	svctl delete PATH
//	svctl leases                      print the number of active leases
//	svctl waitleases N                wait (bounded) until N leases are active
//	svctl faults STATUS PATH_PREFIX   answer every request under the prefix with STATUS
//	svctl faults off
//	svctl latency D PATH_PREFIX       answers under the prefix take D
//	svctl failnext N STATUS PATH_PREFIX   the next N requests under the prefix answer STATUS
//	svctl requests ROUTE              print how many requests ROUTE had ("" all)
//	svctl waitrequests ROUTE N        wait (bounded) until ROUTE had N requests
func cmdSvctl(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: svctl write|rotate|delete|leases ...")
	}
	c := &devserver.Admin{BaseURL: ts.Getenv("SCAIVAULT_BASE_URL"), Token: ts.Getenv("SCAIVAULT_TOKEN")}
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch args[0] {
	case "write":
		data := map[string]any{}
		for _, kv := range args[2:] {
			k, v, _ := strings.Cut(kv, "=")
			data[k] = v
		}
		_, err = c.Write(ctx, args[1], fetch.WriteRequest{Data: data, SecretType: "json"})
	case "rotate":
		_, err = c.Rotate(ctx, args[1], fetch.RotateRequest{Reason: "test"})
	case "delete":
		err = c.Delete(ctx, args[1], false)
	case "leases":
		fmt.Fprintf(ts.Stdout(), "%d\n", scriptServer(ts).ActiveLeases())
	case "waitleases":
		want, _ := strconv.Atoi(args[1])
		srv := scriptServer(ts)
		for srv.ActiveLeases() != want {
			if ctx.Err() != nil {
				ts.Fatalf("svctl waitleases: %d active, want %d", srv.ActiveLeases(), want)
			}
			time.Sleep(20 * time.Millisecond) // the server has no event for this; poll its state
		}
	case "faults":
		f := devserver.Faults{}
		if args[1] != "off" {
			f.Rate = 1
			f.Status, _ = strconv.Atoi(args[1])
			f.PathPrefix = args[2]
		}
		scriptServer(ts).SetFaults(f)
	case "failnext":
		n, _ := strconv.Atoi(args[1])
		status, _ := strconv.Atoi(args[2])
		scriptServer(ts).SetFaults(devserver.Faults{Next: n, Status: status, PathPrefix: args[3]})
	case "waitrequests":
		want, _ := strconv.ParseInt(args[2], 10, 64)
		srv := scriptServer(ts)
		for srv.Requests(args[1]) < want {
			if ctx.Err() != nil {
				ts.Fatalf("svctl waitrequests: %d requests, want %d", srv.Requests(args[1]), want)
			}
			time.Sleep(20 * time.Millisecond) // the server has no event for this; poll its state
		}
	case "requests":
		fmt.Fprintf(ts.Stdout(), "%d\n", scriptServer(ts).Requests(args[1]))
	case "latency":
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		scriptServer(ts).SetFaults(devserver.Faults{Latency: d, PathPrefix: args[2]})
	default:
		ts.Fatalf("svctl: unknown verb %q", args[0])
	}
	if neg {
		if err == nil {
			ts.Fatalf("svctl %s: unexpected success", args[0])
		}
		return
	}
	ts.Check(err)
}

// cmdSig sends a signal (any name signal.Parse takes) to every command the
// script started in the background: `sig HUP`.
func cmdSig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sig SIGNAL")
	}
	s, err := signal.Parse(args[0])
	ts.Check(err)
	for _, cmd := range ts.BackgroundCmds() {
		ts.Check(cmd.Process.Signal(s))
	}
}

// cmdFifoWrite waits (bounded) until a process has the FIFO open for
// reading, then holds it open for writing, writing nothing, until the
// script ends: the reader is then blocked in read, for sure.
func cmdFifoWrite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: fifowrite FIFO")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := syscall.Open(ts.MkAbs(args[0]), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == nil {
			ts.Defer(func() { syscall.Close(fd) })
			return
		}
		if err != syscall.ENXIO || time.Now().After(deadline) {
			ts.Fatalf("fifowrite %s: no reader: %v", args[0], err)
		}
		time.Sleep(20 * time.Millisecond) // no event for "a reader opened it"; poll, bounded
	}
}

func scriptServer(ts *testscript.TestScript) *devserver.Server {
	srv, ok := servers.Load(ts)
	if !ok {
		ts.Fatalf("svctl: no devserver in this script")
	}
	return srv.(*devserver.Server)
}

// testChild is the command scripts start under scaivault-run:
//
//	testchild env NAME...      print NAME=VALUE for each (VALUE empty if unset)
//	testchild argv ARGS...     print the arguments as a JSON array
//	testchild cat FILE         print a file (e.g. an as=file value)
//	testchild exit N           exit with status N
//	testchild kill SIG         kill itself with a signal number
//	testchild fileof NAME      print the content of the file named by $NAME
func testChild() {
	args := os.Args[1:]
	if len(args) == 0 {
		os.Exit(2)
	}
	switch args[0] {
	case "env":
		for _, n := range args[1:] {
			fmt.Printf("%s=%s\n", n, os.Getenv(n))
		}
	case "argv":
		b, _ := json.Marshal(args[1:])
		fmt.Println(string(b))
	case "cat":
		b, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "fileof":
		p := os.Getenv(args[1])
		fi, err := os.Stat(p)
		if err != nil || !filepath.IsAbs(p) {
			fmt.Fprintln(os.Stderr, "not an absolute file:", err)
			os.Exit(1)
		}
		b, _ := os.ReadFile(p)
		fmt.Printf("mode=%o dirmode=%o\n%s\n", fi.Mode().Perm(), dirMode(p), b)
	case "exit":
		n, _ := strconv.Atoi(args[1])
		os.Exit(n)
	case "kill":
		// The Go runtime turns a SIGSEGV into a crash with status 2; a
		// shell dies of the signal for real.
		n, _ := strconv.Atoi(args[1])
		err := syscall.Exec("/bin/sh", []string{"sh", "-c", fmt.Sprintf("kill -%d $$", n)}, os.Environ())
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "testchild: unknown verb", args[0])
		os.Exit(2)
	}
}

func dirMode(p string) os.FileMode {
	fi, err := os.Stat(filepath.Dir(p))
	if err != nil {
		return 0
	}
	return fi.Mode().Perm()
}

// servers maps a running script to its dev server.
var servers sync.Map
