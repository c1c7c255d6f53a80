package devserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/scailabs/scaivault-run/fetch"
)

// call is one request on its way through a handler.
type call struct {
	s    *Server
	w    *statusWriter
	r    *http.Request
	rid  string
	who  *identity
	args []string // wildcard values of the route, still escaped
}

// apiError is an error answer of scaivault-api.md. Its message names paths,
// fields and codes, never a secret value.
type apiError struct {
	status     int
	code, msg  string
	details    map[string]any
	retryAfter int
	header     map[string]string
}

func newAPIError(code, format string, args ...any) *apiError {
	return &apiError{status: fetch.StatusForCode(code), code: code, msg: fmt.Sprintf(format, args...)}
}

func errValidation(format string, args ...any) *apiError {
	return newAPIError(fetch.CodeValidation, format, args...)
}

func errNotFound(format string, args ...any) *apiError {
	return newAPIError(fetch.CodeNotFound, format, args...)
}

func errConflict(format string, args ...any) *apiError {
	return newAPIError(fetch.CodeConflict, format, args...)
}

func errInternal(format string, args ...any) *apiError {
	return newAPIError(fetch.CodeInternal, format, args...)
}

// errDenied is a 403 naming the resource and the permission it needs.
func errDenied(permission, resource string) *apiError {
	e := newAPIError(fetch.CodeAccessDenied, "permission %s denied on %s", permission, resource)
	e.details = map[string]any{"path": resource, "permission": permission}
	return e
}

// json writes a JSON answer.
func (c *call) json(status int, v any) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	enc := json.NewEncoder(c.w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// fail writes an error answer with the contract's body.
func (c *call) fail(e *apiError) {
	h := c.w.Header()
	for k, v := range e.header {
		h.Set(k, v)
	}
	details := e.details
	if details == nil {
		details = map[string]any{}
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
		if e.status == http.StatusTooManyRequests {
			details["retry_after"] = e.retryAfter
		}
	}
	c.json(e.status, fetch.ErrorBody{Error: fetch.ErrorDetail{
		Code: e.code, Message: e.msg, Details: details, RequestID: c.rid,
	}})
}

// decode reads a JSON object body into v. Unknown fields are refused; an
// empty body leaves v as it is when optional.
func (c *call) decode(v any, optional bool) *apiError {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errValidation("request body is larger than %d bytes", tooBig.Limit)
		}
		return errValidation("read request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return errValidation("request body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errValidation("request body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errValidation("request body: data after the JSON object")
	}
	return nil
}

// durationFields are the request-body fields that hold a duration string
// (see requestDuration for why a JSON number is refused).
var durationFields = map[string]bool{
	"ttl": true, "increment": true, "grace_period": true, "latency": true, "in": true,
}

// describeJSONError names the field and the problem without quoting the
// body: a syntax error's text may hold a piece of a secret.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return "want a JSON object"
		}
		if durationFields[typeErr.Field] && typeErr.Value == "number" {
			return fmt.Sprintf("%s: want a duration string such as \"90s\", \"1h30m\", \"90d\" or \"90\" (seconds), not a JSON number",
				typeErr.Field)
		}
		return fmt.Sprintf("%s: want %s", typeErr.Field, jsonTypeName(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at offset %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f
	}
	return "invalid JSON"
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return kind
}

// query parses the query string strictly: a bad escape is a 400.
func (c *call) query() (url.Values, *apiError) {
	q, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return nil, errValidation("query string: %v", err)
	}
	return q, nil
}

// secretPath unescapes the {path} wildcard segment by segment and validates it.
func (c *call) secretPath(i int) (string, *apiError) {
	segs := strings.Split(c.args[i], "/")
	for j, seg := range segs {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return "", errValidation("secret path: segment %d: bad percent-encoding", j+1)
		}
		if strings.Contains(u, "/") {
			return "", errValidation("secret path: segment %d: an encoded slash (%%2F) is not a path separator", j+1)
		}
		segs[j] = u
	}
	p := strings.Join(segs, "/")
	if err := fetch.ValidatePath(p); err != nil {
		return "", errValidation("%v", err)
	}
	return p, nil
}

// name unescapes a one-segment wildcard (engine, role, lease id, CA id) and
// checks it against [A-Za-z0-9._-]+.
func (c *call) name(i int, what string) (string, *apiError) {
	u, err := url.PathUnescape(c.args[i])
	if err != nil {
		return "", errValidation("%s: bad percent-encoding", what)
	}
	if u == "" || u == "." || u == ".." {
		return "", errValidation("%s: empty or invalid", what)
	}
	for _, r := range u {
		if !isSegChar(r) {
			return "", errValidation("%s %q: character %q is not allowed (want [A-Za-z0-9._-])", what, u, r)
		}
	}
	return u, nil
}

// statusWriter remembers the status written and passes flushes on.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// decodeJSON decodes raw JSON keeping numbers exact (json.Number).
func decodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// saved ends a handler that changed the state: it persists it (with
// --data) and answers v, or status alone when v is nil.
func (s *Server) saved(c *call, status int, v any) *apiError {
	if err := s.persist(); err != nil {
		return errInternal("save state: %v", err)
	}
	if v == nil {
		c.w.WriteHeader(status)
		return nil
	}
	c.json(status, v)
	return nil
}
