// Package mask conceals known values in a byte stream: the --mask filter
// between the child's stdout/stderr and scaivault-run's own.
//
// A Set holds the values to conceal, each with the name its mask shows
// (`<concealed:DB_PASSWORD>`): the current ones, always, and the ones
// they superseded, the oldest dropped first when they outgrow a bound
// (Set.Update). A Filter is one
// stream: an io.Writer that writes what it is given to the next writer with
// every occurrence of a value replaced by that value's mask. It finds them
// with an Aho–Corasick automaton (a DFA over the bytes the values use,
// dense for its shallow states, sparse for the deep ones), so the cost per
// byte does not depend on the number of values.
//
// Semantics, the same whatever the write boundaries: every occurrence of
// every value is found, overlapping ones included, and each maximal run of
// overlapping occurrences is replaced by one mask, named by the occurrence
// that starts first (the longest of those). No byte of an occurrence is ever
// written, so overlapping values are concealed as their union. Only bytes
// that may still be the start of a value are held back; Flush releases them
// (the caller's time bound, see run), Close at the end of the stream.
//
// Why its own package: the STYLE table gives template pure rendering (values
// to env and files) and run the processes; this is neither, a pure
// streaming filter with no processes, no network and no goroutines, that
// imports the standard library only and is imported by run alone. The pipes
// and the time bound belong to run.
//
// It never logs, and its errors are the next writer's. Memory is bounded
// whatever is written: the automaton (about 30 bytes a byte of value, at
// most 1 MiB of it in dense rows), plus, per Filter, the held bytes
// (at most the longest value, or MaxPending while overlapping occurrences
// keep a mask open) and one write's output.
//
// Concurrency: a Set may be added to from any goroutine while Filters run
// on others (the automaton is swapped atomically; a Filter picks the new
// one up at its next Write). A Filter is used by one goroutine at a time.
package mask
