// Package statefile is the encrypted state file of --state-file (DESIGN.md,
// "State across restarts"): what it holds, how it is encrypted to the age
// identity of --state-key-file, written (atomically, 0600) and read back.
//
// Its job: turn a Doc into an age-encrypted, ASCII-armored file that only
// the holder of the identity can read (`age -d -i KEY FILE` prints the
// JSON) and whose content is authenticated with a key derived from that
// identity, and turn a file back into a Doc, or into a *DecodeError whose
// Reason says in a few words why it cannot be used (wrong key, truncated,
// corrupt, tampered with, too large, another format version). Decoding
// is bounded: the file, the plaintext and every list in it have a limit,
// and a hostile file costs at most that.
//
// What it must not do: decide what a state is good for (crash recovery and
// fallback are package run's and the watch.Ledger's), talk to the server,
// or put a secret value in an error: values only ever go through Encode
// and Decode, encrypted on disk.
//
// Concurrency: a Key is immutable and safe for concurrent use; a Doc is
// plain data, owned by whoever holds it. WriteFile may run beside readers
// of the file: they see the old file or the new one, never a part.
package statefile
