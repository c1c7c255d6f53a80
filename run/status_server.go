package run

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/scailabs/scaivault-run/watch"
)

// The status endpoint's HTTP server (--status-addr). It reads the board
// only; a slow or hostile client costs at most maxStatusConns connections,
// each bounded in time and header size, and nothing else.

// Bounds of the status server.
const (
	maxStatusConns       = 8
	statusHeaderTimeout  = 5 * time.Second
	statusReadTimeout    = 10 * time.Second
	statusWriteTimeout   = 10 * time.Second
	statusIdleTimeout    = 30 * time.Second
	statusMaxHeaderBytes = 8 << 10
)

// statusServer serves a board on a listener until close.
type statusServer struct {
	hs   *http.Server
	done chan struct{}
}

// listenStatus opens the status listener; the error names the flag.
func listenStatus(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--status-addr %q: %w", addr, err)
	}
	return newLimitListener(ln, maxStatusConns), nil
}

// serveStatus serves b on ln in a goroutine that close joins.
func serveStatus(ln net.Listener, b *board, log *slog.Logger) *statusServer {
	s := &statusServer{
		hs: &http.Server{
			Handler:           statusHandler(b),
			ReadHeaderTimeout: statusHeaderTimeout,
			ReadTimeout:       statusReadTimeout,
			WriteTimeout:      statusWriteTimeout,
			IdleTimeout:       statusIdleTimeout,
			MaxHeaderBytes:    statusMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		done: make(chan struct{}),
	}
	// No keep-alive: answers are small, and an idle connection would hold
	// one of the few slots (a client parking them could starve the probes).
	s.hs.SetKeepAlivesEnabled(false)
	go func() {
		defer close(s.done)
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("status endpoint stopped", "error", err)
		}
	}()
	return s
}

// close stops the server at once (its answers are small; a scrape in
// flight is cut) and waits for it.
func (s *statusServer) close() {
	if s == nil {
		return
	}
	s.hs.Close()
	<-s.done
}

// statusHandler routes GET and HEAD of the four paths; other methods get
// 405, other paths 404.
func statusHandler(b *board) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !b.view().healthy() {
			plain(w, http.StatusServiceUnavailable, "exiting\n")
			return
		}
		plain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		nr := readiness(b.view(), time.Now())
		if len(nr) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "not_ready": nr})
			return
		}
		ans := map[string]any{"ready": true}
		if doc := document(b.view(), time.Now()); doc.Fallback != nil {
			ans["fallback"] = doc.Fallback // ready, on the state file
		}
		writeJSON(w, http.StatusOK, ans)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, document(b.view(), time.Now()))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		b.metrics.write(&buf, b.view())
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(buf.Bytes())
	})
	return mux
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(body))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // not expected: plain types
		plain(w, http.StatusInternalServerError, "encode: "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}

// limitListener accepts at most n connections at a time: Accept waits for
// one to close (as golang.org/x/net/netutil.LimitListener does).
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// statusRun is the status endpoint of one Launch: nil without
// --status-addr.
type statusRun struct {
	board *board
	srv   *statusServer
}

// startStatus opens the listener and starts serving, before anything else
// (a bad or busy address fails the start at once, and probes answer during
// the start-up).
func startStatus(opts *Options, log *slog.Logger) (*statusRun, error) {
	if opts.StatusAddr == "" {
		return nil, nil
	}
	if opts.Once {
		return nil, errors.New("--status-addr with --once: nothing remains to serve it once the command is exec'd")
	}
	ln, err := listenStatus(opts.StatusAddr)
	if err != nil {
		return nil, err
	}
	b := newBoard(time.Now())
	b.filesOnly = len(opts.Argv) == 0
	opts.Client.Observer = b.metrics
	log.Info("status endpoint listening", "addr", ln.Addr().String())
	return &statusRun{board: b, srv: serveStatus(ln, b, log)}, nil
}

func (s *statusRun) close() {
	if s != nil {
		s.srv.close()
	}
}

// rendered tells the board the first render's files are written (files
// only).
func (s *statusRun) rendered() {
	if s != nil {
		s.board.rendered()
	}
}

// setFallback tells the board the child runs on the state file (fb), or,
// nil, no longer; poll is the poll interval, which staleness counts in.
func (s *statusRun) setFallback(fb *fallback, poll time.Duration) {
	if s == nil {
		return
	}
	var v *fallbackView
	if fb != nil {
		v = &fallbackView{Since: fb.since, ResolvedAt: fb.resolvedAt, Ends: fb.ends, Refs: fb.refs, StaleAfter: staleAfter * poll}
	}
	s.board.mu.Lock()
	s.board.fallback = v
	s.board.mu.Unlock()
}

// setState gives the board the state file's write counts (nil: none).
func (s *statusRun) setState(st *stateRun) {
	if s == nil || st == nil {
		return
	}
	s.board.mu.Lock()
	s.board.state = st
	s.board.mu.Unlock()
}

// observer is the supervisor's Observer: the board, or nil.
func (s *statusRun) observer() Observer {
	if s == nil {
		return nil
	}
	return s.board
}

// onState is the watcher's OnState: the board's, or nil.
func (s *statusRun) onState() func(*watch.State) {
	if s == nil {
		return nil
	}
	return s.board.setWatch
}
