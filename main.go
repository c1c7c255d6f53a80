// Command scaivault-run puts secrets from ScaiVault into a process.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	fmt.Fprintln(os.Stderr, "scaivault-run", version)
	os.Exit(0)
}
