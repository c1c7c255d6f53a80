package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	ossignal "os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
)

// revokeTimeout bounds the wait for lease revocation on exit.
const revokeTimeout = 10 * time.Second

// Options is everything the main job and render need, as plain values; the
// zero value of each field is its documented default.
type Options struct {
	Client          fetch.Config
	Dev             bool   // run against an embedded dev server
	DevSeed         string // its seed file; "" the built-in demo data
	Env             template.EnvSpec
	Templates       []template.Spec
	TemplateOptions template.Options

	Argv           []string
	Once           bool          // exec in place, no supervision
	NoRevoke       bool          // leave leases to their ttl on exit
	ExitOnLost     bool          // stop and exit 125 when a secret is lost for good
	Subreaper      bool          // reap orphans though not PID 1
	StartupTimeout time.Duration // 0: 60s
	PollInterval   time.Duration // 0: 60s
	// EventsSafetyPoll is the poll interval while the server's change
	// events stream is up; 0: 5m.
	EventsSafetyPoll time.Duration
	Supervisor       Config // kill/reload signals, timeouts, debounce, splay

	Stdout io.Writer // where templates with DST "-" go; nil: os.Stdout
	Logger *slog.Logger
}

// stdout is where templates with DST "-" are written.
func (o *Options) stdout() io.Writer {
	if o.Stdout == nil {
		return os.Stdout
	}
	return o.Stdout
}

// RenderOptions are the render subcommand's own options.
type RenderOptions struct {
	Format     string // env or json
	ShowValues bool
	Stdout     io.Writer
}

// startup is what the start-up gate produced: everything resolved, files
// and templates written, the child's environment ready.
type startup struct {
	opts     Options
	log      *slog.Logger
	client   *fetch.Client
	resolver *fetch.Resolver
	plan     *template.Plan
	set      *template.Set
	snap     *fetch.Snapshot
	files    *template.FileDir
	vars     []template.EnvVar
	closeDev func()
}

// Launch runs the main job: resolve everything, start the child (or exec it
// with Once), supervise it, clean up, and return the exit status.
func Launch(ctx context.Context, opts Options) (int, error) {
	// Keep every signal the supervisor handles caught for the whole run:
	// during start-up (no child to forward to yet: SIGINT and SIGTERM stop
	// the start-up, the others are dropped), between the start-up handler
	// and the supervisor's, and during the cleanup after it, so that no
	// default action kills us with a lease or a secret file left behind.
	// Caught signals are reset to their defaults by execve (--once).
	hold := make(chan os.Signal, 1)
	ossignal.Notify(hold, signal.Forwarded()...)
	defer ossignal.Stop(hold)

	startCtx, stop := ossignal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	st, err := prepare(startCtx, opts)
	stop()
	if err != nil {
		return ExitFailure, err
	}
	defer st.closeDev()
	if opts.Once {
		return st.exec()
	}
	return st.supervise(ctx)
}

// Render resolves and renders once and prints the resulting environment.
// Leases are left to their ttl and as=file files stay: the output is meant
// to be used.
func Render(ctx context.Context, opts Options, ro RenderOptions) error {
	st, err := prepare(ctx, opts)
	if err != nil {
		return err
	}
	defer st.closeDev()
	if st.files != nil {
		st.log.Info("as=file values written; remove the directory when done", "dir", st.files.Path())
	}
	return printEnv(ro, st.vars)
}

func (st *startup) exec() (int, error) {
	err := Exec(st.opts.Argv, template.Environ(st.vars))
	st.cleanup()
	return ExitCodeForExecError(err), err
}

func (st *startup) supervise(ctx context.Context) (int, error) {
	cfg := st.opts.Supervisor
	cfg.Argv = st.opts.Argv
	cfg.Env = template.Environ(st.vars)
	cfg.Logger = st.log
	cfg.Reap = signal.IsPID1()
	// Before the first child: it must not read our credentials through
	// /proc/<our pid>/environ or our memory.
	if err := signal.SetNotDumpable(); err != nil {
		st.log.Warn("the child may read scaivault-run's memory and environment", "err", err)
	}
	if st.opts.Subreaper {
		if err := signal.SetSubreaper(); err != nil {
			st.log.Warn("cannot become a subreaper; orphans are left to init", "err", err)
		} else {
			cfg.Reap = true
		}
	}
	// The watcher and refresher run beside the supervisor, with their own
	// context, and are joined before cleanup; --exit-on-lost cancels runCtx,
	// which stops the child like a SIGTERM would.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	changes := make(chan Change)
	wt := st.startWatching(ctx, changes, stopRun)
	if wt != nil {
		cfg.Changes = changes
	}
	code, err := New(cfg).Run(runCtx)
	wt.stop()
	if lost := wt.lostErr(); lost != nil {
		code, err = ExitFailure, fmt.Errorf("child stopped (--exit-on-lost): %w", lost)
	}
	if wt != nil {
		var held []*fetch.Lease
		st.snap, held = wt.leftovers()
		st.revokeLeftovers(held)
	}
	st.cleanup()
	return code, err
}

