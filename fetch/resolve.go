package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Resolver fetches sources into snapshots. It is safe for concurrent use.
type Resolver struct {
	Client      *Client
	Logger      *slog.Logger // nil: discard
	Concurrency int          // requests in flight at most; 0: 8
	// OnLease, when set, is called for every lease generated, as soon as
	// its answer is in (from the resolving goroutines, concurrently): the
	// caller owns every lease (in scaivault-run, the watch.Ledger), also
	// those of a Resolve that fails, and one whose answer Generate found
	// unusable (only its id is known; it is not in the snapshot).
	OnLease func(Source, *Lease)
}

func (r *Resolver) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r.Logger
}

func (r *Resolver) limit() int {
	if r.Concurrency <= 0 {
		return 8
	}
	return r.Concurrency
}

// Resolve fetches every source of srcs that have lacks (have may be nil) and
// returns a new Snapshot holding have's entries plus the new ones.
//
// Current static secrets are read with one BatchRead call (the client splits
// it into chunks of 100); versioned ones with one Read each; each distinct
// dynamic source is one Generate, each PKI source one Issue, each ACME
// source one ObtainACME (which reuses an order where it can), each list one
// List; all of it concurrently, at most Concurrency requests at a time.
//
// Every error is collected and returned joined, sorted, each naming its
// source. On error the snapshot is still returned: have's entries plus
// everything that was fetched, leases included. Resolve revokes nothing:
// a caller that retries passes that snapshot back as have, so that only
// what failed is fetched again (no lease is generated twice); one that
// gives up has the leases revoked by their owner (OnLease saw each).
func (r *Resolver) Resolve(ctx context.Context, srcs []Source, have *Snapshot) (*Snapshot, error) {
	run := r.fetchAll(ctx, srcs, have)
	if len(run.errs) == 0 {
		return run.out, nil
	}
	return run.out, joinSorted(run.errs)
}

// fetchAll fetches every source of srcs that have lacks, concurrently.
func (r *Resolver) fetchAll(ctx context.Context, srcs []Source, have *Snapshot) *resolveRun {
	run := &resolveRun{r: r, out: have.clone(), sem: make(chan struct{}, r.limit())}
	var batch []string
	seen := map[Source]bool{}
	for _, src := range srcs {
		if seen[src] || have.Has(src) {
			continue
		}
		seen[src] = true
		if src.Kind == Static && src.Version == 0 {
			batch = append(batch, src.Path)
			continue
		}
		run.spawn(ctx, src)
	}
	if len(batch) > 0 {
		run.wg.Add(1)
		go run.batch(ctx, batch)
	}
	run.wg.Wait()
	return run
}

