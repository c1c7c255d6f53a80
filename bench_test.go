package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scailabs/scaivault-run/devserver"
)

// benchServer serves n secrets app/sN from an in-process dev server.
func benchServer(b *testing.B, n int) (*devserver.Server, string) {
	b.Helper()
	var sb strings.Builder
	sb.WriteString(`{"root_token": "root-t", "secrets": {`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"app/s%d": {"data": {"v": "value-%d"}}`, i, i)
	}
	sb.WriteString(`}}`)
	seed, err := devserver.ParseSeed([]byte(sb.String()), "bench.json")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := devserver.New(devserver.Options{Seed: seed})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(func() { srv.Close(); hs.Close() })
	return srv, hs.URL
}

// buildBinary builds scaivault-run once per benchmark run.
func buildBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "scaivault-run")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func refArgs(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--env", fmt.Sprintf("S%d=scaivault://app/s%d#v", i, i))
	}
	return args
}

// BenchmarkStartup is the time from starting the real binary to the end of
// its child, `true`, with 0 (baseline), 1, 100 and 1,000 references over
// loopback, and the HTTP requests each start made. It runs with --once, so
// that it measures start to exec (the path every mode shares) and counts no
// request of the watcher, which supervise mode starts beside the child.
// The start-up time that scaivault-run adds is the difference to refs=0.
func BenchmarkStartup(b *testing.B) {
	bin := buildBinary(b)
	for _, n := range []int{0, 1, 100, 1000} {
		b.Run("refs="+strconv.Itoa(n), func(b *testing.B) {
			srv, url := benchServer(b, max(n, 1))
			args := append(append([]string{"--once"}, refArgs(n)...), "--", "true")
			env := append(os.Environ(), "SCAIVAULT_BASE_URL="+url, "SCAIVAULT_TOKEN=root-t", "SCAIVAULT_LOG_LEVEL=warn")
			before := srv.Requests("")
			b.ResetTimer()
			for range b.N {
				cmd := exec.Command(bin, args...)
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, out)
				}
			}
			b.ReportMetric(float64(srv.Requests("")-before)/float64(b.N), "requests/op")
		})
	}
}

// BenchmarkSupervisorRSS is the resident memory of scaivault-run while its
// child runs, with 1 and 100 references, and the CPU it uses while idle
// (no watching changes) over two seconds.
func BenchmarkSupervisorRSS(b *testing.B) {
	bin := buildBinary(b)
	for _, n := range []int{1, 100} {
		b.Run("refs="+strconv.Itoa(n), func(b *testing.B) {
			_, url := benchServer(b, n)
			for range b.N {
				rss, cpu := measureSupervisor(b, bin, url, n)
				b.ReportMetric(rss/(1<<20), "MiB-rss")
				b.ReportMetric(cpu, "cpu-ms/2s-idle")
			}
		})
	}
}

func measureSupervisor(b *testing.B, bin, url string, n int) (rss, cpuMS float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(refArgs(n), "--", "sh", "-c", "echo ready; exec sleep 60")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SCAIVAULT_BASE_URL="+url, "SCAIVAULT_TOKEN=root-t", "SCAIVAULT_LOG_LEVEL=warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		b.Fatalf("child said %q", line)
	}
	t0 := procCPU(b, cmd.Process.Pid)
	time.Sleep(2 * time.Second) // measuring idle CPU needs an idle span
	t1 := procCPU(b, cmd.Process.Pid)
	return procRSS(b, cmd.Process.Pid), t1 - t0
}

func procRSS(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skip("no /proc here")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// procCPU is the process's user+system time in milliseconds.
func procCPU(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skip("no /proc here")
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) * 10 // clock ticks of 10 ms
}