// cleanup revokes leases (unless NoRevoke) and removes the as=file
// directory. Rendered templates stay: they are the config the user asked for.
func (st *startup) cleanup() {
	if !st.opts.NoRevoke && st.snap != nil && len(st.snap.Leases) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
		if err := st.resolver.RevokeAll(ctx, st.snap); err != nil {
			st.log.Error("revoking leases on exit", "err", err)
		}
		cancel()
	}
	if st.files != nil {
		if err := st.files.Remove(); err != nil {
			st.log.Error("removing secret files", "dir", st.files.Path(), "err", err)
		}
	}
}

// prepare is the start-up gate: nothing is started before every reference
// is resolved and every file written; on failure nothing is left behind.
func prepare(ctx context.Context, opts Options) (st *startup, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.TemplateOptions.Logger == nil {
		opts.TemplateOptions.Logger = log
	}
	st = &startup{opts: opts, log: log, closeDev: func() {}}
	defer func() {
		if err != nil {
			st.cleanup()
			st.closeDev()
		}
	}()
	// Everything that needs no network first: bad input fails fast.
	if st.plan, err = template.PlanEnv(opts.Env); err != nil {
		return st, err
	}
	if st.set, err = template.Parse(opts.Templates, opts.TemplateOptions); err != nil {
		return st, err
	}
	if opts.Dev {
		if err = st.startDev(); err != nil {
			return st, err
		}
	}
	if st.client, err = fetch.New(st.opts.Client); err != nil {
		return st, err
	}
	st.resolver = &fetch.Resolver{Client: st.client, Logger: log}
	return st, st.resolveAll(ctx)
}

// resolveAll fetches every source, renders the templates, builds the env and
// writes files, retrying while the server is unreachable until the start-up
// timeout.
func (st *startup) resolveAll(ctx context.Context) error {
	timeout := st.opts.StartupTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resolve := func(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot) (*fetch.Snapshot, error) {
		return st.resolveRetry(ctx, srcs, have, timeout)
	}
	snap, err := resolve(ctx, st.plan.Sources(), nil)
	if snap != nil {
		st.snap = snap
	}
	if err != nil {
		return nameUsers(err, st.plan)
	}
	out, snap, err := st.set.RenderAll(ctx, resolve, st.snap)
	if snap != nil {
		st.snap = snap
	}
	if err != nil {
		return err
	}
	if st.plan.NeedsFiles() {
		var warn bool
		if st.files, warn, err = template.NewFileDir(os.Getenv); err != nil {
			return err
		}
		if warn {
			st.log.Warn("no tmpfs for secret files; using the temp directory", "dir", st.files.Path())
		}
	}
	if st.vars, err = st.plan.Build(st.snap, st.files); err != nil {
		return err
	}
	_, err = template.WriteAll(out, st.opts.TemplateOptions, st.opts.stdout())
	return err
}

// resolveRetry resolves srcs, retrying temporary failures (server down,
// 5xx, 429) with backoff until ctx ends; permanent failures return at once.
func (st *startup) resolveRetry(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot, timeout time.Duration) (*fetch.Snapshot, error) {
	wait := 500 * time.Millisecond
	for {
		// What an attempt did fetch is kept: the next one fetches only
		// what failed, so no lease is generated twice; on failure the
		// partial snapshot goes back to the caller, whose cleanup revokes
		// its leases.
		snap, err := st.resolver.ResolvePartial(ctx, srcs, have)
		if err == nil {
			return snap, nil
		}
		have = snap
		if ctx.Err() == nil && !fetch.IsTemporary(err) {
			return have, err
		}
		if ctx.Err() == nil {
			st.log.Warn("server not reachable yet; retrying", "err", err, "in", wait)
			t := time.NewTimer(wait + rand.N(wait/2))
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			wait = min(wait*2, 10*time.Second)
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return have, fmt.Errorf("server not reachable within the start-up timeout (%v): %w", timeout, err)
			}
			return have, fmt.Errorf("start-up interrupted: %w", err)
		}
	}
}

// nameUsers puts the variables that need a source in front of each error
// about it: `--env DB_PASS: secret "app/db": not found (req_…)`.
func nameUsers(err error, plan *template.Plan) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var se *fetch.SourceError
		if errors.As(e, &se) {
			if users := plan.UsersOf(se.Source); len(users) > 0 {
				e = fmt.Errorf("%s: %w", strings.Join(users, ", "), e)
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// startDev starts the embedded dev server on a loopback port and points the
// client at it with its root token.
func (st *startup) startDev() error {
	// The dev server logs a line per request: only wanted when debugging.
	var opts devserver.Options
	if st.log.Enabled(context.Background(), slog.LevelDebug) {
		opts.Logger = st.log.With("component", "dev-server")
	}
	if st.opts.DevSeed != "" {
		seed, err := devserver.LoadSeed(st.opts.DevSeed)
		if err != nil {
			return err
		}
		opts.Seed = seed
	}
	srv, err := devserver.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return fmt.Errorf("dev server: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	st.closeDev = func() {
		srv.Close() // first: it ends the event streams hs.Close would wait for
		hs.Close()
	}
	st.opts.Client.BaseURL = "http://" + ln.Addr().String()
	st.opts.Client.Token = srv.RootToken()
	st.opts.Client.TokenFile, st.opts.Client.ClientID, st.opts.Client.ClientSecret = "", "", ""
	st.log.Info("dev server started", "url", st.opts.Client.BaseURL)
	return nil
}
