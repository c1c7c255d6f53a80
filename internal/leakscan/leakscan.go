// Package leakscan is the tests' secret-leak scan: tests note every secret
// value and credential they come across, and send every log line and error
// they capture to it; Main fails the test binary when any noted value shows
// up in what was captured. Test code only; safe for concurrent use.
package leakscan

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
)

var scan = struct {
	mu      sync.Mutex
	secrets map[string]bool
	out     bytes.Buffer
}{secrets: map[string]bool{}}

// Note adds values to the scan. Multi-line values (PEM keys) are scanned
// for line by line; lines shorter than 6 bytes and PEM armour are not.
func Note(vs ...string) {
	scan.mu.Lock()
	defer scan.mu.Unlock()
	for _, v := range vs {
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSpace(line)
			if len(line) >= 6 && !strings.HasPrefix(line, "-----") {
				scan.secrets[line] = true
			}
		}
	}
}

// NoteSeed notes a dev server seed's client secrets and the secret values
// marked as such (they hold "SECRET").
func NoteSeed(seed *devserver.Seed) {
	for _, c := range seed.Clients {
		Note(c.ClientSecret)
	}
	for _, sec := range seed.Secrets {
		for _, v := range sec.Data {
			if str, ok := v.(string); ok && strings.Contains(str, "SECRET") {
				Note(str)
			}
		}
	}
}

// NoteErr adds an error's text to what the scan checks.
func NoteErr(err error) {
	if err == nil {
		return
	}
	scan.mu.Lock()
	defer scan.mu.Unlock()
	fmt.Fprintf(&scan.out, "error: %v\n", err)
}

// Writer captures what is written to it (a logger's output) for the scan.
type Writer struct{}

func (Writer) Write(p []byte) (int, error) {
	scan.mu.Lock()
	defer scan.mu.Unlock()
	return scan.out.Write(p)
}

// Main runs the tests, then the scan, and returns the exit code for
// os.Exit: 1 when the tests failed or a noted value was captured.
func Main(m *testing.M) int {
	code := m.Run()
	scan.mu.Lock()
	defer scan.mu.Unlock()
	out := scan.out.String()
	var leaked []string
	for v := range scan.secrets {
		if strings.Contains(out, v) {
			leaked = append(leaked, v)
		}
	}
	if len(leaked) > 0 {
		sort.Strings(leaked)
		fmt.Fprintf(os.Stderr, "FAIL: %d secret values appear in logs or errors: %q\n", len(leaked), leaked)
		return 1
	}
	if code == 0 && testing.Verbose() {
		fmt.Fprintf(os.Stderr, "leak scan: %d secret values, %d bytes of logs and errors: clean\n", len(scan.secrets), len(out))
	}
	return code
}
