//go:build !linux

package template

import "os"

// openRootOf opens an os.Root on the directory f holds, by real (the
// caller checks it is f's directory; macOS has no /proc/self/fd).
func openRootOf(_ *os.File, real string) (*os.Root, error) { return os.OpenRoot(real) }
