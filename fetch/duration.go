package fetch

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxDurationSeconds is the most whole seconds a time.Duration holds (about
// 292 years).
const maxDurationSeconds = math.MaxInt64 / int64(time.Second)

// ParseDuration parses a request duration of scaivault-api.md: a Go duration
// ("90s", "1h30m"), one with a day unit first ("90d", "1d12h"), or a bare
// number of whole seconds ("3600"; "90.5" is not one). A negative duration
// is an error, and so is one past what a time.Duration holds (about 292
// years): it would wrap around.
//
// Request durations are JSON strings, always: this client sends them so,
// and the dev server refuses a JSON number (90 rather than "90") with a
// validation_error, so that a number of unclear unit (a Go time.Duration
// marshals as nanoseconds) is never taken for seconds.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil || isRangeErr(err) {
		switch {
		case err == nil && n < 0:
			return 0, fmt.Errorf("negative duration %q", orig)
		case err != nil || n > maxDurationSeconds:
			return 0, fmt.Errorf("duration %q out of range (at most %d seconds)", orig, maxDurationSeconds)
		}
		return time.Duration(n) * time.Second, nil
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		switch {
		case isRangeErr(err) || err == nil && n > maxDurationSeconds/(24*60*60):
			return 0, fmt.Errorf("duration %q out of range (at most %d days)", orig, maxDurationSeconds/(24*60*60))
		case err != nil || n < 0:
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil: // also past what a time.Duration holds
		return 0, fmt.Errorf("invalid duration %q", orig)
	case d < 0:
		return 0, fmt.Errorf("negative duration %q", orig)
	case d > math.MaxInt64-days:
		return 0, fmt.Errorf("duration %q out of range", orig)
	}
	return days + d, nil
}

func isRangeErr(err error) bool { return errors.Is(err, strconv.ErrRange) }
