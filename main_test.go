package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
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
	"github.com/scailabs/scaivault-run/internal/tlstest"
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
		Condition:           scriptCondition,
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
			"gencert":   cmdGencert,
			"exportenv": cmdExportEnv,
			"waitfile":  cmdWaitFile,
			"needroot":  cmdNeedRoot,
			"statefile": cmdStatefile,
		},
	}
}

// cmdDevserver starts a dev server in the test process, seeded from the
// named file of the script (or demo data), and exports SCAIVAULT_BASE_URL
// and SCAIVAULT_TOKEN (the root token) to the script.
//
//	devserver [-tls [-mtls]] [-acme-delay D] [SEED]
//
// -tls serves HTTPS (HTTP/2 offered) with a certificate from the dev CA
// and exports SCAIVAULT_CACERT ($WORK/devca.pem); -mtls requires client
// certificates from the script's client CA (see gencert); -acme-delay is
// the time its ACME orders take to turn valid (default 1s).
func cmdDevserver(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! devserver")
	}
	var useTLS, useMTLS bool
	var opts devserver.Options
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-tls":
			useTLS = true
		case "-mtls":
			useTLS, useMTLS = true, true
		case "-acme-delay":
			if len(args) < 2 {
				ts.Fatalf("devserver: -acme-delay needs a duration")
			}
			d, err := time.ParseDuration(args[1])
			ts.Check(err)
			opts.ACMEDelay, args = d, args[1:]
		default:
			ts.Fatalf("devserver: unknown flag %s", args[0])
		}
		args = args[1:]
	}
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
	if !useTLS {
		sw, err := startSwitch(srv.Handler()) // svctl stop/start (state_script_test.go)
		ts.Check(err)
		ts.Defer(func() {
			srv.Close() // first: it ends event streams
			sw.close()
		})
		switches.Store(ts, sw)
		ts.Setenv("SCAIVAULT_BASE_URL", sw.URL())
		ts.Setenv("SCAIVAULT_TOKEN", srv.RootToken())
		servers.Store(ts, srv)
		return
	}
	st := &scriptTLS{}
	caFile := ts.MkAbs("devca.pem")
	ts.Check(srv.WriteCAFile(caFile))
	var to devserver.TLSOptions
	if useMTLS {
		st.clientCA = scriptCA(ts)
		to.ClientCAFile = ts.MkAbs("client-ca.pem")
		ts.Check(os.WriteFile(to.ClientCAFile, st.clientCA.PEM, 0o600))
	}
	cfg, err := srv.ServerTLS(to)
	ts.Check(err)
	if useMTLS {
		// The chain is verified here rather than by crypto/tls, so that a
		// refused certificate is seen too (svctl waitclient).
		pool := cfg.ClientCAs
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				st.saw(certs[0].Subject.CommonName) // refused: counted once per handshake
			}
			return err
		}
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			st.saw(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	hs.TLS, hs.EnableHTTP2 = cfg, true
	hs.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // refused handshakes are the point of some scripts
	hs.StartTLS()
	ts.Defer(func() {
		srv.Close()
		hs.Close()
	})
	// svctl talks to it with the dev CA and, under -mtls, a certificate of its own.
	tc := &tls.Config{RootCAs: x509.NewCertPool()}
	tc.RootCAs.AppendCertsFromPEM([]byte(srv.CAPEM()))
	if useMTLS {
		admin := st.clientCA.Issue(scriptTB{ts}, "svctl", tlstest.Options{})
		tc.Certificates = []tls.Certificate{admin.TLSCertificate(scriptTB{ts})}
	}
	st.admin = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	tlsStates.Store(ts, st)
	ts.Setenv("SCAIVAULT_BASE_URL", hs.URL)
	ts.Setenv("SCAIVAULT_CACERT", caFile)
	ts.Setenv("SCAIVAULT_TOKEN", srv.RootToken())
	servers.Store(ts, srv)
}

