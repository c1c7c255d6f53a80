package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	ossignal "os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/mask"
	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/watch"
)

// DefaultCleanupTimeout bounds the cleanup on exit (Options.CleanupTimeout):
// with the default --kill-timeout of 7s a stop fits in Docker's 10s.
const DefaultCleanupTimeout = 2 * time.Second

// Options is everything the main job and render need, as plain values; the
// zero value of each field is its documented default.
type Options struct {
	Client          fetch.Config
	Env             template.EnvSpec
	Templates       []template.Spec
	TemplateOptions template.Options

	// Argv is the command; empty (and not Once): files only, the
	// templates are kept fresh with no child.
	Argv []string
	// ReloadPidFile, files only, names the pid file of the process the
	// reload signals go to (--reload-pid-file).
	ReloadPidFile string
	// CommandEnv, files only, is the environment of the template
	// commands (there is no child's to give them).
	CommandEnv     []string
	Once           bool          // exec in place, no supervision
	NoRevoke       bool          // leave leases to their ttl on exit
	ExitOnLost     bool          // stop and exit 125 when a secret is lost for good
	Subreaper      bool          // reap orphans though not PID 1
	Mask           bool          // conceal injected values in the child's stdout/stderr (pipes through a mask.Filter)
	StartupTimeout time.Duration // 0: 60s
	CleanupTimeout time.Duration // the revocations on exit, all of them; 0: 2s
	PollInterval   time.Duration // 0: 60s
	// EventsSafetyPoll is the poll interval while the server's change
	// events stream is up; 0: 5m.
	EventsSafetyPoll time.Duration
	Supervisor       Config // kill/reload signals, timeouts, debounce, splay
	// StatusAddr, when set, is the address of the status endpoint
	// (--status-addr: /healthz, /readyz, /status, /metrics); "" serves
	// none.
	StatusAddr string
	// PidFile, when set, is --pid-file: our pid, written at start, removed
	// at exit; with Once it stays, naming the exec'd command.
	PidFile string
	// User, when set, is --user USER[:GROUP] (names or ids, see
	// user.Lookup): the child runs as that user, every restart too (with
	// Once, the exec'd command), with HOME from its passwd entry where HOME
	// was inherited; the as=file directory and files and every template
	// whose Spec has no Owner belong to it. scaivault-run keeps its own
	// ids. Not root, only our own user may be asked for. "": the child
	// runs as we do.
	User string
	// StateFile and StateKeyFile, when set, are --state-file and
	// --state-key-file (an age identity): what the child runs on is
	// written there, encrypted, after each resolution, for crash recovery
	// and fallback (state.go). FallbackAfter (0: 5s) is how long the
	// server may not answer at start before the child starts on the
	// state; FallbackMaxAge (0: 24h) the oldest state that may be used.
	StateFile      string
	StateKeyFile   string
	FallbackAfter  time.Duration
	FallbackMaxAge time.Duration

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
	ledger   *watch.Ledger // every lease, from the first generated on
	resolver *fetch.Resolver
	plan     *template.Plan
	set      *template.Set
	snap     *fetch.Snapshot
	files    *template.FileDir
	runAs    *runAs // --user; nil: the child runs as we do
	vars     []template.EnvVar
	out      []template.Rendered // the templates as the start-up gate rendered them
	written  []string            // the DSTs of the templates whose files the start-up changed
	status   *statusRun          // nil without a status endpoint
	state    *stateRun           // nil without --state-file
	fallback *fallback           // the child starts on the state file; nil: on what the server gave
	trouble  startTrouble        // the start-up gate's failed attempts (startup_log.go)
}

