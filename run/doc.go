// Package run is scaivault-run's main job, in two parts.
//
// The start-up gate (Launch, Render; launch.go) resolves every reference,
// renders every template and writes every file before anything starts; on
// failure it leaves nothing behind (no file, no lease). While the child
// runs, the refresher (watch.go) turns the watch.Watcher's updates into
// re-rendered files and environments and hands the supervisor a Change
// only when something the child uses changed; on exit leases are revoked
// and the secret-file directory removed.
//
// The supervisor (Supervisor.Run) starts the command as a child process,
// forwards signals to it, reaps orphans when asked, acts on Changes
// (restart or reload signal, debounced and splayed), stops it on
// SIGTERM/SIGINT or cancellation, and returns its exit status. It knows
// nothing of secrets: it is handed the child's complete environment and a
// channel of changes.
//
// The status endpoint (Options.StatusAddr; status*.go) serves /healthz,
// /readyz, /status and /metrics from a board that the supervisor (its
// Observer), the watcher (OnState) and the client (its ResponseObserver)
// publish to as things change; its handlers read copies and never call
// into the loop, so no client of it can delay or block supervision.
//
// The state file (Options.StateFile; state*.go, package statefile) is
// written by one goroutine of its own, started by the start-up gate and
// joined at exit; the gate, the refresher and the ledger only hand it a
// pointer or wake it, so a write never delays acting on a change. At
// start the previous run's leases are reused or revoked through the
// watch.Ledger, and when the server does not answer the child may start
// on the state; the refresher's goroutine then re-resolves everything
// before the watcher starts.
//
// What it must not do: print or log a secret value (logs name reasons,
// paths, versions, lease ids, pids and signals only), call os.Exit, run a
// command through a shell, join argv into a string, or put a pipe between
// the child and its stdio, except under --mask (Config.Mask): then the
// child's stdout and stderr are pipes, each read by one goroutine of the
// spawner through a mask.Filter (maskpipe.go), joined after the last child
// has exited and its output was drained; stdin stays the child's own. Nor
// may it change its own ids: with --user (Options.User, user.go) the child
// alone gets the user's (Config.Credential, or ExecAs with --once, which
// execs at once), and the files written for it are given to that user.
//
// Concurrency: the refresher and the watcher each run on one goroutine that
// Launch starts and joins; they talk to the supervisor only through the
// Changes channel. Run owns all mutable state from one goroutine, the caller's,
// locked to its OS thread while it runs (the Linux parent-death signal
// follows the thread that forked). Other goroutines only send it events:
// os/signal delivers caught signals, one waiter per child (or the reaper)
// delivers the child's exit, the caller sends Changes. Change.Applied runs
// on Run's goroutine. Every goroutine Run starts is joined before it
// returns (the status server is started and joined by Launch). Run
// changes process-wide signal dispositions while it runs, so
// at most one Supervisor runs in a process at a time; with Config.Reap set
// nothing else in the process may wait for children (os/exec included).
//
// # Signals
//
// The child leads its own process group, and every signal goes to that
// group: forwarded ones, the kill and reload signals, SIGKILL. This is
// dumb-init's and consul-template's choice (tini's default is the child
// alone): a command wrapped in "sh -c" or a launcher that does not pass
// signals on still gets them, and a stop reaches every process of the
// group. The price: a process manager's workers get the signals meant for
// their master too (gunicorn's workers die on SIGHUP), so give such a
// command a reload signal its workers tolerate.
//
// Which signals are forwarded, which stop the child and which are dropped
// is signal.ActionFor's table. When stdin is the controlling terminal and
// scaivault-run is in its foreground group, the child's group becomes the
// foreground group: ^C and ^Z from the terminal reach the child's group
// once, directly, and scaivault-run not at all (so it neither forwards
// them again nor starts a shutdown). ^Z stops the child alone, as under
// tini. The terminal is handed back when Run returns.
package run
