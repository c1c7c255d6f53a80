package main

import (
	"bufio"
	"fmt"
	"os"
	ossignal "os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maskChild is testchild's output for the --mask scripts (see testChild).
func maskChild(args []string) {
	switch args[0] {
	case "say":
		for _, n := range args[1:] {
			fmt.Printf("%s=%s\n", n, os.Getenv(n))
			fmt.Fprintf(os.Stderr, "err %s=%s\n", n, os.Getenv(n))
		}
	case "split":
		v := os.Getenv(args[1])
		for _, f := range []*os.File{os.Stdout, os.Stderr} {
			f.WriteString("split " + v[:len(v)/2])
			time.Sleep(time.Millisecond) // the point: a value in two writes
			f.WriteString(v[len(v)/2:] + " end\n")
		}
	case "binary":
		var all []byte
		for i := range 256 {
			all = append(all, byte(i))
		}
		v := os.Getenv(args[1])
		os.Stdout.Write(append(append(append(all, v...), 0, 0), all...))
		want := append(append(append(all, "<concealed:"+args[1]+">"...), 0, 0), all...)
		if err := os.WriteFile(args[2], want, 0o600); err != nil {
			os.Exit(1)
		}
	case "lines":
		b, err := os.ReadFile(os.Getenv(args[1]))
		if err != nil {
			os.Exit(1)
		}
		os.Stdout.Write(b)
		for l := range strings.Lines(string(b)) {
			fmt.Printf("line: %s", l)
		}
	case "bulk":
		n, _ := strconv.Atoi(args[1])
		w := bufio.NewWriter(os.Stdout)
		for i := range n {
			fmt.Fprintf(w, "line %d of %d, padded to make the output longer than a pipe holds\n", i, n)
		}
		w.Flush()
		os.Exit(0)
	case "serve":
		stop := make(chan os.Signal, 1)
		ossignal.Notify(stop, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
		k := 1
		for ; ; k++ {
			if _, err := os.Stat(fmt.Sprintf("%s/started.%d", args[1], k)); err != nil {
				break
			}
		}
		fmt.Printf("start %d: %s\n", k, os.ExpandEnv(strings.Join(args[2:], " ")))
		os.WriteFile(fmt.Sprintf("%s/pid", args[1]), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600)
		os.WriteFile(fmt.Sprintf("%s/started.%d", args[1], k), nil, 0o600)
		got := map[os.Signal]int{}
		for sig := <-stop; sig != syscall.SIGTERM; sig = <-stop {
			got[sig]++
			name := map[os.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}[sig]
			fmt.Printf("signal %s\n", name)
			os.WriteFile(fmt.Sprintf("%s/%s.%d", args[1], name, got[sig]), nil, 0o600)
		}
		fmt.Printf("stop %d\n", k)
	}
}
