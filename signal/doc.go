// Package signal is scaivault-run's OS plumbing for supervising one child
// process: signal names and numbers, the table of what the supervisor does
// with each signal it receives, process-group signalling, the wait status to
// exit status mapping, the orphan reaper (PID 1 or subreaper), and the
// attributes a child starts with (own process group, terminal foreground,
// parent-death signal).
//
// What it must not do: decide policy. It never restarts, debounces or
// chooses which signal stops a child; package run does. It never calls
// os.Exit, never uses the bare form of os/signal's Notify (which would also
// deliver SIGURG and SIGCHLD), and never calls wait4 except from the two
// places documented below, so that a process has one waiter per child.
//
// Concurrency: the functions are safe for concurrent use unless a comment
// says otherwise. The Reaper runs one goroutine of its own, started by
// StartReaper and joined by Stop; while it runs it is the only caller of
// wait4 in the process, and nothing else may wait for children (os/exec's
// Cmd.Wait included). Without a Reaper, WaitPid is the one waiter for a pid.
// GuardTTY changes process-wide signal dispositions; at most one guard may
// exist at a time, and its Fork must be used by the only goroutine that
// starts children.
//
// # Children start clean
//
// A child inherits ignored signal dispositions across execve; caught ones
// are reset to the default by the Go runtime in the forked child. Everything
// the supervisor receives is caught (Forwarded lists it for Notify), so
// SIGHUP and SIGPIPE reach the child with their default disposition even when
// scaivault-run was started with them ignored (nohup, some CI runners).
// SIGTTIN and SIGTTOU are kept ignored in scaivault-run itself, like tini
// does, so that it is never stopped for touching the terminal from the
// background; GuardTTY catches them for the instant of the fork only, so
// the child resets them to the default too. The signal mask the Go runtime
// restores in a forked child is the one scaivault-run was started with: it
// is empty under container runtimes and shells, and Go offers no hook to
// clear it otherwise.
package signal
