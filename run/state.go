package run

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/watch"
)

// The state file (--state-file, DESIGN.md "State across restarts"). After
// each successful resolution (the start-up gate's, each change the
// refresher applied, a poll that confirmed every value) and each lease
// entered (from the first one the start-up generates: before a resolution
// the file names it as pending, state_doc.go), renewed or revoked, what
// the child runs on is written, encrypted, by one
// writer goroutine: the callers only hand over a pointer and never wait
// for the disk, so a write never delays acting on a change. At start the
// previous run's file is read: its leases are reused or revoked
// (state_reuse.go) and, when the server cannot be reached, the child may
// start from it (state_fallback.go). A file that cannot be used (wrong
// key, truncated, corrupt, tampered with, another configuration) is left
// alone with a warning until this run has resolved everything itself.
//
// The file is held with a lock on FILE.lock for the life of the run (as
// --pid-file's): a second scaivault-run given the same file neither reads
// nor writes it.

// Defaults of the state options.
const (
	DefaultFallbackAfter  = 5 * time.Second
	DefaultFallbackMaxAge = 24 * time.Hour
	// confirmEvery: a poll that finds nothing new moves the state's
	// resolved_at on at most this often (a rewrite of the file).
	confirmEvery = time.Minute
	// writeDelay is how long a write waits after what woke it: the act
	// on a change (a restart, a reload) goes first, not beside the
	// encryption and the fsyncs, and a burst of changes is one write.
	writeDelay = 50 * time.Millisecond
	// maxStateRetry bounds the backoff between attempts to write the
	// file after a failure.
	maxStateRetry = 30 * time.Second
)

// stateRun is the state file of one run; nil without --state-file (every
// method of a nil *stateRun does nothing).
type stateRun struct {
	path    string
	fileTag string   // of the as=file directories of runs on this file (stateTag)
	dir     *os.Root // the state file's directory, held (see openState)
	base    string   // the state file's name in dir
	key     *statefile.Key
	lock    *os.File
	log     *slog.Logger
	ledger  *watch.Ledger
	fp      string
	pid     int
	opts    stateOptions

	// prev is the previous run's state when it may be used: it decrypted,
	// authenticated, and belongs to this configuration. reuse tracks
	// which of its leases are settled (state_reuse.go). prev is not
	// changed once read (the writer reads it too); reuse is owned by the
	// start-up gate, then by the recovery (one goroutine at a time).
	prev  *statefile.Doc
	reuse map[string]bool
	// keep: the file is there but cannot be used; it is not written
	// until this run has resolved everything.
	keep bool
	// last is the leases of the file as on disk (the previous run's, or
	// what this run wrote before its first resolution): a write that
	// would change none of them is not made. Owned by the writer.
	last []statefile.Lease

	mu      sync.Mutex
	rec     *record         // what the file should hold; nil: nothing this run has resolved
	carried *record         // a fallback start: what the child was given of the previous state (state_record.go)
	dirty   bool            // rec, or the leases, changed since the last write
	revoked map[string]bool // lease ids this run revoked (or found gone)

	// writes and writeFails count the file's writes (the status
	// endpoint's scaivault_run_state_writes_total).
	writes, writeFails atomic.Uint64

	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	started bool
}

type stateOptions struct {
	fallbackAfter, maxAge time.Duration
}

// openState locks and reads the state file of opts. A bad key file or a
// lock that cannot be made is an error (the run's configuration is wrong);
// a file that cannot be used is only a warning.
func openState(opts Options, log *slog.Logger, plan *template.Plan, ledger *watch.Ledger, u *template.FileUser) (*stateRun, error) {
	if opts.StateFile == "" {
		return nil, nil
	}
	key, open, err := statefile.LoadKey(opts.StateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--state-key-file %s: %w", opts.StateKeyFile, err)
	}
	if open {
		log.Warn("the state key file is readable by others than its owner", "file", opts.StateKeyFile)
	}
	path, err := filepath.Abs(opts.StateFile)
	if err != nil {
		return nil, fmt.Errorf("--state-file %s: %w", opts.StateFile, err)
	}
	// Every step by name in the held directory: with --user a child that
	// renames a directory on the path cannot redirect root's writes.
	dir, err := template.OpenDir(filepath.Dir(path), u)
	if err != nil {
		return nil, fmt.Errorf("--state-file %s: %w", opts.StateFile, err)
	}
	base := filepath.Base(path)
	lock, err := takeLock(dir, base+".lock")
	if errors.Is(err, unix.EWOULDBLOCK) {
		dir.Close()
		log.Warn("state file held by another running scaivault-run: this run neither reads nor writes it", "file", opts.StateFile)
		return nil, nil
	}
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("--state-file %s: lock: %w", opts.StateFile, err)
	}
	s := &stateRun{
		path: path, dir: dir, base: base, key: key, lock: lock, log: log, ledger: ledger, pid: os.Getpid(),
		fp:    statefile.Fingerprint(fingerprintLines(plan, opts.Templates)),
		reuse: map[string]bool{}, revoked: map[string]bool{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		opts: stateOptions{fallbackAfter: opts.FallbackAfter, maxAge: opts.FallbackMaxAge},
	}
	if s.opts.fallbackAfter <= 0 {
		s.opts.fallbackAfter = DefaultFallbackAfter
	}
	if s.opts.maxAge <= 0 {
		s.opts.maxAge = DefaultFallbackMaxAge
	}
	s.removeTemps()
	// The as=file directories of runs on this state file that were
	// killed before their cleanup (their secrets in plaintext, in tmpfs
	// that counts against the pod's memory): no live run uses them, as
	// we hold the lock (--once runs, which drop it at the exec, do not
	// tag theirs).
	s.fileTag = stateTag(path)
	if removed, err := template.RemoveStaleFileDirs(os.Getenv, s.fileTag); err != nil {
		log.Warn("the secret files of a run on this state file that did not exit cleanly could not all be removed", "error", err)
	} else if len(removed) > 0 {
		log.Info("secret files of a run on this state file that did not exit cleanly removed", "dirs", removed)
	}
	s.prev = s.read(opts.StateFile)
	if s.prev != nil {
		s.last = s.prev.Leases
	}
	ledger.SetOnChange(s.poke)
	return s, nil
}

