// Command startup measures what scaivault-run costs a command, against the
// command started directly (BENCHMARKS.md, "What users pay"):
//
//   - added start-up: the time from starting the process to the child's
//     first instruction, as the child reports it (it prints its own start
//     time, `date +%s%N`), minus the same for the child started directly
//     with an environment of the same size; the two alternate, and the
//     medians and ranges are printed, for 0, 1, 100 and 1,000 references,
//     --once and supervising;
//   - the supervisor's footprint while its child runs: VmRSS, RssAnon and
//     PSS (/proc/PID/smaps_rollup) with 10 supervisors at once.
//
// It runs a dev server of the same binary on a loopback port, seeded with
// 1,000 secrets.
//
//	make build && go run ./bench/startup [-bin bin/scaivault-run] [-n 30]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/scaivault-run", "the scaivault-run binary")
	n := flag.Int("n", 30, "runs of each arm")
	sup := flag.Int("supervisors", 10, "supervisors at once for the footprint")
	counts := flag.String("refs", "0,1,100,1000", "reference counts")
	server := flag.String("server", "", "the binary whose dev-server subcommand serves (default: -bin)")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	check(err)
	date, err := exec.LookPath("date")
	check(err)

	dir, err := os.MkdirTemp("", "startup-bench")
	check(err)
	defer os.RemoveAll(dir)
	srvBin := abs
	if *server != "" {
		srvBin, err = filepath.Abs(*server)
		check(err)
	}
	url, token, stop := devServer(srvBin, dir)
	defer stop()

	fmt.Printf("scaivault-run %s, %d runs per arm, medians [p10 p90] in ms\n\n", *bin, *n)
	fmt.Println("| references | mode | direct | via scaivault-run | added |")
	fmt.Println("|---:|---|---:|---:|---:|")
	var refsList []int
	for _, s := range strings.Split(*counts, ",") {
		k, err := strconv.Atoi(s)
		check(err)
		refsList = append(refsList, k)
	}
	for _, k := range refsList {
		for _, mode := range []string{"--once", "supervise"} {
			var direct, via []float64
			for range *n {
				direct = append(direct, startTime(plainEnv(k), date))
				args := []string{abs}
				if mode == "--once" {
					args = append(args, "--once")
				}
				via = append(via, startTime(refEnv(k, url, token), append(args, "--", date)...))
			}
			d, v := median(direct), median(via)
			fmt.Printf("| %d | %s | %.2f [%.2f %.2f] | %.2f [%.2f %.2f] | **%.2f** |\n",
				k, mode, d, pct(direct, 10), pct(direct, 90), v, pct(via, 10), pct(via, 90), v-d)
		}
	}

	fmt.Printf("\nfootprint of %d supervisors at once while the child runs (KiB, median [min max])\n\n", *sup)
	fmt.Println("| references | VmRSS | RssAnon | PSS |")
	fmt.Println("|---:|---:|---:|---:|")
	for _, k := range refsList {
		rss, anon, pss := footprint(abs, k, *sup, url, token)
		fmt.Printf("| %d | %s | %s | %s |\n", k, span(rss), span(anon), span(pss))
	}
}

// startTime runs argv with env and returns, in ms, the time from just
// before the start to the instant the final command printed (date +%s%N).
func startTime(env []string, argv ...string) float64 {
	cmd := exec.Command(argv[0], append(argv[1:], "+%s%N")...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	t0 := time.Now()
	check(cmd.Run())
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	check(err)
	return float64(ns-t0.UnixNano()) / 1e6
}

// plainEnv and refEnv are environments of k variables: plain values of
// the same length as the references, or the references themselves.
func plainEnv(k int) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	for i := range k {
		env = append(env, fmt.Sprintf("V%04d=%s", i, strings.Repeat("x", len(ref(i)))))
	}
	return env
}

func refEnv(k int, url, token string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "SCAIVAULT_BASE_URL=" + url, "SCAIVAULT_TOKEN=" + token, "SCAIVAULT_LOG_LEVEL=warn"}
	for i := range k {
		env = append(env, fmt.Sprintf("V%04d=%s", i, ref(i)))
	}
	return env
}

func ref(i int) string { return fmt.Sprintf("scaivault://bench/s%04d#v", i) }

// footprint starts count supervisors with k references each and a child
// that waits, reads each supervisor's memory once its child runs, and
// stops them.
func footprint(bin string, k, count int, url, token string) (rss, anon, pss []int) {
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}()
	for range count {
		c := exec.Command(bin, "--", "sh", "-c", "echo ready; exec sleep 300")
		c.Env = refEnv(k, url, token)
		r, err := c.StdoutPipe()
		check(err)
		check(c.Start())
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil || line != "ready\n" {
			fail("supervisor: child did not start: %q %v", line, err)
		}
		cmds = append(cmds, c)
	}
	time.Sleep(500 * time.Millisecond) // let start-up garbage be collected as an idle supervisor's would
	for _, c := range cmds {
		st := procFields(fmt.Sprintf("/proc/%d/status", c.Process.Pid))
		rss, anon = append(rss, st["VmRSS"]), append(anon, st["RssAnon"])
		pss = append(pss, procFields(fmt.Sprintf("/proc/%d/smaps_rollup", c.Process.Pid))["Pss"])
	}
	return rss, anon, pss
}

func procFields(path string) map[string]int {
	b, err := os.ReadFile(path)
	check(err)
	m := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			m[k], _ = strconv.Atoi(f[0])
		}
	}
	return m
}

// devServer starts `bin dev-server` on a free loopback port with 1,000
// secrets bench/s0000..s0999 and returns its URL and root token.
func devServer(bin, dir string) (url, token string, stop func()) {
	secrets := map[string]any{}
	for i := range 1000 {
		secrets[fmt.Sprintf("bench/s%04d", i)] = map[string]any{"data": map[string]string{"v": fmt.Sprintf("value-%04d", i)}}
	}
	seed, err := json.Marshal(map[string]any{"root_token": "bench-root", "secrets": secrets})
	check(err)
	seedFile := filepath.Join(dir, "seed.json")
	check(os.WriteFile(seedFile, seed, 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "dev-server", "--listen", addr, "--seed", seedFile, "--log-level", "warn")
	check(cmd.Start())
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr, "bench-root", func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("dev server did not listen on %s", addr)
	return
}

func median(v []float64) float64 { return pct(v, 50) }

func pct(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func span(v []int) string {
	s := slices.Clone(v)
	slices.Sort(s)
	return fmt.Sprintf("%d [%d %d]", s[len(s)/2], s[0], s[len(s)-1])
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "startup: "+format+"\n", args...)
	os.Exit(1)
}
