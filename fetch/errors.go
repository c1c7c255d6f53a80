package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors. An *APIError matches the sentinel of its class through
// errors.Is, so callers write errors.Is(err, fetch.ErrNotFound).
var (
	ErrValidation     = errors.New("validation error")
	ErrAuthentication = errors.New("authentication failed")
	ErrAccessDenied   = errors.New("access denied")
	ErrNotFound       = errors.New("not found")
	ErrConflict       = errors.New("conflict")
	ErrRateLimited    = errors.New("rate limited")
	ErrUnavailable    = errors.New("service unavailable")
	// ErrEventsNotSupported is returned by Events when the server answers 404.
	ErrEventsNotSupported = errors.New("server offers no change events")
)

// APIError is a non-2xx answer from ScaiVault. It never holds secret values:
// the server's message names paths and codes only.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	Details    map[string]any
	RequestID  string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

// Error reads `access denied: permission read denied on app/x (req_01H…)`:
// the code in words, unless the message already says it, then the message.
func (e *APIError) Error() string {
	kind := strings.ReplaceAll(e.Code, "_", " ")
	msg := e.Message
	switch {
	case msg == "" && kind == "":
		msg = http.StatusText(e.StatusCode)
	case msg == "":
		msg = kind
	case kind != "" && !strings.Contains(strings.ToLower(msg), kind):
		msg = kind + ": " + msg
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s (%s)", msg, e.RequestID)
	}
	return msg
}

// Is matches the sentinel of the error's class.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrValidation:
		return e.Code == CodeValidation || (e.Code == "" && e.StatusCode == http.StatusBadRequest)
	case ErrAuthentication:
		return e.StatusCode == http.StatusUnauthorized
	case ErrAccessDenied:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusInternalServerError
	}
	return false
}

// Temporary reports whether the request may succeed when retried:
// 429, 500, 503 and 502/504 from a proxy in front of the server.
func (e *APIError) Temporary() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// ErrorFromCode builds the APIError of a per-path batch-read error.
func ErrorFromCode(code, message string) *APIError {
	return &APIError{StatusCode: StatusForCode(code), Code: code, Message: message}
}

// StatusForCode is the HTTP status of an error code of scaivault-api.md.
func StatusForCode(code string) int {
	switch code {
	case CodeValidation:
		return http.StatusBadRequest
	case CodeAuthFailed, CodeInvalidToken, CodeTokenExpired:
		return http.StatusUnauthorized
	case CodeAccessDenied:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// IsTLS reports whether err is a failed TLS handshake (*TLSError): what the
// start-up gate fails on at once, as the same handshake a second later
// fails the same way, and the error says which setting fixes it.
func IsTLS(err error) bool {
	var te *TLSError
	return errors.As(err, &te)
}

// IsTemporary reports whether err may go away when the call is repeated: the
// server could not be reached, answered 5xx or 429, or timed out. Answers
// that will not change (not found, access denied, validation) are permanent,
// even when joined with temporary ones.
func IsTemporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, perm := range []error{ErrNotFound, ErrAccessDenied, ErrValidation, ErrAuthentication, ErrConflict} {
		if errors.Is(err, perm) {
			return false
		}
	}
	// A failed handshake may mend (a server certificate renewed late, a
	// load balancer serving the wrong one for a while, a client
	// certificate rotated in): a watcher retries it at its own pace. The
	// start-up gate does not wait for that (IsTLS), nor does one request
	// retry it (shouldRetry).
	var te *TLSError
	if errors.As(err, &te) {
		return true
	}
	// *APIError and the token endpoint's errors say it themselves.
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
