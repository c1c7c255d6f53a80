package devserver

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// perm is a set of permissions of scaivault-api.md.
type perm uint8

const (
	permRead perm = 1 << iota
	permList
	permWrite
	permDelete
	permRotate
	permDynamic
	permPKI
	permACME
)

var permNames = map[string]perm{
	"read": permRead, "list": permList, "write": permWrite, "delete": permDelete,
	"rotate": permRotate, "dynamic": permDynamic, "pki": permPKI, "acme": permACME,
}

// permNamesText names the permissions for messages, in the contract's order.
const permNamesText = "read, list, write, delete, rotate, dynamic, pki or acme"

func (p perm) String() string {
	for name, q := range permNames {
		if p == q {
			return name
		}
	}
	return fmt.Sprintf("perm(%d)", uint8(p))
}

// rule is a compiled policy rule: a pattern split into segments, and the
// name of the policy it belongs to.
type rule struct {
	policy  string
	pattern []string
	perms   perm
}

// compilePattern checks a path_pattern: segments of [A-Za-z0-9._*-], "**"
// only as a whole segment, no "." or "..".
func compilePattern(p string) ([]string, error) {
	if p == "" {
		return nil, errors.New("required")
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		switch {
		case seg == "":
			return nil, fmt.Errorf("%q: segment %d is empty", p, i+1)
		case seg == "." || seg == "..":
			return nil, fmt.Errorf("%q: segment %d: %q is not allowed", p, i+1, seg)
		case seg != "**" && strings.Contains(seg, "**"):
			return nil, fmt.Errorf("%q: segment %d: \"**\" must be a whole segment", p, i+1)
		}
		for _, c := range seg {
			if c != '*' && !isSegChar(c) {
				return nil, fmt.Errorf("%q: segment %d: character %q is not allowed", p, i+1, c)
			}
		}
	}
	return segs, nil
}

func isSegChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// matchPattern reports whether a path's segments match a pattern's: "*"
// matches any characters within one segment, "**" one or more whole segments.
func matchPattern(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		for i := 1; i <= len(segs); i++ {
			if matchPattern(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	// Patterns hold no '?', '[' or '\\', so path.Match only expands '*'.
	if ok, _ := path.Match(pat[0], segs[0]); !ok {
		return false
	}
	return matchPattern(pat[1:], segs[1:])
}

// identity is who made a request: the root token or a client's token.
type identity struct {
	root      bool
	clientID  string
	rules     []rule
	expiresAt time.Time // zero for root
}

// rootPolicy is the policy POST /v1/policies/test names for the root
// token, which holds every permission without a policy of the seed.
const rootPolicy = "root"

// can reports whether the identity holds p on resource: a secret path, or
// dynamic/ENGINE/ROLE, pki/ROLE or acme/ACCOUNT_NAME.
func (id *identity) can(p perm, resource string) bool {
	_, ok := id.allowedBy(p, resource)
	return ok
}

// allowedBy is can with the policy that grants p: the first rule that
// matches, in the order of the client's policies. Every permission check
// of the server, and POST /v1/policies/test, goes through it.
func (id *identity) allowedBy(p perm, resource string) (policy string, ok bool) {
	if id.root {
		return rootPolicy, true
	}
	segs := strings.Split(resource, "/")
	for _, r := range id.rules {
		if r.perms&p != 0 && matchPattern(r.pattern, segs) {
			return r.policy, true
		}
	}
	return "", false
}
