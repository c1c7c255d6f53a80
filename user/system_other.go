//go:build !darwin

package user

// systemUser, systemGroup and systemGroups find nothing: outside macOS the
// files are the whole database (no NSS without cgo, by design).
func systemUser(DB, string) (passwdEntry, bool)     { return passwdEntry{}, false }
func systemGroup(DB, string) (int, bool)            { return 0, false }
func systemGroups(DB, passwdEntry) ([]uint32, bool) { return nil, false }