// Launch runs the main job: resolve everything, start the child (or exec it
// with Once), supervise it, clean up, and return the exit status.
func Launch(ctx context.Context, opts Options) (int, error) {
	// One signal channel for the whole run: every signal the supervisor
	// handles is caught from here on, through start-up (no child to
	// forward to yet: SIGINT and SIGTERM end the start-up, the others are
	// dropped), the hand-over to the supervisor (what arrives then waits
	// in the channel, and the supervisor looks before it starts the
	// child) and the cleanup after it, so that no default action kills us
	// with a lease or a secret file left behind. Caught signals are reset
	// to their defaults by execve (--once).
	sigs := make(chan os.Signal, 64)
	ossignal.Notify(sigs, signal.Forwarded()...)
	defer ossignal.Stop(sigs)

	// The pid file first: a scaivault-run already holding it means this
	// one must not start at all.
	pf, err := createPidFile(opts.PidFile, pidFileUser(opts.User))
	if err != nil {
		return ExitFailure, err
	}
	defer pf.remove()

	// The status endpoint listens before anything else is done: a bad
	// address fails at once, with nothing to clean up.
	status, err := startStatus(&opts, logger(opts))
	if err != nil {
		return ExitFailure, err
	}
	defer status.close()

	startCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got os.Signal // SIGINT or SIGTERM during start-up
	stopWatch, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGINT || sig == syscall.SIGTERM {
					got = sig
					cancel()
					return
				}
			case <-stopWatch:
				return
			}
		}
	}()
	st, err := prepare(startCtx, opts)
	if st != nil {
		st.status = status
		status.setState(st.state)
	}
	close(stopWatch)
	<-watched
	if got != nil {
		if err == nil {
			st.cleanup()
		}
		return ExitFailure, startupInterrupted(got, err)
	}
	if err != nil {
		return ExitFailure, err
	}
	if opts.Once {
		// A stop signal that came after start-up ended still stops it:
		// execve would reset the disposition and drop it.
		if sig := pendingStop(sigs); sig != nil {
			st.cleanup()
			return ExitFailure, startupInterrupted(sig, nil)
		}
		return st.exec()
	}
	return st.supervise(ctx, sigs)
}

// pidFileUser is the child's user for the pid file's checks: nil without
// --user or when the child keeps our ids (a bad spec fails later, in
// prepare, with its own error).
func pidFileUser(spec string) *template.FileUser {
	if spec == "" {
		return nil
	}
	ra, err := resolveUser(spec)
	if err != nil {
		return nil
	}
	return ra.changedUser()
}

// startupInterrupted is the error of a start-up that sig ended; err is
// what the start-up was doing, when it failed of it.
func startupInterrupted(sig os.Signal, err error) error {
	if err == nil {
		return fmt.Errorf("start-up interrupted by %s; no child started", signal.Name(sig.(syscall.Signal)))
	}
	return fmt.Errorf("start-up interrupted by %s; no child started: %w", signal.Name(sig.(syscall.Signal)), err)
}

// Render resolves and renders once and prints the resulting environment.
// Leases are left to their ttl and as=file files stay: the output is meant
// to be used.
func Render(ctx context.Context, opts Options, ro RenderOptions) error {
	st, err := prepare(ctx, opts)
	if err != nil {
		return err
	}
	if st.files != nil {
		st.log.Info("as=file values written; remove the directory when done", "dir", st.files.Top())
	}
	return printEnv(ro, st.vars)
}

func (st *startup) exec() (int, error) {
	st.state.flush()
	err := ExecAs(st.opts.Argv, template.Environ(st.vars), st.runAs.credential())
	st.cleanup()
	return exitCodeFor(err), err
}

func (st *startup) supervise(ctx context.Context, sigs <-chan os.Signal) (int, error) {
	cfg := st.opts.Supervisor
	cfg.Signals = sigs
	cfg.Argv = st.opts.Argv
	cfg.Env = template.Environ(st.vars)
	if len(cfg.Argv) == 0 {
		cfg.FilesOnly, cfg.ReloadPidFile, cfg.Env = true, st.opts.ReloadPidFile, st.opts.CommandEnv
		st.status.rendered()
		st.log.Info("files rendered; keeping them fresh (no command)", "templates", len(st.opts.Templates), "changed", len(st.written))
		if len(st.written) > 0 {
			// As consul-template: a file the start changed on disk is
			// acted on, for a process that runs on its old content.
			c := Change{Reasons: []string{"first render"}}
			for _, d := range st.written {
				c.Reasons = append(c.Reasons, "template "+d)
			}
			c.Commands, c.Signals, c.FilesChanged, c.Wait, c.WaitAlso = fileActions(specsByDst(st.opts.Templates), st.written, false)
			cfg.Initial = &c
		}
	}
	cfg.Logger = st.log
	cfg.Observer = st.status.observer()
	cfg.Credential = st.runAs.credential()
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
	var masks *mask.Set
	if st.opts.Mask || slices.ContainsFunc(st.opts.Templates, func(sp template.Spec) bool { return sp.Command != nil }) {
		// The child's output (--mask) and what template commands print
		// (always) go out with the values concealed.
		masks = mask.NewSet()
		conceal(masks, st.log, st.vars, st.out, st.snap)
		cfg.CommandMask = masks
		if st.opts.Mask {
			cfg.Mask = masks
		}
	}
	changes := make(chan Change)
	wt := st.startWatching(ctx, changes, stopRun, masks)
	if wt != nil {
		cfg.Changes = changes
	}
	code, err := New(cfg).Run(runCtx)
	wt.stop()
	if lost := wt.lostErr(); lost != nil {
		code, err = ExitFailure, fmt.Errorf("child stopped (--exit-on-lost): %w", lost)
	}
	st.cleanup()
	return code, err
}

