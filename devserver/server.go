package devserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value serves DefaultSeed from memory.
type Options struct {
	Seed      *Seed         // nil: DefaultSeed()
	DataFile  string        // "": memory only; else load state if the file exists, and persist after every mutation
	FaultRate float64       // answer 503 (with Retry-After: 1) at this rate
	Latency   time.Duration // added to every answer
	Logger    *slog.Logger  // nil: discard. Logs method, path, status, request id; never bodies
	// ACMEDelay is how long an ACME order takes from pending (through
	// processing, at half of it) to valid or invalid; 0: 1s.
	ACMEDelay time.Duration
}

// Tunables, read once by New: set them before New (tests shorten them).
var (
	// KeepAliveInterval is the time between keep-alive comments on an events stream.
	KeepAliveInterval = 10 * time.Second
	// EventBufferSize is how many recent events are kept for since= resumes.
	EventBufferSize = 1024
	// MaxBodyBytes is the largest request body accepted.
	MaxBodyBytes int64 = 1 << 20
)

// Server is one dev server. Create it with New, serve Handler, end with Close.
type Server struct {
	cfg       *config
	now       func() time.Time
	logger    *slog.Logger
	dataFile  string
	keepAlive time.Duration
	maxBody   int64
	routes    []*route
	counts    *counters
	faults    faultKnobs
	hub       *eventHub
	pki       *pkiState
	acmeCA    *caCert // issues the ACME orders' certificates
	acmeDelay time.Duration

	mu          sync.Mutex // guards the store below
	secrets     map[string]*secretEntry
	sortedPaths []string // nil when a secret was created or removed since the last sort
	leases      map[string]*lease
	tokens      map[string]*token // by SHA-256 of the token
	orders      map[string]*acmeOrder

	persistMu sync.Mutex
	wake      chan struct{}
	done      chan struct{}
	ctx       context.Context // ends at Close: cancels the sweeper's PostgreSQL work
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New validates the seed, loads the data file when there is one, creates the
// CA and starts the lease sweeper.
func New(opts Options) (*Server, error) {
	return newServer(opts, time.Now)
}

// newServer is New with an injectable clock (tests move time by hand).
func newServer(opts Options, now func() time.Time) (*Server, error) {
	seed := opts.Seed
	if seed == nil {
		seed = DefaultSeed()
	}
	cfg, err := compileSeed(seed, "seed")
	if err != nil {
		return nil, err
	}
	if cfg.rootToken == "" {
		cfg.rootToken = "dev-" + randomHex(16)
	}
	if opts.FaultRate < 0 || opts.FaultRate > 1 {
		return nil, fmt.Errorf("fault rate %v: want a value between 0 and 1", opts.FaultRate)
	}
	if opts.ACMEDelay < 0 {
		return nil, fmt.Errorf("acme delay %v: want a positive duration (0: 1s)", opts.ACMEDelay)
	}
	s := &Server{
		cfg: cfg, now: func() time.Time { return now().UTC() }, logger: opts.Logger,
		dataFile: opts.DataFile, keepAlive: KeepAliveInterval, maxBody: MaxBodyBytes,
		hub:     newEventHub(EventBufferSize),
		secrets: map[string]*secretEntry{}, leases: map[string]*lease{}, tokens: map[string]*token{},
		orders: map[string]*acmeOrder{}, acmeDelay: opts.ACMEDelay,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if s.acmeDelay == 0 {
		s.acmeDelay = DefaultACMEDelay
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.routes = s.routeTable()
	s.counts = newCounters(s.routes)
	s.faults.set(Faults{Rate: opts.FaultRate, Latency: opts.Latency, RetryAfter: retryIf(opts.FaultRate)})
	if err := s.loadState(); err != nil {
		s.cancel()
		return nil, err
	}
	if err := s.persist(); err != nil {
		s.cancel()
		return nil, fmt.Errorf("save state: %w", err)
	}
	s.wg.Add(1)
	go s.sweeper()
	return s, nil
}

func retryIf(rate float64) int {
	if rate > 0 {
		return 1
	}
	return 0
}

// Handler serves the API of scaivault-api.md and the dev endpoints.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// RootToken is the token that may do everything.
func (s *Server) RootToken() string { return s.cfg.rootToken }

// Close stops the lease sweeper, ends every event stream and, without a
// DataFile, revokes the postgres leases (dropping their roles). It is safe to
// call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
		s.wg.Wait()
		s.hub.close()
		if s.dataFile == "" {
			s.closeErr = s.revokeAllPostgres()
		}
	})
	return s.closeErr
}

// revokeAllPostgres drops the role of every postgres lease.
func (s *Server) revokeAllPostgres() error {
	s.mu.Lock()
	var todo []*lease
	for _, l := range s.leases {
		if e := s.cfg.engines[l.Engine]; e != nil && e.kind == "postgres" {
			todo = append(todo, l)
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, l := range todo {
		if err := s.engineRevoke(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("revoke lease %s: %w", l.ID, err))
			continue
		}
		s.mu.Lock()
		delete(s.leases, l.ID)
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// ExportLines are the shell lines that point scaivault-run at a server;
// caFile ("" for none) is the CA to trust for an HTTPS one.
func ExportLines(baseURL, token, caFile string) string {
	s := "export SCAIVAULT_BASE_URL=" + shellQuote(baseURL) + "\n"
	if caFile != "" {
		s += "export SCAIVAULT_CACERT=" + shellQuote(caFile) + "\n"
	}
	return s + "export SCAIVAULT_TOKEN=" + shellQuote(token) + "\n"
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString is n characters of [A-Za-z0-9] from crypto/rand: safe inside
// SQL quotes and URLs.
func randomString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		rand.Read(buf)
		for _, c := range buf {
			// 248 = 4*62: reject the rest so that every character is equally likely.
			if c < 248 && len(out) < n {
				out = append(out, alnum[int(c)%len(alnum)])
			}
		}
	}
	return string(out)
}
