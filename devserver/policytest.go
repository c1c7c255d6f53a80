package devserver

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/scailabs/scaivault-run/fetch"
)

// handlePolicyTest answers POST /v1/policies/test: may an identity use a
// permission on a resource? The answer comes from identity.allowedBy, the
// evaluation every handler's permission check makes, so it agrees with
// what the real read, generate or issue would be allowed; like those
// checks it looks at no secret, engine or role, so it says nothing about
// whether the resource exists. The dev server's policies have no
// conditions: context is accepted (an object) and changes nothing.
func (s *Server) handlePolicyTest(c *call) *apiError {
	var req fetch.PolicyTestRequest
	if aerr := c.decode(&req, false); aerr != nil {
		return aerr
	}
	p, ok := permNames[req.Permission]
	switch {
	case req.Permission == "":
		return errValidation("permission: required (%s)", permNamesText)
	case !ok:
		return errValidation("permission: unknown permission %q (want %s)", req.Permission, permNamesText)
	}
	if aerr := checkResource(p, req.Path); aerr != nil {
		return aerr
	}
	who, aerr := s.testedIdentity(c.who, req.IdentityID)
	if aerr != nil {
		return aerr
	}
	var d fetch.PolicyDecision
	if policy, ok := who.allowedBy(p, req.Path); ok {
		d.Allowed, d.Policy = true, &policy
	}
	c.json(http.StatusOK, d)
	return nil
}

// resourceForms are the resources the permissions that are not matched
// against a secret path are ever checked on: a fixed first segment, then
// names.
var resourceForms = map[perm]struct {
	first string
	segs  int
	form  string
}{
	permDynamic: {"dynamic", 3, "dynamic/ENGINE/ROLE"},
	permPKI:     {"pki", 2, "pki/ROLE"},
	permACME:    {"acme", 2, "acme/ACCOUNT_NAME"},
}

// checkResource checks that path is something permission p is checked on:
// a secret path, or the form of resourceForms. A path no handler could ever
// check is a 400, not a denial that would look like a policy's doing.
func checkResource(p perm, path string) *apiError {
	if path == "" {
		return errValidation("path: required")
	}
	if err := fetch.ValidatePath(path); err != nil {
		return errValidation("path: %v", err)
	}
	f, ok := resourceForms[p]
	if !ok {
		return nil
	}
	segs := strings.Split(path, "/")
	if len(segs) != f.segs || segs[0] != f.first {
		return errValidation("path %q: permission %s is tested on %s", path, p, f.form)
	}
	return nil
}

// testedIdentity is the identity a policy test is about: the caller's own
// (no identity_id, or its own id), else, for the root token only, the seed
// client of that id. For another caller that is a 403 before any look-up;
// for root an unknown id is a 404 (root may see every identity, so this
// leaks nothing, and a typo in a pre-flight should not pass for a denial).
func (s *Server) testedIdentity(caller *identity, id string) (*identity, *apiError) {
	if id == "" || id == caller.clientID {
		return caller, nil
	}
	if !caller.root {
		e := errDenied("root", "policies/test")
		e.msg = fmt.Sprintf("testing identity %q needs the root token (a token may test only its own identity)", id)
		e.details["identity_id"] = id
		return nil, e
	}
	cc := s.cfg.clients[id]
	if cc == nil {
		return nil, errNotFound("identity %q not found", id)
	}
	return &identity{clientID: cc.id, rules: cc.rules}, nil
}
