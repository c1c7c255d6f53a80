package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

const (
	// batchChunk is the most paths one batch-read request may carry.
	batchChunk = 100
	// batchConcurrency bounds the batch-read chunks in flight at once.
	batchConcurrency = 8
	// listPageMax is the page size List asks for: the server's maximum.
	listPageMax = 1000
)

// ReadOptions selects a version and makes a read conditional.
type ReadOptions struct {
	Version     int // 0: current
	IfNoneMatch int // 0: unconditional; else ErrNotModified when unchanged
}

func secretRoute(path string) string { return "/v1/secrets/" + EscapePath(path) }

// Read reads a secret, the current version or opt.Version. With
// opt.IfNoneMatch it returns an error matching ErrNotModified when the
// version the server would return is that one.
func (c *Client) Read(ctx context.Context, path string, opt ReadOptions) (*Secret, error) {
	op := fmt.Sprintf("read secret %q", path)
	if opt.Version != 0 {
		op += fmt.Sprintf(" version %d", opt.Version)
	}
	if err := ValidatePath(path); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if opt.Version < 0 || opt.IfNoneMatch < 0 {
		return nil, fmt.Errorf("%s: negative version", op)
	}
	cl := &call{method: http.MethodGet, route: secretRoute(path), pattern: "/v1/secrets/{path}"}
	if opt.Version > 0 {
		cl.query = url.Values{"version": {strconv.Itoa(opt.Version)}}
	}
	if opt.IfNoneMatch > 0 {
		cl.header = http.Header{"If-None-Match": {`"` + strconv.Itoa(opt.IfNoneMatch) + `"`}}
	}
	resp, err := c.send(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.status == http.StatusNotModified {
		return nil, fmt.Errorf("%s: %w", op, ErrNotModified)
	}
	var s Secret
	if err := decodeJSON(resp.body, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	normalizeSecret(&s)
	return &s, nil
}

// normalizeSecret gives a secret whose answer left metadata out (or sent
// null) the empty object the contract promises, so that callers comparing
// two reads see no change between the two forms of "none".
func normalizeSecret(s *Secret) {
	if s.Metadata == nil {
		s.Metadata = map[string]any{}
	}
}

// BatchRead reads paths in chunks of at most 100, chunks in parallel.
// Per-path failures are in errs (as *APIError); err is for the call itself.
// Duplicate paths are read once. An invalid path is not sent: its entry in
// errs is a validation_error, as the server would give.
func (c *Client) BatchRead(ctx context.Context, paths []string) (secrets map[string]*Secret, errs map[string]error, err error) {
	secrets, errs = make(map[string]*Secret), make(map[string]error)
	var valid []string
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		if verr := ValidatePath(p); verr != nil {
			errs[p] = &APIError{StatusCode: http.StatusBadRequest, Code: CodeValidation, Message: verr.Error()}
			continue
		}
		valid = append(valid, p)
	}
	var chunks [][]string
	for i := 0; i < len(valid); i += batchChunk {
		chunks = append(chunks, valid[i:min(i+batchChunk, len(valid))])
	}
	results := make([]BatchReadResult, len(chunks))
	err = runBounded(ctx, len(chunks), batchConcurrency, func(ctx context.Context, i int) error {
		cl := &call{method: http.MethodPost, route: "/v1/secrets/batch-read", pattern: "/v1/secrets/batch-read", body: BatchReadRequest{Paths: chunks[i]}}
		return c.getJSON(ctx, cl, &results[i])
	})
	if err != nil {
		return nil, nil, fmt.Errorf("batch read %d paths: %w", len(valid), err)
	}
	for i, chunk := range chunks {
		mergeBatch(chunk, &results[i], secrets, errs)
	}
	return secrets, errs, nil
}

// mergeBatch copies one chunk's answer into the result maps, keeping only the
// paths asked for; a path the server left out becomes an internal_error.
func mergeBatch(chunk []string, r *BatchReadResult, secrets map[string]*Secret, errs map[string]error) {
	for _, p := range chunk {
		if s := r.Secrets[p]; s != nil {
			normalizeSecret(s)
			secrets[p] = s
		} else if e, ok := r.Errors[p]; ok {
			errs[p] = ErrorFromCode(e.Code, e.Message)
		} else {
			errs[p] = ErrorFromCode(CodeInternal, "path missing from the batch-read answer")
		}
	}
}

// runBounded runs fn for 0..n-1, at most limit at once. The first error
// cancels the others and is returned.
func runBounded(ctx context.Context, n, limit int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, limit)
	)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() {
					first = err
					if n > 1 {
						first = fmt.Errorf("chunk %d of %d: %w", i+1, n, err)
					}
					cancel()
				})
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// List returns every entry under prefix, following all pages. The walk is
// bounded: a server that says has_more without a cursor, repeats a cursor,
// or goes on past maxListPages pages or maxListEntries entries ends it with
// an error (none of these walks would end by itself).
func (c *Client) List(ctx context.Context, prefix string) ([]ListEntry, error) {
	var all []ListEntry
	cursor := ""
	seen := make(map[string]bool)
	for n := 1; ; n++ {
		page, err := c.ListPage(ctx, prefix, listPageMax, cursor)
		if err != nil {
			return nil, err
		}
		if len(page.Data) > maxListEntries-len(all) {
			return nil, fmt.Errorf("%s: more than %d entries (a limit of the client)", listOp(prefix), maxListEntries)
		}
		all = append(all, page.Data...)
		switch {
		case !page.HasMore:
			return all, nil
		case page.Cursor == nil || *page.Cursor == "":
			return nil, fmt.Errorf("%s: page %d of GET /v1/secrets says has_more without a cursor", listOp(prefix), n)
		case seen[*page.Cursor]:
			return nil, fmt.Errorf("%s: page %d of GET /v1/secrets repeats a cursor of an earlier page", listOp(prefix), n)
		case n >= maxListPages:
			return nil, fmt.Errorf("%s: more than %d pages of GET /v1/secrets (a limit of the client)", listOp(prefix), maxListPages)
		}
		cursor = *page.Cursor
		seen[cursor] = true
	}
}

func listOp(prefix string) string {
	if prefix == "" {
		return "list secrets"
	}
	return fmt.Sprintf("list secrets under %q", prefix)
}

// ListPage returns one page; limit 0 is the server default.
func (c *Client) ListPage(ctx context.Context, prefix string, limit int, cursor string) (*ListPage, error) {
	if limit < 0 {
		return nil, fmt.Errorf("%s: negative limit %d", listOp(prefix), limit)
	}
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page ListPage
	if err := c.getJSON(ctx, &call{method: http.MethodGet, route: "/v1/secrets", pattern: "/v1/secrets", query: q}, &page); err != nil {
		return nil, fmt.Errorf("%s: %w", listOp(prefix), err)
	}
	return &page, nil
}

// errBadName is a lease id, engine, role or CA id that cannot be one URL
// segment.
var errBadName = errors.New("must be non-empty and not . or ..")

func checkName(kind, s string) error {
	if s == "" || s == "." || s == ".." {
		return fmt.Errorf("%s %q: %w", kind, s, errBadName)
	}
	return nil
}
