package devserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/scailabs/scaivault-run/fetch"
)

// lease is a dynamic credential. The JSON tags are its saved form.
type lease struct {
	ID           string                     `json:"lease_id"`
	Engine       string                     `json:"engine"`
	Role         string                     `json:"role"`
	Username     string                     `json:"username"`
	Data         map[string]json.RawMessage `json:"data"`
	Renewable    bool                       `json:"renewable"`
	IssuedAt     time.Time                  `json:"issued_at"`
	ExpiresAt    time.Time                  `json:"expires_at"`
	MaxExpiresAt time.Time                  `json:"max_expires_at"`

	revoking bool      // a revocation (or expiry) is running its statements
	retryAt  time.Time // after a failed expiry: when the sweeper tries again
}

// resource is what the dynamic permission is matched against.
func (l *lease) resource() string { return "dynamic/" + l.Engine + "/" + l.Role }

// alive reports whether the lease answers look-ups at now.
func (l *lease) alive(now time.Time) bool { return !l.revoking && now.Before(l.ExpiresAt) }

func (l *lease) wire(now time.Time, withData bool) *fetch.Lease {
	remaining := max(l.ExpiresAt.Sub(now), 0)
	fl := &fetch.Lease{
		LeaseID: l.ID, Engine: l.Engine, Role: l.Role, LeaseDuration: int64(remaining / time.Second),
		Renewable: l.Renewable, IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, MaxExpiresAt: l.MaxExpiresAt,
	}
	if withData {
		fl.Data = l.Data
	}
	return fl
}

// requestDuration parses an optional positive duration of a request body
// (ttl, increment) with fetch.ParseDuration: "90s", "1h30m", "90d", or a bare
// number of seconds in a string ("90"). A negative one is a 400.
//
// A JSON number (90, not "90") is refused with a 400 that names the forms
// (describeJSONError): the contract says request durations are strings,
// and accepting numbers too would make the dev server more lenient than
// the server it stands in for. It would also hide a known client bug: a
// Go time.Duration marshals as nanoseconds, so {"ttl": 7200000000000}
// meant as 2h would silently become a ttl capped at the role's maximum.
func requestDuration(field, s string) (time.Duration, *apiError) {
	if s == "" {
		return 0, nil
	}
	d, err := fetch.ParseDuration(s)
	if err != nil {
		return 0, errValidation("%s: %v", field, err)
	}
	if d == 0 {
		return 0, errValidation("%s: must be positive", field)
	}
	return d, nil
}

func (s *Server) handleGenerate(c *call) *apiError {
	engName, aerr := c.name(0, "engine")
	if aerr != nil {
		return aerr
	}
	roleName, aerr := c.name(1, "role")
	if aerr != nil {
		return aerr
	}
	res := "dynamic/" + engName + "/" + roleName
	if !c.who.can(permDynamic, res) {
		return errDenied("dynamic", res)
	}
	eng := s.cfg.engines[engName]
	if eng == nil {
		return errNotFound("dynamic engine %s not found", engName)
	}
	role := eng.roles[roleName]
	if role == nil {
		return errNotFound("role %s of dynamic engine %s not found", roleName, engName)
	}
	var req fetch.GenerateRequest
	if aerr := c.decode(&req, true); aerr != nil {
		return aerr
	}
	ttl, aerr := requestDuration("ttl", req.TTL)
	if aerr != nil {
		return aerr
	}
	if ttl == 0 {
		ttl = role.ttl
	}
	l, aerr := s.createLease(c.r.Context(), eng, role, min(ttl, role.maxTTL))
	if aerr != nil {
		return aerr
	}
	c.json(http.StatusOK, l)
	return nil
}

// createLease makes the credential (a PostgreSQL role for postgres), then
// stores the lease. No lock is held while PostgreSQL works.
func (s *Server) createLease(ctx context.Context, eng *engineConfig, role *roleConfig, ttl time.Duration) (*fetch.Lease, *apiError) {
	now := s.now()
	name := leaseUsername(role.name)
	password := randomString(32)
	l := &lease{
		ID: "dyn_" + eng.name + "_" + role.name + "_" + randomHex(12), Engine: eng.name, Role: role.name,
		Username: name, Data: leaseData(eng, name, password), Renewable: role.renewable,
		IssuedAt: now, ExpiresAt: now.Add(ttl), MaxExpiresAt: now.Add(role.maxTTL),
	}
	if eng.kind == "postgres" {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, eng.connURL, role.create, name, password, l.ExpiresAt); err != nil {
			return nil, errInternal("dynamic engine %s role %s: create credential: %v", eng.name, role.name, err)
		}
	}
	s.mu.Lock()
	s.leases[l.ID] = l
	fl := l.wire(now, true)
	s.mu.Unlock()
	s.kick()
	if err := s.persist(); err != nil {
		return nil, errInternal("save state: %v", err)
	}
	return fl, nil
}

