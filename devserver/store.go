package devserver

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

const (
	defaultMaxVersions = 10
	maxMaxVersions     = 1000
)

var validSecretTypes = map[string]bool{
	"json": true, "text": true, "password": true, "api_key": true,
	"certificate": true, "ssh_key": true, "binary": true,
}

// secretEntry is a secret with its kept versions. Its data maps and
// metadata are never changed in place once stored (a change stores new
// ones), so answers may share them after the lock is released.
type secretEntry struct {
	path        string
	createdAt   time.Time
	versions    []*secretVersion // ascending
	current     int              // number of the newest version
	deleted     bool
	maxVersions int // 0: default
	metadata    map[string]any
	policy      *rotationPolicy
}

type secretVersion struct {
	num        int
	secretType string
	data       map[string]json.RawMessage
	createdAt  time.Time
	retireAt   time.Time // zero: readable while kept; else until then
	prev       int       // set on a version made by a rotation
	graceEnd   time.Time // idem
}

type rotationPolicy struct {
	id       string
	interval time.Duration
	next     time.Time
}

// checkData checks data against its secret type: types other than json keep
// a string under the single key "value" (binary: base64).
func checkData(secretType string, data map[string]json.RawMessage) error {
	if data == nil {
		return errors.New("required (an object)")
	}
	if secretType == "json" || !validSecretTypes[secretType] {
		return nil
	}
	raw, ok := data["value"]
	if !ok || len(data) != 1 {
		return fmt.Errorf("secret_type %q keeps its value under the one key \"value\"", secretType)
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return fmt.Errorf("value: want a string for secret_type %q", secretType)
	}
	if secretType == "binary" {
		if _, err := base64.StdEncoding.DecodeString(str); err != nil {
			return errors.New("value: secret_type binary wants standard base64")
		}
	}
	return nil
}

func (e *secretEntry) latest() *secretVersion { return e.versions[len(e.versions)-1] }

// find is version num when it is kept and not retired, else nil.
func (e *secretEntry) find(num int, now time.Time) *secretVersion {
	for _, v := range e.versions {
		if v.num == num {
			if !v.retireAt.IsZero() && !now.Before(v.retireAt) {
				return nil
			}
			return v
		}
	}
	return nil
}

// wire is version v as the API answers it, with its data or (a metadata
// patch's answer) without. Metadata is always an object, {} when none was
// set (scaivault-api.md): never left out, never null.
func (e *secretEntry) wire(v *secretVersion, withData bool) *fetch.Secret {
	md := e.metadata
	if md == nil {
		md = map[string]any{}
	}
	s := &fetch.Secret{
		Path: e.path, Version: v.num, SecretType: v.secretType, Metadata: md,
		CreatedAt: e.createdAt, UpdatedAt: v.createdAt, Rotation: e.rotation(v),
	}
	if withData {
		// data is always an object, {} for a secret written with none.
		s.Data = v.data
		if s.Data == nil {
			s.Data = map[string]json.RawMessage{}
		}
	}
	return s
}

func (e *secretEntry) rotation(v *secretVersion) *fetch.Rotation {
	if e.policy == nil && v.prev == 0 {
		return nil
	}
	r := &fetch.Rotation{PreviousVersion: v.prev}
	if e.policy != nil {
		r.PolicyID = e.policy.id
		if !e.policy.next.IsZero() {
			next := e.policy.next
			r.NextRotationAt = &next
		}
	}
	if v.prev != 0 {
		end := v.graceEnd
		r.GracePeriodEndsAt = &end
	}
	return r
}

// prune keeps the newest maxVersions versions and those in a grace period,
// and drops retired ones.
func (e *secretEntry) prune(now time.Time) {
	limit := e.maxVersions
	if limit == 0 {
		limit = defaultMaxVersions
	}
	n := len(e.versions)
	kept := make([]*secretVersion, 0, min(n, limit+1))
	for i, v := range e.versions {
		retired := !v.retireAt.IsZero() && !now.Before(v.retireAt)
		inGrace := !v.retireAt.IsZero() && !retired
		if i == n-1 || inGrace || (i >= n-limit && !retired) {
			kept = append(kept, v)
		}
	}
	e.versions = kept
}

