package fetch

import (
	"errors"
	"fmt"
	"io"
)

// Limits on what the client reads from the server and the token file
// (DESIGN.md: bounded reads). Past a limit the call fails with an error that
// names what was read and the limit, never a byte of the content: answers
// and token files hold secrets. Such an error is permanent (IsTemporary is
// false): the same answer would be as large again. They are variables only
// so that the package's tests can lower them.
var (
	// maxResponseBody bounds one answer's body. The largest legitimate
	// answer is a batch read of 100 secrets; 32 MiB leaves each of them
	// well over 300 KiB.
	maxResponseBody int64 = 32 << 20
	// maxEventBytes bounds one server-sent event: the field lines from the
	// end of the previous event to the blank line that ends this one
	// (so also any single line). Comments are not counted (they are
	// keep-alives, kept by no one), but a comment line is still bounded by
	// it. An event of the contract carries a path and a version.
	maxEventBytes = 1 << 20
	// maxListPages bounds the pages of one List walk: at the page size List
	// asks for (1000) that is ten million names, far past any real prefix;
	// a server that keeps answering has_more past it is not ending the
	// walk.
	maxListPages = 10_000
	// maxListEntries bounds the entries one List walk collects, whatever
	// the page sizes the server chose.
	maxListEntries = 1_000_000
	// maxTokenFile bounds the token file. Service account tokens are a few
	// KiB; 64 KiB is already an odd token.
	maxTokenFile int64 = 64 << 10
)

// errTooLarge is what readBounded returns past its limit.
var errTooLarge = errors.New("too large")

// readBounded reads r to its end, at most limit bytes; one byte more is
// errTooLarge (and nothing read is returned).
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// tooLargeError is something read past its limit: what names it (an
// answer with its method and route, the events stream, a token file) and
// never holds any of the content.
type tooLargeError struct {
	what  string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than the limit of %s", e.what, formatBytes(e.limit))
}

func (e *tooLargeError) Is(target error) bool { return target == errTooLarge }

// formatBytes writes n as KiB or MiB when it is a whole number of them.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
