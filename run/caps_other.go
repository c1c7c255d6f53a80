//go:build !linux

package run

import "github.com/scailabs/scaivault-run/user"

// capability stands for a Linux capability; elsewhere (macOS) root may
// change ids and owners, and there are no user namespaces.
type capability struct{}

var capSetuid, capSetgid, capChown, capDACOverride capability

func missingCaps(...capability) []string { return nil }

func unmappedIDs(user.Creds) error { return nil }