// liveLocked is the secret at p unless missing or soft-deleted.
func (s *Server) liveLocked(p string) *secretEntry {
	e := s.secrets[p]
	if e == nil || e.deleted {
		return nil
	}
	return e
}

// readLocked is a secret's current version, or version num when num > 0.
func (s *Server) readLocked(p string, num int, withData bool) (*fetch.Secret, *apiError) {
	e := s.liveLocked(p)
	if e == nil {
		return nil, errNotFound("secret %s not found", p)
	}
	v := e.latest()
	if num > 0 {
		if v = e.find(num, s.now()); v == nil {
			return nil, errNotFound("secret %s version %d not found", p, num)
		}
	}
	return e.wire(v, withData), nil
}

// writeInput is a validated PUT body.
type writeInput struct {
	data        map[string]json.RawMessage
	secretType  string // "": keep, else json
	metadata    map[string]any
	hasMetadata bool
	maxVersions int // 0: keep
	cas         *int
}

func (s *Server) writeSecret(p string, in writeInput) (*fetch.WriteResult, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e := s.secrets[p]
	cur := 0
	if e != nil && !e.deleted {
		cur = e.current
	}
	if in.cas != nil && *in.cas != cur {
		if cur == 0 {
			return nil, errConflict("cas %d: secret %s does not exist", *in.cas, p)
		}
		return nil, errConflict("cas %d: secret %s is at version %d", *in.cas, p, cur)
	}
	typ := in.secretType
	if typ == "" {
		typ = "json"
		if cur > 0 {
			typ = e.latest().secretType
		}
	}
	if err := checkData(typ, in.data); err != nil {
		return nil, errValidation("data: %v", err)
	}
	if e == nil {
		e = &secretEntry{path: p, createdAt: now}
		s.secrets[p] = e
		s.sortedPaths = nil
	}
	e.deleted = false
	if in.hasMetadata {
		e.metadata = in.metadata
	}
	if in.maxVersions > 0 {
		e.maxVersions = in.maxVersions
	}
	e.current++
	e.versions = append(e.versions, &secretVersion{num: e.current, secretType: typ, data: in.data, createdAt: now})
	e.prune(now)
	s.hub.publish(fetch.EventSecretUpdated, fetch.EventData{Path: p, Version: e.current, At: now})
	return &fetch.WriteResult{Path: p, Version: e.current, CreatedAt: now}, nil
}

func (s *Server) patchMetadata(p string, patch map[string]any, clear bool) (*fetch.Secret, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.liveLocked(p)
	if e == nil {
		return nil, errNotFound("secret %s not found", p)
	}
	if clear {
		e.metadata = nil
	} else {
		e.metadata = mergePatch(e.metadata, patch)
	}
	now := s.now()
	s.hub.publish(fetch.EventSecretUpdated, fetch.EventData{Path: p, Version: e.current, At: now})
	return e.wire(e.latest(), false), nil
}

// mergePatch applies an RFC 7396 merge patch without changing target.
func mergePatch(target, patch map[string]any) map[string]any {
	out := make(map[string]any, len(target)+len(patch))
	for k, v := range target {
		out[k] = v
	}
	for k, pv := range patch {
		switch pm := pv.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			tm, _ := out[k].(map[string]any)
			out[k] = mergePatch(tm, pm)
		default:
			out[k] = pv
		}
	}
	return out
}

func (s *Server) deleteSecret(p string, permanent bool) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[p]
	if e == nil || (e.deleted && !permanent) {
		return errNotFound("secret %s not found", p)
	}
	if permanent {
		delete(s.secrets, p)
		s.sortedPaths = nil
	} else {
		e.deleted = true
	}
	s.hub.publish(fetch.EventSecretDeleted, fetch.EventData{
		Path: p, Version: e.current, Permanent: &permanent, At: s.now(),
	})
	return nil
}

