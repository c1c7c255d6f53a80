//go:build linux

package run

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/statefile"
	"github.com/scailabs/scaivault-run/watch"
)

// BenchmarkRotationToChildState: BenchmarkRotationToChild's events case
// with and without --state-file: the state is written after every change,
// off the refresher's goroutine, so the two should not differ.
//
//	go test ./run -run '^$' -bench RotationToChildState -benchtime 20x
func BenchmarkRotationToChildState(b *testing.B) {
	for _, withState := range []bool{false, true} {
		b.Run(fmt.Sprintf("state-file=%v", withState), func(b *testing.B) {
			dir := b.TempDir()
			p := startPhase(b, refDBPassword, func(_ *phase, o *Options) {
				o.PollInterval = time.Hour
				o.Supervisor.KillTimeout = 5 * time.Second
				if withState {
					o.StateFile, o.StateKeyFile = filepath.Join(dir, "state.age"), filepath.Join(dir, "key.txt")
					writeKeyB(b, o.StateKeyFile)
				}
			})
			pid := p.ready("pw-SECRET-1")
			p.log.await(b, `msg="following change events"`, 1)
			written := func() int { return p.log.count(`msg="state file written"`) }
			if withState {
				p.log.await(b, `msg="state file written"`, 1)
			}
			var worst, timed time.Duration
			for i := range b.N {
				val := fmt.Sprintf("pw-SECRET-bench-%d", i)
				n := written()
				start := time.Now()
				p.write("app/db", map[string]any{"password": val, "username": "app"})
				pid = p.restarted(pid, val)
				d := time.Since(start)
				worst, timed = max(worst, d), timed+d
				// Rotations come apart, as in life (both cases alike: an
				// idle machine is slower to wake); with the state file,
				// this one's write is done before the next comes.
				time.Sleep(100 * time.Millisecond)
				if withState {
					p.log.await(b, `msg="state file written"`, n+1)
				}
			}
			b.ReportMetric(float64(timed.Microseconds())/1000/float64(b.N), "ms/rotation")
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
		})
	}
}

func writeKeyB(b *testing.B, path string) {
	b.Helper()
	if err := os.WriteFile(path, []byte("AGE-SECRET-KEY-1WV5H3Y4SYQ8SK6ZNMYVTMMQCL8CH3YPY37QZ6V0KVFE2T6DQ0SGS2E734J\n"), 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchState is a stateRun over a snapshot of secrets static secrets (two
// keys each), leases leases and certs certificates, each lease in the
// ledger, as after a start-up.
func benchState(b *testing.B, secrets, leases, certs int) *stateRun {
	b.Helper()
	dir := b.TempDir()
	writeKeyB(b, filepath.Join(dir, "key.txt"))
	key, _, err := statefile.LoadKey(filepath.Join(dir, "key.txt"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	s := &stateRun{path: filepath.Join(dir, "state.age"), key: key, log: log, ledger: watch.NewLedger(nil, log),
		fp: "sha256:x", revoked: map[string]bool{}, reuse: map[string]bool{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	snap, users := fetch.NewSnapshot(), map[fetch.Source][]string{}
	raw := func(s string) json.RawMessage { j, _ := json.Marshal(s); return j }
	now := time.Now()
	for i := range secrets {
		src := fetch.StaticSource(fmt.Sprintf("app/s%d", i), 0)
		snap.Secrets[src] = &fetch.Secret{Path: src.Path, Version: 3, SecretType: "json", Metadata: map[string]any{},
			Data: map[string]json.RawMessage{"password": raw(fmt.Sprintf("pw-%032d", i)), "username": raw("app")}}
		users[src] = []string{fmt.Sprintf("--env S%d", i)}
	}
	for i := range leases {
		src, _ := fetch.DynamicSource("db", fmt.Sprintf("r%d", i), "")
		l := &fetch.Lease{LeaseID: fmt.Sprintf("dyn_db_r%d_%024x", i, i), Engine: "db", Role: src.Role, LeaseDuration: 3600, Renewable: true,
			IssuedAt: now, ExpiresAt: now.Add(time.Hour), MaxExpiresAt: now.Add(24 * time.Hour),
			Data: map[string]json.RawMessage{"username": raw("v-r-1234"), "password": raw(fmt.Sprintf("%032d", i))}}
		snap.Leases[src] = l
		s.ledger.Add(src, l)
	}
	pem := "-----BEGIN CERTIFICATE-----\n" + strings.Repeat("A", 1100) + "\n-----END CERTIFICATE-----\n" // about an EC P-256 leaf
	for i := range certs {
		src, _ := fetch.PKISource("svc", fetch.IssueRequest{CommonName: fmt.Sprintf("c%d.svc.local", i)})
		snap.Certs[src] = &fetch.Cert{SerialNumber: "01:02:03", CertificatePEM: pem, PrivateKeyPEM: pem, CAChain: []string{pem, pem},
			IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	s.rec = &record{snap: snap, users: users, resolvedAt: now}
	return s
}

// BenchmarkStateResolved: what the refresher pays per change applied with
// --state-file: a pointer handed over and the writer woken (the write
// itself runs on the writer's goroutine).
func BenchmarkStateResolved(b *testing.B) {
	s := benchState(b, 10, 2, 1)
	snap, users := s.rec.snap, s.rec.users
	for b.Loop() {
		s.resolved(snap, users)
		select { // what the writer would do: take the wake-up
		case <-s.wake:
		default:
		}
	}
}

// BenchmarkStateWrite: one write of the writer goroutine: the document
// built from the snapshot and the ledger, encrypted, and written
// atomically (temp file, fsync, rename, directory fsync).
func BenchmarkStateWrite(b *testing.B) {
	for _, size := range []struct{ secrets, leases, certs int }{{10, 2, 1}, {100, 10, 5}, {1000, 20, 10}} {
		b.Run(fmt.Sprintf("secrets=%d,leases=%d,certs=%d", size.secrets, size.leases, size.certs), func(b *testing.B) {
			s := benchState(b, size.secrets, size.leases, size.certs)
			for b.Loop() {
				s.dirty = true
				if _, err := s.write(nil); err != nil {
					b.Fatal(err)
				}
			}
			fi, err := os.Stat(s.path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size()), "file-bytes")
		})
	}
}