// stateTag names the as=file directories of the runs on the state file
// at path (template.NewTaggedFileDir): 12 hex digits of its path's hash.
func stateTag(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:6])
}

// read reads the previous run's state; nil when there is none to use,
// with the reason logged.
func (s *stateRun) read(name string) *statefile.Doc {
	doc, err := statefile.ReadIn(s.dir, s.base, s.key)
	var de *statefile.DecodeError
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.log.Info("no state file yet; it is written once everything is resolved", "file", name)
		return nil
	case errors.As(err, &de):
		s.keep = true
		s.log.Warn("state file not used: "+de.Error()+"; it is left as it is until this run has resolved everything", "file", name)
		return nil
	case err != nil:
		s.keep = true
		s.log.Warn("state file not used: it cannot be read; it is left as it is until this run has resolved everything", "file", name, "error", err)
		return nil
	case doc.Fingerprint != s.fp:
		s.keep = true
		s.log.Warn("state file not used: written for another configuration (other references or templates); it is left as it is until this run has resolved everything, and its leases run out on their ttl", "file", name)
		return nil
	}
	live := 0
	for _, l := range doc.Leases {
		if !l.Revoked {
			live++
		}
	}
	age := any(time.Since(doc.ResolvedAt).Round(time.Second))
	if doc.ResolvedAt.IsZero() {
		age = "none: written by a start-up that resolved nothing"
	}
	s.log.Info("state file read", "file", name, "age", age,
		"clean_exit", doc.Exit != nil, "secrets", len(doc.Secrets), "leases", live, "certificates", len(doc.Certs))
	return doc
}

// removeTemps removes the temp files a crash left beside the state file
// (it is ours: we hold the lock).
func (s *stateRun) removeTemps() {
	left, _ := fs.Glob(s.dir.FS(), statefile.TempPattern(s.base))
	for _, f := range left {
		s.dir.Remove(f)
	}
}

// start starts the writer goroutine; close joins it.
func (s *stateRun) start() {
	if s == nil || s.started {
		return
	}
	s.started = true
	go s.run()
}

// poke wakes the writer (a lease entered or renewed: the ledger's
// OnChange; a lease revoked). Before the first resolution too: a lease
// is in the file as soon as it exists. It never blocks.
func (s *stateRun) poke() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
	s.wakeWriter()
}

// starting: this run has resolved nothing yet (no child runs).
func (s *stateRun) starting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec == nil
}

// wakeWriter wakes the writer without blocking; it takes no lock.
func (s *stateRun) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run writes the state whenever it changed, retrying a failed write
// with backoff, until close.
func (s *stateRun) run() {
	defer close(s.done)
	var retry <-chan time.Time
	fails := 0
	for {
		select {
		case <-s.wake:
			if s.starting() {
				break // a lease generated at start-up: on disk at once, no child to act for
			}
			// What woke us is being acted on (a restart, a reload): the
			// write comes after it, and takes what follows with it.
			t := time.NewTimer(writeDelay)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
				return
			}
		case <-retry:
		case <-s.quit:
			return
		}
		wrote, err := s.write(nil)
		if err != nil {
			fails++
			wait := watch.RetryBackoff(fails, maxStateRetry, rand.Float64())
			s.log.Warn("writing the state file failed; retrying", "file", s.path, "error", err, "retry_in", wait.Round(time.Millisecond), "attempt", fails)
			retry = time.After(wait)
			continue
		}
		switch {
		case fails > 0:
			s.log.Info("state file written", "file", s.path, "attempts", fails+1)
		case wrote:
			s.log.Debug("state file written", "file", s.path)
		}
		fails, retry = 0, nil
	}
}