// leaseUsername is v-ROLE-8HEX, within PostgreSQL's 63-byte identifiers.
func leaseUsername(role string) string {
	if len(role) > 50 {
		role = role[:50]
	}
	return "v-" + role + "-" + randomHex(4)
}

func leaseData(eng *engineConfig, name, password string) map[string]json.RawMessage {
	data := map[string]json.RawMessage{}
	data["username"], _ = json.Marshal(name)
	data["password"], _ = json.Marshal(password)
	if eng.connURL != "" {
		if u, err := url.Parse(eng.connURL); err == nil {
			u.User = url.UserPassword(name, password)
			data["connection_url"], _ = json.Marshal(u.String())
		}
	}
	return data
}

// liveLease finds a lease for renew and look-up: 404 when unknown, expired
// or revoked, 403 without the dynamic permission on its role.
func (s *Server) liveLease(c *call) (*lease, *apiError) {
	id, aerr := c.name(0, "lease_id")
	if aerr != nil {
		return nil, aerr
	}
	l := s.leases[id]
	if l == nil || !l.alive(s.now()) {
		return nil, errNotFound("lease %s not found (expired or revoked)", id)
	}
	if !c.who.can(permDynamic, l.resource()) {
		return nil, errDenied("dynamic", l.resource())
	}
	return l, nil
}

func (s *Server) handleLookup(c *call) *apiError {
	s.mu.Lock()
	l, aerr := s.liveLease(c)
	var fl *fetch.Lease
	if aerr == nil {
		fl = l.wire(s.now(), false)
	}
	s.mu.Unlock()
	if aerr != nil {
		return aerr
	}
	c.json(http.StatusOK, fl)
	return nil
}

func (s *Server) handleRenew(c *call) *apiError {
	var req fetch.RenewRequest
	if aerr := c.decode(&req, true); aerr != nil {
		return aerr
	}
	inc, aerr := requestDuration("increment", req.Increment)
	if aerr != nil {
		return aerr
	}
	s.mu.Lock()
	l, aerr := s.liveLease(c)
	var eng *engineConfig
	var role *roleConfig
	if aerr == nil {
		eng = s.cfg.engines[l.Engine]
		if eng != nil {
			role = eng.roles[l.Role]
		}
		switch {
		case !l.Renewable:
			aerr = errValidation("lease %s is not renewable", l.ID)
		case role == nil:
			aerr = errValidation("lease %s: role %s of engine %s no longer exists", l.ID, l.Role, l.Engine)
		}
	}
	if aerr != nil {
		s.mu.Unlock()
		return aerr
	}
	if inc == 0 {
		inc = role.ttl
	}
	exp := s.now().Add(inc)
	if exp.After(l.MaxExpiresAt) {
		exp = l.MaxExpiresAt
	}
	name := l.Username
	s.mu.Unlock()
	if eng.kind == "postgres" {
		ctx, cancel := context.WithTimeout(c.r.Context(), 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, eng.connURL, role.renw, name, "", exp); err != nil {
			return errInternal("dynamic engine %s role %s: renew credential: %v", eng.name, role.name, err)
		}
	}
	s.mu.Lock()
	if s.leases[l.ID] == l && l.alive(s.now()) {
		l.ExpiresAt = exp
	}
	fl := l.wire(s.now(), false)
	s.mu.Unlock()
	s.kick()
	return s.saved(c, http.StatusOK, fl)
}

// handleRevoke answers 204 also for an unknown, expired or revoked lease.
func (s *Server) handleRevoke(c *call) *apiError {
	id, aerr := c.name(0, "lease_id")
	if aerr != nil {
		return aerr
	}
	s.mu.Lock()
	l := s.leases[id]
	if l == nil || !l.alive(s.now()) {
		s.mu.Unlock()
		c.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if !c.who.can(permDynamic, l.resource()) {
		s.mu.Unlock()
		return errDenied("dynamic", l.resource())
	}
	l.revoking = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.r.Context(), 30*time.Second)
	defer cancel()
	err := s.engineRevoke(ctx, l)
	s.mu.Lock()
	l.revoking = false
	if err == nil {
		delete(s.leases, l.ID)
		s.hub.publish(fetch.EventLeaseRevoked, fetch.EventData{
			LeaseID: l.ID, Engine: l.Engine, Role: l.Role, At: s.now(),
		})
	}
	s.mu.Unlock()
	if err != nil {
		return errInternal("revoke lease %s: %v", l.ID, err)
	}
	return s.saved(c, http.StatusNoContent, nil)
}

// engineRevoke runs the revocation statements of a postgres lease; other
// engines have nothing to undo.
func (s *Server) engineRevoke(ctx context.Context, l *lease) error {
	eng := s.cfg.engines[l.Engine]
	if eng == nil || eng.kind != "postgres" {
		return nil
	}
	stmts := defaultRevocation
	if role := eng.roles[l.Role]; role != nil {
		stmts = role.revoke
	}
	return pgExec(ctx, eng.connURL, stmts, l.Username, "", time.Time{})
}
