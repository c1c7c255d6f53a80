package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/scailabs/scaivault-run/statefile"
)

// switchServer is a script's dev server on an address that can stop
// answering (connections refused, as a server that is down) and start
// again (svctl stop, svctl start). svctl itself goes through admin, which
// is always up: an operator can change the server while scaivault-run
// cannot reach it.
type switchServer struct {
	h     http.Handler
	addr  string
	admin *httptest.Server

	mu sync.Mutex
	hs *http.Server
}

func startSwitch(h http.Handler) (*switchServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &switchServer{h: h, addr: ln.Addr().String(), admin: httptest.NewServer(h)}
	s.serve(ln)
	return s, nil
}

func (s *switchServer) URL() string { return "http://" + s.addr }

func (s *switchServer) serve(ln net.Listener) {
	s.hs = &http.Server{Handler: s.h}
	go s.hs.Serve(ln)
}

// stop closes the listener and every connection at once.
func (s *switchServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hs != nil {
		s.hs.Close()
		s.hs = nil
	}
}

// start listens on the same address again.
func (s *switchServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hs != nil {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.serve(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // the port is released asynchronously; bounded
	}
}

func (s *switchServer) close() {
	s.stop()
	s.admin.Close()
}

// switches maps a running script to its switchable server.
var switches sync.Map

func scriptSwitch(ts *testscript.TestScript) *switchServer {
	if v, ok := switches.Load(ts); ok {
		return v.(*switchServer)
	}
	return nil
}

// cmdStatefile reads a state file from a script:
//
//	statefile show FILE KEY    print what `age -d -i KEY FILE` prints
//	statefile novalues FILE    fail if FILE holds, in plaintext, any value the dev server holds or handed out
//	statefile waitleases FILE KEY N   wait (bounded) until FILE names N leases not revoked
func cmdStatefile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: statefile show FILE KEY | statefile novalues FILE | statefile waitleases FILE KEY N")
	}
	if args[0] == "waitleases" {
		waitStateLeases(ts, args[1:])
		return
	}
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	switch args[0] {
	case "show":
		if len(args) != 3 {
			ts.Fatalf("usage: statefile show FILE KEY")
		}
		key, err := os.ReadFile(ts.MkAbs(args[2]))
		ts.Check(err)
		ids, err := age.ParseIdentities(bytes.NewReader(key))
		ts.Check(err)
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), ids...)
		ts.Check(err)
		plain, err := io.ReadAll(r)
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "%s", plain)
	case "novalues":
		n := 0
		for _, v := range scriptServer(ts).SecretValues() {
			n++
			if bytes.Contains(data, []byte(v)) {
				ts.Fatalf("statefile: %s holds a value in plaintext: %.4s…", args[1], v)
			}
		}
		if n == 0 {
			ts.Fatalf("statefile novalues: the server holds no value to look for")
		}
	default:
		ts.Fatalf("statefile: unknown verb %q", args[0])
	}
}

// waitStateLeases waits, at most 20s, until the state file FILE (args[0],
// decrypted with KEY, args[1]) names N (args[2]) leases not revoked:
// another process writes it, there is no event to wait on.
func waitStateLeases(ts *testscript.TestScript, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: statefile waitleases FILE KEY N")
	}
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	k, _, err := statefile.LoadKey(ts.MkAbs(args[1]))
	ts.Check(err)
	deadline := time.Now().Add(20 * time.Second)
	got := -1
	for {
		if d, err := statefile.ReadFile(ts.MkAbs(args[0]), k); err == nil {
			got = 0
			for _, l := range d.Leases {
				if !l.Revoked {
					got++
				}
			}
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("statefile waitleases: %s names %d leases not revoked after 20s, want %d (-1: not readable)", args[0], got, want)
		}
		time.Sleep(10 * time.Millisecond) // bounded poll
	}
}
