// Package template is pure rendering: from resolved values to env (sorted
// []string) and files; atomic write and did-it-change; no network, no
// processes.
//
// It takes a fetch.Snapshot that the caller resolved and turns references
// into values: PlanEnv reads the environment, env files and flags into a
// Plan (parsing references, fetching nothing); Plan.Build applies the
// precedence and import naming of DESIGN.md against a snapshot and writes
// as=file values into a FileDir. WriteFileAtomic is the one way files are
// written: temp file in the same directory, fsync, chmod, rename.
//
// It never logs or returns a secret value: errors name variables, files and
// lines, paths, keys and versions.
//
// Concurrency: a Plan is immutable after PlanEnv and may be built from
// several goroutines; a FileDir serialises nothing itself, so writes of the
// same name must not race (the supervisor calls Build from one goroutine).
package template
