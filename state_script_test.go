package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/rogpeppe/go-internal/testscript"
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
func cmdStatefile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: statefile show FILE KEY | statefile novalues FILE")
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
