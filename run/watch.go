package run

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/mask"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/watch"
)

// Watching and acting (DESIGN.md): a watch.Watcher keeps the snapshot
// fresh; the refresher turns each of its Updates into files and an
// environment and, when the child sees a difference, into a Change for the
// Supervisor. It answers every Update (Commit or Reject) so that watcher
// and refresher agree on what the child runs on, and it releases the
// leases an update superseded to the watch.Ledger once the child runs on
// their replacements (Change.Applied), or at once when the child never saw
// them. The ledger alone revokes.

// watching is the watcher, the refresher and the token-file watch of one
// supervised run; stop joins them.
type watching struct {
	r      *refresher
	client *fetch.Client // closed by stop when it is not the start-up client
	own    bool
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	lost *watch.LostError // the first loss, with ExitOnLost
}

// startWatching starts watching what the child runs on; it returns nil
// when nothing needs watching. changes goes to the Supervisor; stopRun
// cancels the Supervisor's context (--exit-on-lost); masks, when set, gets
// every new value before the child is told (--mask).
func (st *startup) startWatching(ctx context.Context, changes chan<- Change, stopRun func(), masks *mask.Set) *watching {
	r := st.newRefresher(changes)
	r.masks = masks
	used := r.initial(st.out)
	if len(used) == 0 {
		return nil
	}
	client := st.runningClient()
	r.resolver = &fetch.Resolver{Client: client, Logger: st.log, OnLease: st.ledger.Add}
	ctx, cancel := context.WithCancel(ctx)
	wt := &watching{r: r, client: client, own: client != st.client, cancel: cancel}
	cfg := watch.WatchConfig{
		Client:       client,
		PollInterval: st.opts.PollInterval,
		SafetyPoll:   st.opts.EventsSafetyPoll,
		Ledger:       st.ledger,
		Logger:       st.log,
		OnState:      st.onWatchState(),
	}
	if st.opts.ExitOnLost {
		cfg.OnLost = func(e *watch.LostError) {
			wt.mu.Lock()
			first := wt.lost == nil
			if first {
				wt.lost = e
			}
			wt.mu.Unlock()
			if first {
				st.log.Error("stopping: a secret was lost and --exit-on-lost is set", "error", e)
				stopRun()
			}
		}
	}
	wt.wg.Go(func() { st.ledger.Run(ctx) })
	if st.fallback != nil {
		// On the state file: the watcher starts once the server answered
		// and everything was re-resolved (state_fallback.go).
		st.status.setFallback(st.fallback, cfg.PollInterval)
		wt.wg.Go(func() { st.recoverThenWatch(ctx, r, cfg, &wt.wg) })
	} else {
		r.w = watch.NewWatcher(cfg, r.snap, used)
		wt.wg.Go(func() { r.w.Run(ctx) })
		wt.wg.Go(func() { r.run(ctx) })
	}
	wt.wg.Go(func() {
		if err := client.WatchTokenFile(ctx); err != nil {
			st.log.Warn("token file changes are noticed at the next request only", "error", err)
		}
	})
	return wt
}

// stop ends the watching goroutines and waits for them.
func (wt *watching) stop() {
	if wt == nil {
		return
	}
	wt.cancel()
	wt.wg.Wait()
	if wt.own {
		wt.client.Close()
	}
}

// runningClient is the client of the watching goroutines: the start-up
// client without its retries within a call (the watcher retries on its
// own schedule and logs an outage once a minute at most; the client would
// retry within each call and warn on every retry). It shares the start-up
// client's connections, credential and 429 gate: a Retry-After seen while
// running holds back the revocations on exit too.
func (st *startup) runningClient() *fetch.Client {
	c, err := st.client.WithRetry(fetch.RetryPolicy{MaxRetries: -1})
	if err != nil { // not expected: the policy is valid
		st.log.Debug("no separate client for watching", "error", err)
		return st.client
	}
	return c
}

