package template

import (
	"os"
	"strconv"
)

// openRootOf opens an os.Root on the directory f holds, through
// /proc/self/fd (Go has no Root from a descriptor): no path is looked up
// again, so a symlink the child swapped onto real cannot have root
// traverse it (a hung mount, an automounter) before the check refuses it.
// Without /proc, by real (the caller checks it is f's directory).
func openRootOf(f *os.File, real string) (*os.Root, error) {
	if r, err := os.OpenRoot("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil {
		return r, nil
	}
	return os.OpenRoot(real)
}
