package run

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/user"
)

// runAs is the user the child runs as (--user), as resolveUser found it.
// scaivault-run itself keeps its own ids: it must go on re-rendering
// files, signalling the child and revoking leases.
type runAs struct {
	spec  string
	creds user.Creds
	// change is whether the child's ids differ from ours; false when we
	// are not root and were asked for ourselves, which needs no change
	// (and could not set groups: setgroups needs CAP_SETGID).
	change bool
}

// resolveUser resolves spec (Options.User) and checks that this process
// may start a child as that user: as root, any; otherwise only itself.
// Errors name the spec and are exit status 125.
func resolveUser(spec string) (*runAs, error) {
	creds, err := user.Lookup(spec)
	if err != nil {
		return nil, fmt.Errorf("--user %s: %w", spec, err)
	}
	if os.Geteuid() == 0 {
		if missing := missingCaps(neededCaps(creds)...); len(missing) > 0 {
			return nil, fmt.Errorf("--user %s: scaivault-run runs as root but without %s (dropped from its capabilities, as docker run --cap-drop or a pod's securityContext does), so it cannot start the child as that user: keep %s, or leave --user out", spec, joinAnd(missing), joinAnd(missing))
		}
		if err := unmappedIDs(creds); err != nil {
			return nil, fmt.Errorf("--user %s: %w: the child cannot be started as that user here; leave --user out, or map the ids", spec, err)
		}
		return &runAs{spec: spec, creds: creds, change: true}, nil
	}
	uid, gid := os.Getuid(), os.Getgid()
	_, group, _ := strings.Cut(spec, ":")
	switch {
	case creds.UID != uid:
		return nil, fmt.Errorf("--user %s: scaivault-run runs as uid %d, not as root, so it cannot start the child as another user (uid %d): start scaivault-run as root (it keeps root, the child alone runs as %s), or leave --user out", spec, uid, creds.UID, spec)
	case group != "" && creds.GID != gid:
		return nil, fmt.Errorf("--user %s: scaivault-run runs as uid %d, gid %d, not as root, so it cannot start the child with another group (gid %d): start scaivault-run as root, or leave the group out", spec, uid, gid, creds.GID)
	}
	// Ourselves: the child keeps our ids and groups, which is what it
	// would get.
	creds.GID = gid
	if gs, err := os.Getgroups(); err == nil {
		creds.Groups = creds.Groups[:0]
		for _, g := range gs {
			creds.Groups = append(creds.Groups, uint32(g))
		}
	}
	return &runAs{spec: spec, creds: creds}, nil
}

// credential is the child's Credential: nil when nothing changes.
func (u *runAs) credential() *syscall.Credential {
	if u == nil || !u.change {
		return nil
	}
	return u.creds.Credential()
}

// owner is the owner of the files written for the child.
func (u *runAs) owner() *template.Owner {
	if u == nil {
		return nil
	}
	return &template.Owner{UID: u.creds.UID, GID: u.creds.GID}
}

// fileUser is whom the as=file directory is made for.
func (u *runAs) fileUser() *template.FileUser {
	if u == nil {
		return nil
	}
	return &template.FileUser{Owner: *u.owner(), Groups: u.creds.Groups}
}

// changedUser is fileUser when the child's ids differ from ours (the
// user whose renames scaivault-run's own files must withstand), else nil.
func (u *runAs) changedUser() *template.FileUser {
	if u == nil || !u.change {
		return nil
	}
	return u.fileUser()
}

// apply returns opts with what --user changes before anything is
// resolved: the inherited HOME becomes the user's (a HOME given by
// --env, --env-file or --secret still wins, being a later layer), and
// every template without an owner of its own is given to the user.
//
// HOME alone, as gosu and su-exec do: USER and LOGNAME stay as inherited
// (set them with --env if the program reads them). With --pristine
// nothing is inherited and no HOME is added.
func (u *runAs) apply(opts Options) Options {
	if u == nil {
		return opts
	}
	if opts.Env.Inherited != nil {
		opts.Env.Inherited = withHome(opts.Env.Inherited, u.creds.Home)
	}
	specs := slices.Clone(opts.Templates)
	for i := range specs {
		if specs[i].Owner == nil && specs[i].Dst != template.Stdout {
			specs[i].Owner = u.owner()
		}
	}
	opts.Templates = specs
	return opts
}

// withHome is env with HOME set to home: replaced where it was inherited,
// added where it was not there at all. An inherited HOME that is a
// secret reference is somebody's choice and stays.
func withHome(env []string, home string) []string {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			found = true
			if _, isRef, _ := fetch.ParseRef(v); isRef {
				out = append(out, kv)
				continue
			}
			kv = "HOME=" + home
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "HOME="+home)
	}
	return out
}

// groupOnlyOwners fills in the uid of templates whose config block gave a
// group and no user (UID -1): --user's, else scaivault-run's own.
func groupOnlyOwners(specs []template.Spec, u *runAs) []template.Spec {
	if !slices.ContainsFunc(specs, func(sp template.Spec) bool { return sp.Owner != nil && sp.Owner.UID < 0 }) {
		return specs
	}
	uid := os.Geteuid()
	if u != nil {
		uid = u.creds.UID
	}
	specs = slices.Clone(specs)
	for i, sp := range specs {
		if sp.Owner != nil && sp.Owner.UID < 0 {
			specs[i].Owner = &template.Owner{UID: uid, GID: sp.Owner.GID}
		}
	}
	return specs
}

// neededCaps are the capabilities root needs to start the child with
// creds: CAP_SETUID for another uid, CAP_SETGID for the groups (always
// set), CAP_CHOWN when files go to another uid or gid. --user root needs
// only CAP_SETGID.
func neededCaps(creds user.Creds) []capability {
	caps := []capability{capSetgid}
	if creds.UID != os.Geteuid() {
		caps = append(caps, capSetuid)
	}
	if creds.UID != os.Geteuid() || creds.GID != os.Getegid() {
		caps = append(caps, capChown)
	}
	return caps
}

// joinAnd joins names as a sentence does: "a", "a and b", "a, b and c".
func joinAnd(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