// lostErr is the loss that stopped the run (ExitOnLost), or nil.
func (wt *watching) lostErr() *watch.LostError {
	if wt == nil {
		return nil
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.lost
}

// refresher renders, writes and compares on each Update. It is owned by
// its run goroutine (and, before that, by the goroutine that made it).
type refresher struct {
	log      *slog.Logger
	w        *watch.Watcher // nil while a fallback start recovers (state_fallback.go): no watcher to answer
	state    *stateRun      // --state-file: told of each change applied
	ledger   *watch.Ledger
	resolver *fetch.Resolver
	plan     *template.Plan
	set      *template.Set
	topts    template.Options
	files    *template.FileDir
	stdout   io.Writer
	changes  chan<- Change
	masks    *mask.Set                // --mask or template commands: new values are added before they are printed
	specs    map[string]template.Spec // the templates by destination: what to do when one changed

	snap    *fetch.Snapshot  // what the child runs on, or will once pending changes are applied
	env     []string         // the environment of snap
	printed map[int][]byte   // the last output of each template written to stdout, by index
	pending *pendingWrite    // an update whose files are not all written yet
	retry   <-chan time.Time // the next attempt to write them; nil: none
}

func (st *startup) newRefresher(changes chan<- Change) *refresher {
	return &refresher{
		log: st.log, ledger: st.ledger, resolver: st.resolver, plan: st.plan, set: st.set, topts: st.opts.TemplateOptions, state: st.state,
		files: st.files, stdout: st.opts.stdout(), changes: changes,
		snap: st.snap, env: template.Environ(st.vars), printed: map[int][]byte{},
		specs: specsByDst(st.opts.Templates),
	}
}

func specsByDst(specs []template.Spec) map[string]template.Spec {
	m := make(map[string]template.Spec, len(specs))
	for _, sp := range specs {
		m[sp.Dst] = sp
	}
	return m
}

// fileActions sorts what changed by what is done about it: the commands and
// reload signals of templates that have one, whether anything without an
// action of its own changed (the run's reload signal, or a restart), and
// the waits of the templates that have one, combined (nil: none), and
// whether any file changed has none (--wait's).
func fileActions(specs map[string]template.Spec, dsts []string, asFiles bool) (cmds []Command, sigs []syscall.Signal, plain bool, wait *template.Wait, dflt bool) {
	plain, dflt = asFiles, asFiles
	for _, d := range dsts {
		sp := specs[d]
		switch {
		case sp.Command != nil:
			cmds = append(cmds, Command{Dst: d, Argv: sp.Command, Timeout: sp.CommandTimeout})
		case sp.ReloadSignal != 0:
			if !slices.Contains(sigs, sp.ReloadSignal) {
				sigs = append(sigs, sp.ReloadSignal)
			}
		default:
			plain = true
		}
		if sp.Wait == nil {
			dflt = true
			continue
		}
		if wait == nil {
			w := *sp.Wait
			wait = &w
		} else {
			*wait = combineWait(*wait, *sp.Wait)
		}
	}
	return cmds, sigs, plain, wait, dflt
}

// initial finds the sources the child runs on (those of the environment
// and those the templates read, from the start-up gate's render) and keeps
// only them in the snapshot.
func (r *refresher) initial(out []template.Rendered) []fetch.Source {
	for i, o := range out {
		if o.Spec.Dst == template.Stdout {
			r.printed[i] = o.Data
		}
	}
	used := r.usedBy(out)
	trimmed := r.snap.Only(used)
	// A lease that only a placeholder pass of the start-up render asked
	// for (a branch the final render did not take) is used by nothing.
	r.ledger.Release(goneLeases(r.snap, trimmed), watch.Unused, 0)
	r.snap = trimmed
	return used
}

// usedBy is every source the environment needs and the templates read.
func (r *refresher) usedBy(out []template.Rendered) []fetch.Source {
	used := r.plan.Sources()
	for _, o := range out {
		for _, src := range o.Used {
			if !slices.Contains(used, src) {
				used = append(used, src)
			}
		}
	}
	return used
}

// run applies updates until the watcher stops.
func (r *refresher) run(ctx context.Context) {
	updates := r.w.Updates()
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				return
			}
			r.apply(ctx, u)
		case <-r.retry:
			r.flush(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// apply re-renders the templates against the update's snapshot
// (resolving what they newly need) and rebuilds the environment; commit
// then writes the files and tells the supervisor what the child sees
// change. When it cannot render or build, the update is rejected and the
// child keeps running on what it has; a failed write is not a rejection
// (see pendingWrite).
func (r *refresher) apply(ctx context.Context, u watch.Update) {
	out, full, err := r.set.RenderAll(ctx, r.resolver.Resolve, u.Snapshot)
	if err == nil {
		used := r.usedBy(out)
		snap := full.Only(used)
		var vars []template.EnvVar
		var writes []template.FileWrite
		if vars, writes, err = r.plan.Stage(snap, r.files); err == nil {
			r.commit(ctx, &pendingWrite{u: u, out: out, snap: snap, vars: vars, writes: writes}, used)
			// Leases this render resolved for a branch the final render
			// did not take: nothing uses them (the watcher releases what
			// it generated itself).
			r.ledger.Release(goneLeases(full, u.Snapshot, snap), watch.Unused, 0)
			return
		}
	}
	r.ledger.Release(goneLeases(full, u.Snapshot), watch.Unused, 0)
	if r.w != nil {
		r.w.Reject()
	}
	if ctx.Err() == nil {
		r.log.Error("cannot apply a change; the child keeps running on what it has",
			"reasons", u.Reasons, "error", err)
	}
}

// pendingWrite is an update the watcher was answered for whose files are
// not all written yet: a write failed (full disk, read-only mount, a
// removed directory), and it is retried with backoff. Until it succeeds
// the child runs on what it has, and no lease it or a file uses is
// released.
type pendingWrite struct {
	u      watch.Update
	out    []template.Rendered
	snap   *fetch.Snapshot
	vars   []template.EnvVar
	writes []template.FileWrite // the as=file files, written with the templates
	dsts   []string             // templates written by earlier attempts
	files  []string             // as=file variables written by earlier attempts
	// orphans: leases of older updates this one replaced before their
	// files were all written, that a file on disk may still hold.
	orphans []*fetch.Lease
	fails   int
}

// writeStep writes an update's files (a variable for a test to watch
// what the child can see the moment they are on disk).
var writeStep = template.WriteStep

// maxWriteRetry bounds the backoff between attempts to write files.
const maxWriteRetry = 30 * time.Second

// commit answers the watcher and writes the files, then sends the change.
func (r *refresher) commit(ctx context.Context, p *pendingWrite, used []fetch.Source) {
	if r.w != nil {
		r.w.Commit(p.snap, used)
	}
	if old := r.pending; old != nil {
		// A newer update replaces one whose files were never all written.
		// The child still runs on what the older one replaced, so its
		// deadline carries over, and what its attempts did write still
		// counts as changed. Leases only the older one held are used by
		// neither the child nor the newer update: when none of its
		// attempts wrote a file they are used by nothing and go at once;
		// otherwise a file on disk may hold them until the newer update's
		// files are written, and they go with what the child gives up.
		if !old.u.ActBy.IsZero() && (p.u.ActBy.IsZero() || old.u.ActBy.Before(p.u.ActBy)) {
			p.u.ActBy = old.u.ActBy
		}
		p.dsts, p.files = old.dsts, old.files
		orphans := goneLeases(old.snap, p.snap, r.snap)
		if len(old.dsts) == 0 && len(old.files) == 0 {
			r.ledger.Release(orphans, watch.Unused, 0)
			orphans = nil
		}
		p.orphans = append(old.orphans, orphans...)
	}
	r.pending = p
	r.flush(ctx)
}

// flush writes the pending update's files; on success the child is told
// (Change), on failure a retry is scheduled.
func (r *refresher) flush(ctx context.Context) {
	p := r.pending
	if r.masks != nil {
		// Before the files: a child that reads them on its own (a file
		// watcher) may print a new value before it is told of the change.
		conceal(r.masks, r.log, p.vars, p.out, p.snap)
	}
	files, dsts, err := writeStep(p.writes, r.toWrite(p.out), r.topts, r.stdout)
	p.files, p.dsts = union(p.files, files), union(p.dsts, dsts)
	if err != nil {
		p.fails++
		wait := watch.RetryBackoff(p.fails, maxWriteRetry, rand.Float64())
		r.log.Warn("writing files after a change failed; the child keeps running on what it has; retrying",
			"reasons", p.u.Reasons, "error", err, "retry_in", wait.Round(time.Millisecond), "attempt", p.fails)
		r.retry = time.After(wait)
		return
	}
	if p.fails > 0 {
		r.log.Info("files written after a change", "attempts", p.fails+1)
	}
	r.pending, r.retry = nil, nil
	template.MarkFilesChanged(p.vars, p.files)
	r.state.resolvedFor(r.plan, p.out, p.snap) // written off this goroutine
	r.send(ctx, p.u, p.snap, p.vars, p.dsts, p.orphans)
}

// send compares what the child runs on with snap and, when the child sees
// a difference, hands the supervisor a Change whose Applied releases the
// superseded leases.
func (r *refresher) send(ctx context.Context, u watch.Update, snap *fetch.Snapshot, vars []template.EnvVar, dsts []string, orphans []*fetch.Lease) {
	env := template.Environ(vars)
	envChanged := !slices.Equal(env, r.env)
	asFiles := slices.ContainsFunc(vars, func(v template.EnvVar) bool { return v.FileChanged })
	filesChanged := len(dsts) > 0 || asFiles
	reasons := append(slices.Clone(u.Reasons), changeDetails(r.env, env, dsts, vars)...)
	gone := r.ledger.Latest(append(goneLeases(r.snap, snap), orphans...)) // renewed times: the reload grace counts from them
	causes := changeCauses(r.snap, snap)
	r.snap, r.env = snap, env
	if !envChanged && !filesChanged {
		r.log.Debug("the change does not touch the child", "reasons", u.Reasons)
		r.ledger.Release(gone, watch.Superseded, 0)
		return
	}
	c := Change{Reasons: reasons, Causes: causes, ActBy: u.ActBy}
	c.Commands, c.Signals, c.FilesChanged, c.Wait, c.WaitAlso = fileActions(r.specs, dsts, asFiles)
	if envChanged {
		c.Env, c.EnvChanged, c.WaitAlso = env, true, true
	}
	if len(gone) > 0 {
		c.Applied = func() { r.ledger.Release(gone, watch.Superseded, 0) }
		if !envChanged {
			// Files only: a reload signal, and the child re-reads its files
			// in its own time; the old credentials stay valid a while.
			c.Applied = func() { r.ledger.Release(gone, watch.Superseded, reloadGrace(gone, time.Now())) }
		}
	}
	select {
	case r.changes <- c:
	case <-ctx.Done():
	}
}

// toWrite is what WriteAll gets: every file template (it leaves files
// with the same content alone), and the stdout ones whose output changed.
func (r *refresher) toWrite(out []template.Rendered) []template.Rendered {
	var w []template.Rendered
	for i, o := range out {
		if o.Spec.Dst == template.Stdout {
			if prev, ok := r.printed[i]; ok && string(prev) == string(o.Data) {
				continue
			}
			r.printed[i] = o.Data
		}
		w = append(w, o)
	}
	return w
}

// union is a with the elements of b it lacks appended.
func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

// changeDetails names what the child sees change: variables (names only),
// as=file files, templates written.
func changeDetails(oldEnv, newEnv []string, dsts []string, vars []template.EnvVar) []string {
	var out []string
	was, now := envMap(oldEnv), envMap(newEnv)
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if v, ok := was[name]; !ok || v != now[name] {
			out = append(out, "variable "+name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(was)) {
		if _, ok := now[name]; !ok {
			out = append(out, "variable "+name+" removed")
		}
	}
	for _, v := range vars {
		if v.FileChanged {
			out = append(out, "file of "+v.Name)
		}
	}
	for _, d := range dsts {
		out = append(out, "template "+d)
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// goneLeases are the leases of before that none of after holds.
func goneLeases(before *fetch.Snapshot, after ...*fetch.Snapshot) []*fetch.Lease {
	if before == nil {
		return nil
	}
	keep := map[string]bool{}
	for _, a := range after {
		if a == nil {
			continue
		}
		for _, l := range a.Leases {
			keep[l.LeaseID] = true
		}
	}
	var gone []*fetch.Lease
	for _, l := range before.Leases {
		if !keep[l.LeaseID] {
			gone = append(gone, l)
		}
	}
	return gone
}

// maxReloadGrace bounds how long superseded leases outlive a reload signal.
const maxReloadGrace = 30 * time.Second

// reloadGrace is how long to keep superseded leases after a reload signal:
// half the shortest remaining life among them, at most maxReloadGrace.
func reloadGrace(leases []*fetch.Lease, now time.Time) time.Duration {
	grace := maxReloadGrace
	for _, l := range leases {
		grace = min(grace, max(l.ExpiresAt.Sub(now)/2, 0))
	}
	return grace
}

// changeCauses are the kinds of entries that differ between two
// snapshots, in a fixed order: "secret", "lease", "certificate", "list".
func changeCauses(before, after *fetch.Snapshot) []string {
	if before == nil || after == nil {
		return nil
	}
	var out []string
	if differ(before.Secrets, after.Secrets, sameSecret) {
		out = append(out, "secret")
	}
	if differ(before.Leases, after.Leases, func(a, b *fetch.Lease) bool { return a.LeaseID == b.LeaseID }) {
		out = append(out, "lease")
	}
	if differ(before.Certs, after.Certs, func(a, b *fetch.Cert) bool { return a.SerialNumber == b.SerialNumber }) {
		out = append(out, "certificate")
	}
	if differ(before.Lists, after.Lists, func(a, b []fetch.ListEntry) bool { return slices.Equal(a, b) }) {
		out = append(out, "list")
	}
	return out
}

// differ reports whether two maps of a snapshot hold different sources or
// entries that same calls different.
func differ[V any](a, b map[fetch.Source]V, same func(V, V) bool) bool {
	if len(a) != len(b) {
		return true
	}
	for src, va := range a {
		vb, ok := b[src]
		if !ok || !same(va, vb) {
			return true
		}
	}
	return false
}

// sameSecret: the same version with the same data and metadata (a new
// version with the same data is no change).
func sameSecret(a, b *fetch.Secret) bool {
	return a == b || (reflect.DeepEqual(a.Data, b.Data) && reflect.DeepEqual(a.Metadata, b.Metadata))
}