// rotateSecret makes a new version from newData (nil: generated). Every
// older version is retired at the end of the grace period.
func (s *Server) rotateSecret(p string, newData map[string]json.RawMessage, grace time.Duration) (*fetch.Secret, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.liveLocked(p)
	if e == nil {
		return nil, errNotFound("secret %s not found", p)
	}
	now := s.now()
	cur := e.latest()
	if newData == nil {
		newData = generateData(cur.secretType, cur.data)
	} else if err := checkData(cur.secretType, newData); err != nil {
		return nil, errValidation("new_value: %v", err)
	}
	end := now.Add(grace)
	for _, v := range e.versions {
		if v.retireAt.IsZero() || v.retireAt.After(end) {
			v.retireAt = end
		}
	}
	e.current++
	nv := &secretVersion{num: e.current, secretType: cur.secretType, data: newData,
		createdAt: now, prev: cur.num, graceEnd: end}
	e.versions = append(e.versions, nv)
	if e.policy != nil && e.policy.interval > 0 {
		e.policy.next = now.Add(e.policy.interval)
	}
	e.prune(now)
	s.hub.publish(fetch.EventSecretRotated, fetch.EventData{Path: p, Version: e.current, At: now})
	return e.wire(nv, true), nil
}

// generateData gives every string value a fresh random one (binary: 32
// random bytes, base64) and keeps the other values.
func generateData(secretType string, cur map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(cur))
	for k, v := range cur {
		var str string
		if json.Unmarshal(v, &str) != nil {
			out[k] = v
			continue
		}
		nv := randomString(32)
		if secretType == "binary" {
			b := make([]byte, 32)
			rand.Read(b)
			nv = base64.StdEncoding.EncodeToString(b)
		}
		out[k], _ = json.Marshal(nv)
	}
	return out
}

// sortedLocked is every stored path (soft-deleted ones too) in order.
func (s *Server) sortedLocked() []string {
	if s.sortedPaths == nil {
		s.sortedPaths = make([]string, 0, len(s.secrets))
		for p := range s.secrets {
			s.sortedPaths = append(s.sortedPaths, p)
		}
		sort.Strings(s.sortedPaths)
	}
	return s.sortedPaths
}

// listSecrets is up to limit entries under prefix after the path after,
// leaving out soft-deleted secrets and those who may not list.
func (s *Server) listSecrets(who *identity, prefix, after string, limit int) ([]fetch.ListEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	paths := s.sortedLocked()
	i := sort.SearchStrings(paths, max(prefix, after))
	if i < len(paths) && paths[i] == after {
		i++
	}
	out := []fetch.ListEntry{}
	for ; i < len(paths) && len(out) <= limit; i++ {
		p := paths[i]
		if !strings.HasPrefix(p, prefix) {
			break
		}
		e := s.secrets[p]
		if e.deleted || !who.can(permList, p) {
			continue
		}
		v := e.latest()
		out = append(out, fetch.ListEntry{Path: p, Version: v.num, SecretType: v.secretType, UpdatedAt: v.createdAt})
	}
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// dueSecrets lists rotation policies due within d, overdue ones included.
func (s *Server) dueSecrets(who *identity, d time.Duration) []fetch.DueEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.now().Add(d)
	out := []fetch.DueEntry{}
	for p, e := range s.secrets {
		if e.deleted || e.policy == nil || e.policy.next.IsZero() || e.policy.next.After(limit) {
			continue
		}
		if who.can(permList, p) {
			out = append(out, fetch.DueEntry{SecretPath: p, PolicyID: e.policy.id, NextRotationAt: e.policy.next})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].NextRotationAt.Equal(out[j].NextRotationAt) {
			return out[i].NextRotationAt.Before(out[j].NextRotationAt)
		}
		return out[i].SecretPath < out[j].SecretPath
	})
	return out
}