// cleanup removes the as=file directory first (a SIGKILL during the
// revocations leaves no secret on tmpfs), then has the ledger revoke every
// lease (unless NoRevoke), concurrently, the whole of it bounded by
// CleanupTimeout. Rendered templates stay: they are the config the user
// asked for.
func (st *startup) cleanup() {
	st.opts.TemplateOptions.Dirs.Close() // no write comes after
	if st.files != nil {
		if err := st.files.Remove(); err != nil {
			st.log.Error("removing secret files", "dir", st.files.Path(), "err", err)
		}
	}
	if st.ledger == nil {
		return
	}
	timeout := st.opts.CleanupTimeout
	if timeout <= 0 {
		timeout = DefaultCleanupTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	held := st.ledger.Held()
	if !st.opts.NoRevoke && st.state != nil {
		// The previous run's leases this one never got to settle (a stop
		// during the start-up's look-ups) are ours too: a clean exit
		// revokes everything. Those the ledger holds it revokes itself.
		for _, h := range held {
			st.state.reuse[h.Lease.LeaseID] = true
		}
	}
	// Both at once, each within the timeout: the previous run's leases
	// must not use up the time of this run's own.
	var leftover sync.WaitGroup
	if !st.opts.NoRevoke && st.state != nil {
		leftover.Go(func() { st.state.revokeLeftover(timeout) })
	}
	left, err := st.ledger.Close(ctx, !st.opts.NoRevoke)
	leftover.Wait()
	st.state.close(&exitInfo{held: held, failed: failedLeases(err), revoked: !st.opts.NoRevoke})
	switch {
	case err != nil:
		st.log.Error("revoking leases on exit; those left run out on their ttl", "left", left, "err", err)
	case left > 0:
		st.log.Info("leases left to their ttl (--no-revoke)", "leases", left)
	}
}

// prepare is the start-up gate: nothing is started before every reference
// is resolved and every file written; on failure nothing is left behind.
func prepare(ctx context.Context, opts Options) (st *startup, err error) {
	log := logger(opts)
	if opts.TemplateOptions.Logger == nil {
		opts.TemplateOptions.Logger = log
	}
	st = &startup{opts: opts, log: log}
	defer func() {
		if err != nil {
			st.cleanup()
		}
	}()
	// Everything that needs no network first: bad input fails fast.
	if opts.User != "" {
		if st.runAs, err = resolveUser(opts.User); err != nil {
			return st, err
		}
		opts = st.runAs.apply(opts)
		st.opts = opts
		if st.runAs.change && opts.TemplateOptions.Dirs == nil {
			// The child may rename what is on a destination's path:
			// every directory written into is held from its first write.
			opts.TemplateOptions.Dirs = template.NewDirs(st.runAs.fileUser())
			st.opts = opts
		}
		log.Debug("the child runs as", "user", opts.User, "uid", st.runAs.creds.UID, "gid", st.runAs.creds.GID, "groups", st.runAs.creds.Groups)
	}
	opts.Templates = groupOnlyOwners(opts.Templates, st.runAs)
	st.opts.Templates = opts.Templates
	if st.plan, err = template.PlanEnv(opts.Env); err != nil {
		return st, err
	}
	if st.runAs != nil && st.runAs.change && st.plan.NeedsFiles() {
		// Root writes the as=file files into the user's 0700 directory.
		if missing := missingCaps(capDACOverride); len(missing) > 0 {
			return st, fmt.Errorf("--user %s with as=file: scaivault-run runs as root but without %s, so it cannot write the files into the user's private directory: keep it, or leave --user out", opts.User, joinAnd(missing))
		}
	}
	if st.set, err = template.Parse(opts.Templates, opts.TemplateOptions); err != nil {
		return st, err
	}
	if st.client, err = fetch.New(st.opts.Client); err != nil {
		return st, err
	}
	st.ledger = watch.NewLedger(st.client, log)
	st.resolver = &fetch.Resolver{Client: st.client, Logger: log, OnLease: st.ledger.Add}
	if st.state, err = openState(opts, log, st.plan, st.ledger, st.runAs.changedUser()); err != nil {
		return st, err
	}
	st.state.start()
	return st, st.resolveAll(ctx)
}

// logger is opts.Logger, or one that discards.
func logger(opts Options) *slog.Logger {
	if opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return opts.Logger
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
	snap, out, err := st.resolveOrFallback(ctx, resolve)
	if snap != nil {
		st.snap = snap
	}
	if err != nil {
		return err
	}
	st.out = out
	if st.plan.NeedsFiles() {
		var warn bool
		tag := "" // with a state file, tagged: a later start removes it if this run is killed
		if st.state != nil && !st.opts.Once {
			tag = st.state.fileTag
		}
		if st.files, warn, err = template.NewTaggedFileDir(os.Getenv, st.runAs.fileUser(), tag); err != nil {
			return err
		}
		if warn {
			st.log.Warn("no tmpfs for secret files; using the temp directory", "dir", st.files.Path())
		}
	}
	// Nothing is written once a signal has ended the start-up.
	if err := ctx.Err(); err != nil {
		return err
	}
	vars, writes, err := st.plan.Stage(st.snap, st.files)
	if err != nil {
		return err
	}
	// as=file files and templates: one step, all or nothing.
	changed, written, err := template.WriteStep(writes, out, st.opts.TemplateOptions, st.opts.stdout())
	if err != nil {
		return err
	}
	st.written = written
	template.MarkFilesChanged(vars, changed)
	st.vars = vars
	if st.fallback == nil {
		st.state.revokeLeftover(st.opts.cleanupTimeout())
		st.state.resolvedFor(st.plan, out, st.snap)
	}
	return nil
}

// resolveLive resolves the environment's sources, then renders the
// templates, resolving what they read, with resolve; have (nil: none) is
// what an earlier, stopped resolution fetched.
func (st *startup) resolveLive(ctx context.Context, resolve template.ResolveFunc, have *fetch.Snapshot) (*fetch.Snapshot, []template.Rendered, error) {
	snap, err := resolve(ctx, st.plan.Sources(), have)
	if err != nil {
		return snap, nil, nameUsers(err, st.plan)
	}
	out, rendered, err := st.set.RenderAll(ctx, resolve, snap)
	if rendered != nil {
		snap = rendered
	}
	return snap, out, err
}

// resolveRetry resolves srcs, retrying temporary failures (server down,
// 5xx, 429) with backoff until ctx ends; permanent failures return at once.
func (st *startup) resolveRetry(ctx context.Context, srcs []fetch.Source, have *fetch.Snapshot, timeout time.Duration) (*fetch.Snapshot, error) {
	for attempt := 1; ; attempt++ {
		// What an attempt did fetch is kept: the next one fetches only
		// what failed, so no lease is generated twice; on failure the
		// ledger, which saw every lease generated, revokes them.
		snap, err := st.resolveOnce(ctx, srcs, have)
		if err == nil {
			st.trouble.answered(st.log, time.Now())
			return snap, nil
		}
		have = snap
		if ctx.Err() == nil && (!fetch.IsTemporary(err) || fetch.IsTLS(err)) {
			return have, err
		}
		if ctx.Err() == nil {
			wait := fetch.Backoff(attempt, 500*time.Millisecond, 2, 10*time.Second, rand.Float64())
			st.trouble.failed(st.log, time.Now(), err, wait)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if errors.Is(err, fetch.ErrOrderNotReady) {
					return have, fmt.Errorf("not ready within the start-up timeout (%v): %w", timeout, err)
				}
				what := "server answering with errors"
				if fetch.IsUnreachable(err) {
					what = "server not reachable"
				}
				return have, fmt.Errorf("%s until the start-up timeout (%v): %w", what, timeout, err)
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
