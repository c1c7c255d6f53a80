package devserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// token is an issued client token, kept under the SHA-256 of its value.
type token struct {
	ClientID  string    `json:"client_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// tokenGrace is how long an expired token still answers token_expired
// before it is forgotten (and answers invalid_token).
const tokenGrace = 24 * time.Hour

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// authenticate resolves the bearer token: 401 authentication_failed for a
// missing or malformed header, invalid_token for an unknown token,
// token_expired for an expired one.
func (s *Server) authenticate(r *http.Request) (*identity, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errAuth(fetch.CodeAuthFailed, "missing Authorization header")
	}
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return nil, errAuth(fetch.CodeAuthFailed, "malformed Authorization header (want \"Bearer <token>\")")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.rootToken)) == 1 {
		return &identity{root: true, clientID: "root"}, nil
	}
	s.mu.Lock()
	var t token
	tp := s.tokens[hashToken(tok)]
	if tp != nil {
		t = *tp
	}
	s.mu.Unlock()
	if tp == nil {
		return nil, errAuth(fetch.CodeInvalidToken, "unknown or revoked token")
	}
	if !s.now().Before(t.ExpiresAt) {
		return nil, errAuth(fetch.CodeTokenExpired, "token expired")
	}
	cc := s.cfg.clients[t.ClientID]
	if cc == nil {
		return nil, errAuth(fetch.CodeInvalidToken, "token of an unknown client")
	}
	return &identity{clientID: cc.id, rules: cc.rules, expiresAt: t.ExpiresAt}, nil
}

func errAuth(code, msg string) *apiError {
	e := newAPIError(code, "%s", msg)
	wwwCode := "invalid_token"
	if code == fetch.CodeAuthFailed {
		wwwCode = "invalid_request"
	}
	e.header = map[string]string{"WWW-Authenticate": `Bearer realm="scaivault", error="` + wwwCode + `"`}
	return e
}

// handleToken is the OAuth 2.0 client-credentials grant (RFC 6749 4.4) with
// the error answers of RFC 6749 5.2. Credentials come from HTTP Basic or the
// form body, not both.
func (s *Server) handleToken(c *call) *apiError {
	if err := c.r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return c.tokenError(http.StatusBadRequest, "invalid_request", "request body is too large")
		}
		return c.tokenError(http.StatusBadRequest, "invalid_request", "malformed form body")
	}
	form := c.r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			return c.tokenError(http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return c.tokenError(http.StatusBadRequest, "invalid_request",
			"grant_type is required (application/x-www-form-urlencoded body)")
	case "client_credentials":
	default:
		return c.tokenError(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
	}
	id, secret, basic, msg := clientCredentials(c.r, form)
	if msg != "" {
		return c.tokenError(http.StatusBadRequest, "invalid_request", msg)
	}
	cc := s.cfg.clients[id]
	if cc == nil || subtle.ConstantTimeCompare([]byte(secret), []byte(cc.secret)) != 1 {
		if basic {
			c.w.Header().Set("WWW-Authenticate", `Basic realm="scaivault"`)
		}
		return c.tokenError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	tok := "svt_" + randomString(40)
	s.mu.Lock()
	s.tokens[hashToken(tok)] = &token{ClientID: id, ExpiresAt: s.now().Add(cc.tokenTTL)}
	s.mu.Unlock()
	if err := s.persist(); err != nil {
		return errInternal("save state: %v", err)
	}
	c.w.Header().Set("Pragma", "no-cache")
	c.json(http.StatusOK, fetch.TokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(cc.tokenTTL / time.Second),
	})
	return nil
}

// clientCredentials takes the client id and secret from HTTP Basic (each
// form-urlencoded, RFC 6749 2.3.1) or from the form; msg explains a misuse.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, basic bool, msg string) {
	user, pass, basic := r.BasicAuth()
	inForm := form.Has("client_id") || form.Has("client_secret")
	switch {
	case basic && inForm:
		return "", "", true, "client credentials given both in the Authorization header and in the body"
	case basic:
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "", "", true, "malformed HTTP Basic credentials"
		}
		return id, secret, true, ""
	case r.Header.Get("Authorization") != "":
		return "", "", false, "unsupported Authorization scheme (want Basic or form credentials)"
	case form.Get("client_id") == "":
		return "", "", false, "client_id is required"
	}
	return form.Get("client_id"), form.Get("client_secret"), false, ""
}

// tokenError writes an RFC 6749 5.2 error; it returns nil so a handler can
// return it.
func (c *call) tokenError(status int, code, desc string) *apiError {
	c.w.Header().Set("Pragma", "no-cache")
	c.json(status, fetch.TokenError{Error: code, ErrorDescription: desc})
	return nil
}

func (s *Server) handleWhoami(c *call) *apiError {
	w := fetch.Whoami{IdentityID: c.who.clientID, IdentityType: "service"}
	if c.who.root {
		w.IdentityType = "root"
	} else {
		exp := c.who.expiresAt
		w.ExpiresAt = &exp
	}
	c.json(http.StatusOK, w)
	return nil
}
