//go:build !linux

package run

// missingCaps is empty where there are no capabilities: root may change
// ids and owners (macOS).
func missingCaps() []string { return nil }