// scriptTLS is the TLS side of a script's dev server: the client CA of
// -mtls, svctl's HTTP client, and the client certificates seen.
type scriptTLS struct {
	clientCA *tlstest.CA
	admin    *http.Client

	mu   sync.Mutex
	cond *sync.Cond
	cns  map[string]int // requests by client certificate
}

func (st *scriptTLS) saw(cn string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cns == nil {
		st.cns = map[string]int{}
	}
	st.cns[cn]++
	if st.cond != nil {
		st.cond.Broadcast()
	}
}

// waitClient waits (bounded) until n requests showed a client certificate for cn.
func (st *scriptTLS) waitClient(cn string, n int, d time.Duration) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cond == nil {
		st.cond = sync.NewCond(&st.mu)
	}
	timer := time.AfterFunc(d, func() {
		st.mu.Lock()
		st.cond.Broadcast()
		st.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	for st.cns[cn] < n && time.Now().Before(deadline) {
		st.cond.Wait()
	}
	return st.cns[cn] >= n
}

// scriptTB lets tlstest fail a script.
type scriptTB struct{ ts *testscript.TestScript }

func (s scriptTB) Fatal(args ...any) { s.ts.Fatalf("%s", fmt.Sprint(args...)) }

// tlsStates maps a running script to its dev server's TLS side.
var tlsStates sync.Map

// scriptCA is the script's client CA, made on first use.
func scriptCA(ts *testscript.TestScript) *tlstest.CA {
	v, _ := scriptCAs.LoadOrStore(ts, sync.OnceValue(func() *tlstest.CA { return tlstest.NewCA(scriptTB{ts}, "Script Client CA") }))
	return v.(func() *tlstest.CA)()
}

// scriptCAs maps a running script to its client CA.
var scriptCAs sync.Map

// cmdGencert writes a client certificate and key, NAME.crt and NAME.key
// (each by a rename: the certificate first, then the key, as a rotation
// would), for common name CN (default NAME), from the script's client CA,
// or with -stranger from a CA the server does not know; -ca writes the
// client CA's certificate to FILE.
//
//	gencert [-stranger] NAME [CN]
//	gencert -ca FILE
func cmdGencert(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 2 && args[0] == "-ca" {
		tlstest.WriteFile(scriptTB{ts}, ts.MkAbs(args[1]), scriptCA(ts).PEM)
		return
	}
	stranger := len(args) > 0 && args[0] == "-stranger"
	if stranger {
		args = args[1:]
	}
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: gencert [-stranger] NAME [CN]")
	}
	ca := scriptCA(ts)
	if stranger {
		ca = tlstest.NewCA(scriptTB{ts}, "Stranger CA")
	}
	cn := args[0]
	if len(args) == 2 {
		cn = args[1]
	}
	leaf := ca.Issue(scriptTB{ts}, cn, tlstest.Options{})
	tlstest.WriteFile(scriptTB{ts}, ts.MkAbs(args[0]+".crt"), leaf.CertPEM)
	tlstest.WriteFile(scriptTB{ts}, ts.MkAbs(args[0]+".key"), leaf.KeyPEM)
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
//	svctl waitclient CN [N]           wait (bounded) until N (1) requests showed a client certificate for CN (or, refused, N handshakes)
//	svctl orders [ACCOUNT]            print the number of ACME orders placed (with ACCOUNT, or any)
//	svctl acmerenew [ACCOUNT]         renew every valid ACME order (of ACCOUNT) now, as ScaiVault does at two thirds of its life
//	svctl stop                        the server stops answering: connections refused (svctl itself still reaches it)
//	svctl start                       it answers again, on the same address
func cmdSvctl(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: svctl write|rotate|delete|leases ...")
	}
	c := &devserver.Admin{BaseURL: ts.Getenv("SCAIVAULT_BASE_URL"), Token: ts.Getenv("SCAIVAULT_TOKEN")}
	if sw := scriptSwitch(ts); sw != nil {
		c.BaseURL = sw.admin.URL
	}
	if v, ok := tlsStates.Load(ts); ok {
		c.HTTP = v.(*scriptTLS).admin
	}
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
	case "waitclient":
		v, ok := tlsStates.Load(ts)
		if !ok {
			ts.Fatalf("svctl waitclient: no devserver -mtls in this script")
		}
		n := 1
		if len(args) > 2 {
			n, _ = strconv.Atoi(args[2])
		}
		if !v.(*scriptTLS).waitClient(args[1], n, 10*time.Second) {
			ts.Fatalf("svctl waitclient: fewer than %d requests with a client certificate for %q", n, args[1])
		}
	case "stop", "start":
		sw := scriptSwitch(ts)
		if sw == nil {
			ts.Fatalf("svctl %s: only for a devserver without -tls", args[0])
		}
		if args[0] == "stop" {
			sw.stop()
		} else {
			err = sw.start()
		}
	case "orders":
		account := ""
		if len(args) > 1 {
			account = args[1]
		}
		fmt.Fprintf(ts.Stdout(), "%d\n", scriptServer(ts).ACMEOrders(account))
	case "acmerenew":
		account := ""
		if len(args) > 1 {
			account = args[1]
		}
		if n := scriptServer(ts).RenewACMEOrders(account); n == 0 {
			ts.Fatalf("svctl acmerenew: no valid order to renew")
		}
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

// cmdExportEnv waits (bounded) for a file of export lines, as
// dev-server --export-file writes it once listening, and sets them in the
// script's environment.
//
//	exportenv FILE
func cmdExportEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: exportenv FILE")
	}
	deadline := time.Now().Add(10 * time.Second)
	var data []byte
	for {
		var err error
		if data, err = os.ReadFile(ts.MkAbs(args[0])); err == nil {
			break
		}
		if !os.IsNotExist(err) || time.Now().After(deadline) {
			ts.Fatalf("exportenv: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // another process makes it; poll, bounded
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		k, v, ok2 := strings.Cut(kv, "=")
		if !ok || !ok2 || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
			ts.Fatalf("exportenv: not an export line: %q", line)
		}
		ts.Setenv(k, strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'"))
	}
}

// cmdWaitFile waits (bounded) until FILE exists: a child marks a step with
// a file (testchild serve).
//
//	waitfile FILE
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile %s: not there after 20s", args[0])
		}
		time.Sleep(10 * time.Millisecond) // another process makes it; poll, bounded
	}
}