// joinSorted joins errors in a stable order.
func joinSorted(errs []error) error {
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// resolveRun is the state of one Resolve call.
type resolveRun struct {
	r   *Resolver
	sem chan struct{}
	wg  sync.WaitGroup

	mu   sync.Mutex
	out  *Snapshot
	errs []error
}

func (run *resolveRun) fail(err error) {
	run.mu.Lock()
	run.errs = append(run.errs, err)
	run.mu.Unlock()
}

// acquire takes a slot of the concurrency limit, or fails when ctx ends.
func (run *resolveRun) acquire(ctx context.Context) error {
	select {
	case run.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (run *resolveRun) release() { <-run.sem }

// spawn fetches one source that is not a current static secret.
func (run *resolveRun) spawn(ctx context.Context, src Source) {
	run.wg.Add(1)
	go func() {
		defer run.wg.Done()
		if err := run.acquire(ctx); err != nil {
			run.fail(fmt.Errorf("%s: %w", describe(src), err))
			return
		}
		defer run.release()
		// The client's errors name the operation and its source already.
		if err := run.fetch(ctx, src); err != nil {
			run.fail(&SourceError{Source: src, Err: err})
		}
	}()
}

// SourceError is the failure to fetch one source. Its message is its
// cause's, which names the operation and the source; callers that know who
// asked for the source (variables, templates) use Source to say so.
type SourceError struct {
	Source Source
	Err    error
}

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// describe names a source in a resolve error: `secret "app/x"`,
// `secret "app/x" version 3`, `dynamic e/r ttl=1h0m0s`, `pki …`, `list "app/"`.
// Describe names the source as errors and logs do: `secret "app/db"`,
// `list "app/"`, or the reference.
func (s Source) Describe() string { return describe(s) }

func describe(src Source) string {
	switch src.Kind {
	case Static:
		if src.Version > 0 {
			return fmt.Sprintf("secret %q version %d", src.Path, src.Version)
		}
		return fmt.Sprintf("secret %q", src.Path)
	case List:
		return fmt.Sprintf("list %q", src.Path)
	}
	return src.String()
}

func (run *resolveRun) fetch(ctx context.Context, src Source) error {
	c := run.r.Client
	switch src.Kind {
	case Static:
		sec, err := c.Read(ctx, src.Path, ReadOptions{Version: src.Version})
		if err != nil {
			return err
		}
		run.mu.Lock()
		run.out.Secrets[src] = sec
		run.mu.Unlock()
	case Dynamic:
		l, err := c.Generate(ctx, src.Engine, src.Role, src.TTL)
		if l != nil && run.r.OnLease != nil {
			// Also a lease whose answer was unusable: its owner revokes it.
			run.r.OnLease(src, l)
		}
		if err != nil {
			return err
		}
		run.mu.Lock()
		run.out.Leases[src] = l
		run.mu.Unlock()
		run.r.logger().Debug("generated lease", "lease", l.LeaseID, "engine", src.Engine, "role", src.Role)
	case PKI:
		cert, err := c.Issue(ctx, src.PKIRole, src.IssueRequest())
		if err != nil {
			return err
		}
		run.mu.Lock()
		run.out.Certs[src] = cert
		run.mu.Unlock()
	case ACME:
		return run.fetchACME(ctx, src)
	case List:
		entries, err := c.List(ctx, src.Path)
		if err != nil {
			return err
		}
		run.mu.Lock()
		run.out.Lists[src] = entries
		run.mu.Unlock()
	default:
		return fmt.Errorf("unknown source kind %d", src.Kind)
	}
	return nil
}

// batch reads the current versions of paths with one BatchRead call.
func (run *resolveRun) batch(ctx context.Context, paths []string) {
	defer run.wg.Done()
	if err := run.acquire(ctx); err != nil {
		run.fail(fmt.Errorf("read %s: %w", pathSummary(paths), err))
		return
	}
	defer run.release()
	secrets, errs, err := run.r.Client.BatchRead(ctx, paths)
	if err != nil {
		run.fail(fmt.Errorf("%s: %w", pathSummary(paths), err))
		return
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	for _, p := range paths {
		src := StaticSource(p, 0)
		if e := errs[p]; e != nil {
			run.errs = append(run.errs, &SourceError{Source: src, Err: fmt.Errorf("%s: %w", describe(src), e)})
		} else if sec := secrets[p]; sec != nil {
			run.out.Secrets[src] = sec
		} else {
			run.errs = append(run.errs, fmt.Errorf("%s: missing from the batch-read answer", describe(src)))
		}
	}
}

// pathSummary names a few of paths for an error about all of them.
func pathSummary(paths []string) string {
	const show = 3
	q := make([]string, 0, show)
	for _, p := range paths[:min(show, len(paths))] {
		q = append(q, fmt.Sprintf("%q", p))
	}
	s := strings.Join(q, ", ")
	if len(paths) > show {
		s += fmt.Sprintf(" and %d more", len(paths)-show)
	}
	if len(paths) == 1 {
		return "secret " + s
	}
	return "secrets " + s
}

// fetchACME obtains the certificate of an ACME source: an order of the
// account for those domains, reused or placed (Client.ObtainACME).
func (run *resolveRun) fetchACME(ctx context.Context, src Source) error {
	domains, challenge := src.ACMEOrder()
	o, created, err := run.r.Client.ObtainACME(ctx, src.Account, domains, challenge)
	if err != nil {
		return err
	}
	cert := CertOf(o)
	run.mu.Lock()
	run.out.Certs[src] = cert
	run.mu.Unlock()
	how := "reused"
	if created {
		how = "created"
	}
	run.r.logger().Info("ACME certificate", "order", o.ID, "order_is", how, "account", src.Account,
		"domains", strings.Join(domains, ","), "serial", cert.SerialNumber, "expires_at", cert.ExpiresAt)
	return nil
}
