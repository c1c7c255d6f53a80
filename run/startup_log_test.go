package run

import (
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// TestStartTrouble: the start-up gate's log of failed attempts, on a
// clock of its own: the first at once, then one a minute with the count,
// debug between, the truth about what failed, and one line at the end.
func TestStartTrouble(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	refused := fmt.Errorf("read secret: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	unavailable := &fetch.APIError{StatusCode: 503, Code: "unavailable"}
	var tr startTrouble
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for s := 0; s <= 70; s += 10 {
		err := error(refused)
		if s >= 40 {
			err = unavailable
		}
		tr.failed(log, start.Add(time.Duration(s)*time.Second), err, 10*time.Second)
	}
	tr.answered(log, start.Add(75*time.Second))
	tr.answered(log, start.Add(80*time.Second))
	got := buf.String()
	for _, want := range []string{
		`(?m)^level=WARN msg="server not reachable yet; retrying" err=.*connection refused" in=10s$`,
		`(?m)^level=DEBUG msg="server not reachable yet; retrying" .* failures=2$`,
		`(?m)^level=DEBUG msg="server answering with errors; retrying" .* failures=5$`,
		`(?m)^level=WARN msg="server answering with errors; retrying" err=unavailable in=10s for=1m0s failures=7$`,
		`(?m)^level=INFO msg="server answering normally again" after=1m15s failures=8$`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("no line matching %s in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "level=WARN"); n != 2 {
		t.Errorf("%d warnings for 8 failures in 70s, want 2:\n%s", n, got)
	}
	if n := strings.Count(got, "level=INFO"); n != 1 {
		t.Errorf("%d info lines, want 1", n)
	}
}
