package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"golang.org/x/oauth2"
)

func TestIsTemporary(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	tokenErr := func(status int) error {
		return &tokenFetchError{url: "http://x/v1/auth/token", err: &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}}}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"503", &APIError{StatusCode: 503, Code: CodeUnavailable}, true},
		{"429", &APIError{StatusCode: 429, Code: CodeRateLimited}, true},
		{"500", &APIError{StatusCode: 500, Code: CodeInternal}, true},
		{"404", &APIError{StatusCode: 404, Code: CodeNotFound}, false},
		{"403", &APIError{StatusCode: 403, Code: CodeAccessDenied}, false},
		{"400", &APIError{StatusCode: 400, Code: CodeValidation}, false},
		{"wrapped 503", fmt.Errorf("read secret %q: %w", "a", &APIError{StatusCode: 503}), true},
		{"connection refused", refused, true},
		{"token endpoint 503", tokenErr(503), true},
		{"token endpoint 429", tokenErr(429), true},
		{"token endpoint 401", tokenErr(401), false},
		{"joined 503 and 404", errors.Join(&APIError{StatusCode: 503}, &APIError{StatusCode: 404}), false},
		{"plain error", errors.New("boom"), false},
		{"cancelled request", &url.Error{Op: "Post", URL: "http://x", Err: context.Canceled}, false},
	}
	for _, c := range cases {
		if got := IsTemporary(c.err); got != c.want {
			t.Errorf("%s: IsTemporary = %v, want %v", c.name, got, c.want)
		}
	}
}