// cmdNeedRoot fails a script that needs root (--user) when it is not
// root in CI, which runs the tests as root, so that the script cannot go
// unrun there; elsewhere the script skips itself with the [root]
// condition:
//
//	needroot
//	[!root] skip 'needs root'
func cmdNeedRoot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: needroot")
	}
	if os.Geteuid() != 0 && os.Getenv("CI") != "" {
		ts.Fatalf("this script needs root, and CI runs the tests as root")
	}
}

// scriptCondition adds [root] (the tests run as root) to testscript's own.
func scriptCondition(cond string) (bool, error) {
	if cond == "root" {
		return os.Geteuid() == 0, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
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
//	testchild pid              print its own pid
//	testchild kill SIG         kill itself with a signal number
//	testchild fileof NAME      print the content of the file named by $NAME
//	testchild say NAME...      print "NAME=VALUE" on stdout and "err NAME=VALUE" on stderr
//	testchild split NAME       print $NAME in two writes 1 ms apart, on stdout and stderr
//	testchild binary NAME FILE print $NAME between bytes 0-255 (NULs), and write what --mask makes of it to FILE
//	testchild lines NAME       print the file named by $NAME, then each of its lines alone
//	testchild bulk N           print N numbered lines and exit at once
//	testchild serve DIR ARGS.. print ARGS ($NAME expanded) with the number of this start,
//	                           write DIR/pid, mark DIR/started.K (K from 1), wait for SIGTERM; print
//	                           "signal HUP" (USR1, USR2) and mark DIR/HUP.N for the Nth
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
	case "pid":
		fmt.Println(os.Getpid())
	case "exit":
		n, _ := strconv.Atoi(args[1])
		os.Exit(n)
	case "say", "split", "binary", "lines", "bulk", "serve":
		maskChild(args)
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
