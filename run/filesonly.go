package run

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/scailabs/scaivault-run/signal"
)

// Files only (DESIGN.md, "Modes"): no child; the loop keeps acting on
// changes, and its "child" is the process named by a pid file, which it
// only ever signals to reload.

// pidFileTarget is the child of a files-only loop: reload signals go to
// the pid its file holds at that moment. It never ends.
type pidFileTarget struct {
	path string // "" : no process to signal
	last int    // the pid last read, for the log
}

func (p *pidFileTarget) pid() int                   { return p.last }
func (p *pidFileTarget) done() <-chan signal.Status { return nil }

// signal sends sig to the process (not its group: nginx's master
// forwards to its workers itself) whose pid the file holds now.
func (p *pidFileTarget) signal(sig syscall.Signal) error {
	if p.path == "" {
		return errors.New("no --reload-pid-file names a process to signal")
	}
	pid, err := readPidFile(p.path)
	if err != nil {
		return err
	}
	if pid == 1 || pid == os.Getpid() {
		return fmt.Errorf("--reload-pid-file %s: holds pid %d (init or scaivault-run itself): not signalled", p.path, pid)
	}
	p.last = pid
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("--reload-pid-file %s: pid %d: %w", p.path, pid, err)
	}
	return nil
}

// maxPidFile bounds what is read of a pid file.
const maxPidFile = 64

// readPidFile reads a pid file as daemons write it: a positive decimal
// number, surrounding white space allowed. It never blocks: the file is
// opened non-blocking and must be a regular file (a FIFO there would hang
// the loop).
func readPidFile(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("--reload-pid-file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("--reload-pid-file %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPidFile+1))
	if err != nil {
		return 0, fmt.Errorf("--reload-pid-file %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || len(b) > maxPidFile {
		return 0, fmt.Errorf("--reload-pid-file %s: does not hold a pid", path)
	}
	return pid, nil
}

// filesOnlySignal handles a signal scaivault-run received without a
// child: SIGTERM and SIGINT end the loop (exit 0; the files stay), the
// others have nobody to go to.
func (s *Supervisor) filesOnlySignal(sig syscall.Signal) {
	if signal.ActionFor(sig) != signal.Stop {
		s.log.Debug("signal dropped: no child", "signal", signal.Name(sig))
		return
	}
	s.log.Info("stop signal received; exiting, the files stay", "signal", signal.Name(sig))
	s.filesOnlyStop()
}

func (s *Supervisor) filesOnlyStop() {
	s.pending, s.due = nil, false
	s.stopTimers()
	s.st, s.code = stateExited, 0
}
