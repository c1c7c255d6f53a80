package devserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

const (
	defaultListLimit = 50
	maxListLimit     = 1000
	maxBatchPaths    = 100
)

// securedPath parses the {path} wildcard and checks permission p on it: a
// 403 comes before any existence check, so it leaks nothing.
func (c *call) securedPath(p perm) (string, *apiError) {
	path, aerr := c.secretPath(0)
	if aerr != nil {
		return "", aerr
	}
	if !c.who.can(p, path) {
		return "", errDenied(p.String(), path)
	}
	return path, nil
}

func (s *Server) handleRead(c *call) *apiError {
	path, aerr := c.securedPath(permRead)
	if aerr != nil {
		return aerr
	}
	q, aerr := c.query()
	if aerr != nil {
		return aerr
	}
	num := 0
	if v := q.Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errValidation("version: want a positive integer")
		}
		num = n
	}
	s.mu.Lock()
	sec, aerr := s.readLocked(path, num, true)
	s.mu.Unlock()
	if aerr != nil {
		return aerr
	}
	etag := strconv.Quote(strconv.Itoa(sec.Version))
	c.w.Header().Set("ETag", etag)
	if etagMatches(c.r.Header.Get("If-None-Match"), sec.Version) {
		c.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	c.json(http.StatusOK, sec)
	return nil
}

// etagMatches reads If-None-Match: a list of (weak or strong) tags or "*".
func etagMatches(h string, version int) bool {
	if h == "" {
		return false
	}
	want := strconv.Itoa(version)
	for _, tag := range strings.Split(h, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == `"`+want+`"` {
			return true
		}
	}
	return false
}

func (s *Server) handleWrite(c *call) *apiError {
	path, aerr := c.securedPath(permWrite)
	if aerr != nil {
		return aerr
	}
	var req fetch.WriteRequest
	if aerr := c.decode(&req, false); aerr != nil {
		return aerr
	}
	in := writeInput{secretType: req.SecretType, maxVersions: req.MaxVersions, cas: req.CAS}
	if req.Data == nil {
		return errValidation("data: required (an object)")
	}
	in.data, _ = rawData(req.Data)
	if in.secretType != "" && !validSecretTypes[in.secretType] {
		return errValidation("secret_type: unknown type %q (want json, text, password, api_key, certificate, ssh_key or binary)", in.secretType)
	}
	if req.MaxVersions < 0 || req.MaxVersions > maxMaxVersions {
		return errValidation("max_versions: want 1 to %d", maxMaxVersions)
	}
	if req.CAS != nil && *req.CAS < 0 {
		return errValidation("cas: want a version number, 0 for create only")
	}
	if req.Metadata != nil {
		in.metadata, in.hasMetadata = req.Metadata, true
	}
	res, aerr := s.writeSecret(path, in)
	if aerr != nil {
		return aerr
	}
	return s.saved(c, http.StatusOK, res)
}

func (s *Server) handlePatchMetadata(c *call) *apiError {
	path, aerr := c.securedPath(permWrite)
	if aerr != nil {
		return aerr
	}
	var req struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	if aerr := c.decode(&req, false); aerr != nil {
		return aerr
	}
	var patch map[string]any
	clear := string(req.Metadata) == "null"
	if req.Metadata == nil {
		return errValidation("metadata: required (a JSON merge patch object)")
	}
	if !clear {
		if err := decodeJSON(req.Metadata, &patch); err != nil || patch == nil {
			return errValidation("metadata: want an object")
		}
	}
	sec, aerr := s.patchMetadata(path, patch, clear)
	if aerr != nil {
		return aerr
	}
	return s.saved(c, http.StatusOK, sec)
}

func (s *Server) handleDelete(c *call) *apiError {
	path, aerr := c.securedPath(permDelete)
	if aerr != nil {
		return aerr
	}
	q, aerr := c.query()
	if aerr != nil {
		return aerr
	}
	permanent := false
	if v := q.Get("permanent"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errValidation("permanent: want true or false")
		}
		permanent = b
	}
	if aerr := s.deleteSecret(path, permanent); aerr != nil {
		return aerr
	}
	return s.saved(c, http.StatusNoContent, nil)
}

func (s *Server) handleRotate(c *call) *apiError {
	path, aerr := c.securedPath(permRotate)
	if aerr != nil {
		return aerr
	}
	var req fetch.RotateRequest
	if aerr := c.decode(&req, true); aerr != nil {
		return aerr
	}
	var grace time.Duration
	if req.GracePeriod != "" {
		d, err := fetch.ParseDuration(req.GracePeriod)
		if err != nil {
			return errValidation("grace_period: %v", err)
		}
		grace = d
	}
	var data map[string]json.RawMessage
	if req.NewValue != nil {
		data, _ = rawData(req.NewValue)
	}
	sec, aerr := s.rotateSecret(path, data, grace)
	if aerr != nil {
		return aerr
	}
	return s.saved(c, http.StatusOK, sec)
}

func (s *Server) handleList(c *call) *apiError {
	q, aerr := c.query()
	if aerr != nil {
		return aerr
	}
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errValidation("limit: want a positive integer (at most %d)", maxListLimit)
		}
		limit = min(n, maxListLimit)
	}
	after := ""
	if v := q.Get("cursor"); v != "" {
		var ok bool
		if after, ok = decodeCursor(v); !ok {
			return errValidation("cursor: not a cursor of this server")
		}
	}
	entries, more := s.listSecrets(c.who, q.Get("prefix"), after, limit)
	page := fetch.ListPage{Data: entries, HasMore: more}
	if more {
		cur := encodeCursor(entries[len(entries)-1].Path)
		page.Cursor = &cur
	}
	c.json(http.StatusOK, page)
	return nil
}

const cursorPrefix = "after:"

func encodeCursor(path string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + path))
}

func decodeCursor(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	p, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok || fetch.ValidatePath(p) != nil {
		return "", false
	}
	return p, true
}

func (s *Server) handleBatchRead(c *call) *apiError {
	var req fetch.BatchReadRequest
	if aerr := c.decode(&req, false); aerr != nil {
		return aerr
	}
	if len(req.Paths) > maxBatchPaths {
		return errValidation("paths: at most %d paths per call, got %d", maxBatchPaths, len(req.Paths))
	}
	res := fetch.BatchReadResult{Secrets: map[string]*fetch.Secret{}, Errors: map[string]fetch.ErrorRef{}}
	s.mu.Lock()
	for _, p := range req.Paths {
		if err := fetch.ValidatePath(p); err != nil {
			res.Errors[p] = fetch.ErrorRef{Code: fetch.CodeValidation, Message: err.Error()}
			continue
		}
		if !c.who.can(permRead, p) {
			res.Errors[p] = fetch.ErrorRef{Code: fetch.CodeAccessDenied, Message: "permission read denied on " + p}
			continue
		}
		sec, aerr := s.readLocked(p, 0, true)
		if aerr != nil {
			res.Errors[p] = fetch.ErrorRef{Code: aerr.code, Message: aerr.msg}
			continue
		}
		res.Secrets[p] = sec
	}
	s.mu.Unlock()
	c.json(http.StatusOK, res)
	return nil
}

func (s *Server) handleDue(c *call) *apiError {
	q, aerr := c.query()
	if aerr != nil {
		return aerr
	}
	hours := 168
	if v := q.Get("within_hours"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errValidation("within_hours: want a whole number of hours, 0 or more")
		}
		hours = min(n, 1_000_000)
	}
	c.json(http.StatusOK, fetch.DueList{Data: s.dueSecrets(c.who, time.Duration(hours)*time.Hour)})
	return nil
}
