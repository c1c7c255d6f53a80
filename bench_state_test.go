package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkStartupState is BenchmarkStartup with 1 and 100 references,
// without and with --state-file: with it, each start reads, decrypts and
// checks the previous start's state, and writes its own before the exec.
//
//	go test -run '^$' -bench StartupState -benchtime 40x .
func BenchmarkStartupState(b *testing.B) {
	bin := buildBinary(b)
	key := filepath.Join(b.TempDir(), "key.txt")
	if err := os.WriteFile(key, []byte("AGE-SECRET-KEY-1398QLQ2KGYLSWK7XMG8GKVXZLU6LZNVCTR6AAWCWF8DTLZHY4S0SKGF7N8\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100} {
		for _, state := range []bool{false, true} {
			b.Run("refs="+strconv.Itoa(n)+"/state-file="+strconv.FormatBool(state), func(b *testing.B) {
				_, url := benchServer(b, n)
				args := append([]string{"--once"}, refArgs(n)...)
				if state {
					args = append(args, "--state-file", filepath.Join(b.TempDir(), "state.age"), "--state-key-file", key)
				}
				args = append(args, "--", "true")
				env := append(os.Environ(), "SCAIVAULT_BASE_URL="+url, "SCAIVAULT_TOKEN=root-t", "SCAIVAULT_LOG_LEVEL=warn")
				run := func() {
					cmd := exec.Command(bin, args...)
					cmd.Env = env
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%v\n%s", err, out)
					}
				}
				run() // the first start writes the state the others read
				b.ResetTimer()
				for range b.N {
					run()
				}
			})
		}
	}
}
