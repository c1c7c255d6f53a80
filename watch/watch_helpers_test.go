package watch_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/watch"
)

// memTransport serves requests with a handler in process, over pipes
// instead of sockets, so that a dev server, a client and a watcher can
// share a testing/synctest bubble: every wait is then on a channel, and
// fake time moves as soon as everything waits.
type memTransport struct{ h http.Handler }

func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	pr, pw := io.Pipe()
	rw := &memWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	sreq := req.Clone(ctx)
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.RemoteAddr, sreq.RequestURI = "127.0.0.1:1", req.URL.RequestURI()
	go func() {
		t.h.ServeHTTP(rw, sreq)
		rw.WriteHeader(http.StatusOK)
		pw.Close()
	}()
	select {
	case <-rw.ready:
	case <-req.Context().Done():
		cancel()
		pr.Close()
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status: http.StatusText(rw.status), StatusCode: rw.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rw.sent, Body: &memBody{PipeReader: pr, cancel: cancel}, Request: req, ContentLength: -1,
	}, nil
}

type memWriter struct {
	header http.Header
	sent   http.Header
	status int
	pw     *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
}

func (w *memWriter) Header() http.Header { return w.header }

func (w *memWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

func (w *memWriter) Flush() { w.WriteHeader(http.StatusOK) }

type memBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *memBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}

// world is a dev server and a client in one bubble (or not), with a
// log that the leak scan reads.
type world struct {
	t   testing.TB
	srv *devserver.Server
	c   *fetch.Client // root
	log *slog.Logger
	buf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scanWriter{}.Write(p)
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newWorld starts a dev server seeded with seedJSON and a root client
// that reaches it in memory. Call it inside the bubble; close with stop.
func newWorld(t testing.TB, seedJSON string) *world {
	t.Helper()
	seed, err := devserver.ParseSeed([]byte(seedJSON), "watch-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	noteSeedSecrets(seed)
	noteSecret(srv.RootToken())
	buf := &syncBuffer{}
	w := &world{t: t, srv: srv, buf: buf,
		log: slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	w.c = w.client(fetch.Config{Token: srv.RootToken()})
	return w
}

// client is a client of the world's server with cfg's credentials.
func (w *world) client(cfg fetch.Config) *fetch.Client {
	cfg.BaseURL = "http://127.0.0.1:8200"
	cfg.HTTPClient = &http.Client{Transport: memTransport{w.srv.Handler()}}
	cfg.Logger = w.log
	c, err := fetch.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// admin changes the world's server as an operator would.
func (w *world) admin() *devserver.Admin {
	return &devserver.Admin{BaseURL: "http://127.0.0.1:8200", Token: w.srv.RootToken(),
		HTTP: &http.Client{Transport: memTransport{w.srv.Handler()}}}
}

func (w *world) stop() {
	w.c.Close()
	w.srv.Close()
}

// watch starts a watcher of srcs, resolved now, and returns it with a
// channel of its updates. answer decides each Update's fate (nil: Commit
// with the update's own snapshot).
type watchRun struct {
	w       *watch.Watcher
	snap    *fetch.Snapshot
	updates chan watch.Update
	lost    chan *watch.LostError
	cancel  context.CancelFunc
	done    chan struct{}
}

func (w *world) watch(cfg watch.WatchConfig, srcs []fetch.Source, answer func(watch.Update) bool) *watchRun {
	w.t.Helper()
	if cfg.Client == nil {
		cfg.Client = w.c
	}
	ctx, cancel := context.WithCancel(context.Background())
	snap, err := (&fetch.Resolver{Client: cfg.Client}).Resolve(ctx, srcs, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	wr := &watchRun{snap: snap, updates: make(chan watch.Update, 100), lost: make(chan *watch.LostError, 100),
		cancel: cancel, done: make(chan struct{})}
	cfg.Logger = w.log
	cfg.Rand = func() float64 { return 0.5 }
	cfg.OnLost = func(e *watch.LostError) {
		noteErr(e)
		select {
		case wr.lost <- e:
		default:
		}
	}
	wr.w = watch.NewWatcher(cfg, snap, srcs)
	go func() {
		defer close(wr.done)
		wr.w.Run(ctx)
	}()
	go func() {
		for u := range wr.w.Updates() {
			if answer == nil || answer(u) {
				wr.w.Commit(u.Snapshot, srcs)
			} else {
				wr.w.Reject()
			}
			wr.updates <- u
		}
	}()
	return wr
}

func (wr *watchRun) stop() {
	wr.cancel()
	<-wr.done
}

// next returns the next update, failing after d of (fake) time.
func (wr *watchRun) next(t testing.TB, d time.Duration) watch.Update {
	t.Helper()
	select {
	case u := <-wr.updates:
		return u
	case <-time.After(d):
		t.Fatalf("no update within %v", d)
	}
	return watch.Update{}
}

// none checks that no update comes within d.
func (wr *watchRun) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case u := <-wr.updates:
		t.Fatalf("unexpected update: %q", u.Reasons)
	case <-time.After(d):
	}
}