// write writes the record if it is dirty (or exit is set), built now.
func (s *stateRun) write(exit *exitInfo) (wrote bool, err error) {
	s.mu.Lock()
	rec, dirty := s.rec, s.dirty
	s.dirty = false
	revoked := copySet(s.revoked)
	s.mu.Unlock()
	if !dirty && exit == nil {
		return false, nil
	}
	var doc *statefile.Doc
	switch {
	case rec != nil:
		doc = s.build(rec, s.ledger.Held(), revoked, exit)
	default:
		doc = s.pendingDoc(s.ledger.Held(), revoked, exit)
	}
	if doc == nil {
		return false, nil
	}
	data, err := statefile.Encode(doc, s.key)
	if err == nil {
		err = statefile.WriteIn(s.dir, s.base, data)
	}
	if err != nil {
		s.writeFails.Add(1)
	} else {
		s.writes.Add(1)
	}
	if err == nil && rec == nil {
		s.last = doc.Leases
	}
	if err != nil && exit == nil {
		s.mu.Lock()
		s.dirty = s.dirty || rec == s.rec
		s.mu.Unlock()
	}
	return err == nil, err
}

func copySet(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// noteRevoked records leases this run revoked or found gone.
func (s *stateRun) noteRevoked(ids ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		s.revoked[id] = true
	}
	s.mu.Unlock()
	s.poke()
}

// exitInfo is what the final write says of the exit.
type exitInfo struct {
	held    []watch.Held    // the table as it was before the revocations
	failed  map[string]bool // leases whose revocation failed
	revoked bool            // leases were revoked (not --no-revoke)
}

// close stops the writer, then writes the file one last time with the
// mark of this (clean) exit: each lease revoked or not. It releases the
// lock. exit nil: leave the file as the writer left it (an exec with
// --once: the command runs on the leases).
func (s *stateRun) close(exit *exitInfo) {
	if s == nil {
		return
	}
	s.stop()
	if wrote, err := s.write(exit); err != nil {
		s.log.Warn("writing the state file at exit failed", "file", s.path, "error", err)
	} else if wrote {
		s.log.Debug("state file written at exit", "file", s.path, "leases_revoked", exit != nil && exit.revoked && len(exit.failed) == 0)
	}
	s.lock.Close() // the lock file stays beside the state file
	s.dir.Close()
}

// flush writes what is pending now, on the caller's goroutine, and stops
// the writer; the lock stays held (for --once: the exec'd command inherits
// nothing, the kernel drops the lock at exec). close may follow.
func (s *stateRun) flush() {
	if s == nil {
		return
	}
	s.stop()
	if _, err := s.write(nil); err != nil {
		s.log.Warn("writing the state file failed", "file", s.path, "error", err)
	}
}

// stop stops the writer goroutine, once.
func (s *stateRun) stop() {
	if s.started {
		s.started = false
		close(s.quit)
		<-s.done
	}
}

// cleanupTimeout is CleanupTimeout or its default.
func (o *Options) cleanupTimeout() time.Duration {
	if o.CleanupTimeout <= 0 {
		return DefaultCleanupTimeout
	}
	return o.CleanupTimeout
}

// onWatchState is the watcher's OnState: the status board's, and the
// state file's confirmations.
func (st *startup) onWatchState() func(*watch.State) {
	status, s := st.status.onState(), st.state
	if s == nil {
		return status
	}
	return func(ws *watch.State) {
		if status != nil {
			status(ws)
		}
		s.watchState(ws)
	}
}

// fingerprintLines are the lines of the configuration's fingerprint: one
// per reference (scheme, source with its parameters, key, as=file or
// not), import and template (source and destination). Variable names are
// not in it (renaming one changes no value), nor are flags such as
// --poll-interval.
func fingerprintLines(plan *template.Plan, specs []template.Spec) []string {
	var out []string
	for _, u := range plan.Uses() {
		if u.Ref == nil {
			out = append(out, "import "+u.Source.Path)
			continue
		}
		r := u.Ref
		out = append(out, fmt.Sprintf("ref %s %s key=%q file=%v", schemeOf(r.Kind), r.Source().String(), r.Key, r.AsFile))
	}
	for _, sp := range specs {
		out = append(out, fmt.Sprintf("template %q %q", sp.Src, sp.Dst))
	}
	return out
}

func schemeOf(k fetch.Kind) string {
	switch k {
	case fetch.Static:
		return fetch.SchemeStatic
	case fetch.Dynamic:
		return fetch.SchemeDynamic
	case fetch.PKI:
		return fetch.SchemePKI
	case fetch.ACME:
		return fetch.SchemeACME
	}
	return k.String()
}
