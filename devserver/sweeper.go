package devserver

import (
	"context"
	"time"
)

const (
	sweepMaxWait    = time.Minute
	sweepRetryAfter = 5 * time.Second
)

// sweeper is the one background goroutine: it ends expired leases on time
// (dropping the postgres roles), moves ACME orders on (acme.go) and
// forgets long-expired tokens. kick wakes
// it when a lease's expiry moved.
func (s *Server) sweeper() {
	defer s.wg.Done()
	t := time.NewTimer(sweepMaxWait)
	defer t.Stop()
	for {
		t.Reset(s.sweep(s.ctx))
		select {
		case <-s.done:
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

func (s *Server) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sweep removes what has expired and returns how long to wait for the next
// lease to expire (at most sweepMaxWait).
func (s *Server) sweep(ctx context.Context) time.Duration {
	now := s.now()
	next := now.Add(sweepMaxWait)
	var pg []*lease
	removed := false
	s.mu.Lock()
	for id, l := range s.leases {
		switch {
		case l.revoking:
		case now.Before(l.ExpiresAt):
			next = earlier(next, l.ExpiresAt)
		case s.isPostgres(l) && now.Before(l.retryAt):
			next = earlier(next, l.retryAt)
		case s.isPostgres(l):
			l.revoking = true
			pg = append(pg, l)
		default:
			delete(s.leases, id)
			removed = true
		}
	}
	if due, changed := s.advanceACMELocked(now); changed || !due.IsZero() {
		removed = removed || changed
		if !due.IsZero() {
			next = earlier(next, due)
		}
	}
	for h, t := range s.tokens {
		if now.Sub(t.ExpiresAt) > tokenGrace {
			delete(s.tokens, h)
			removed = true
		}
	}
	s.mu.Unlock()
	for _, l := range pg {
		if s.expirePostgres(ctx, l) {
			removed = true
		} else {
			next = earlier(next, now.Add(sweepRetryAfter))
		}
	}
	if removed {
		if err := s.persist(); err != nil {
			s.logger.Error("save state after lease expiry", "error", err)
		}
	}
	return max(next.Sub(now), time.Millisecond)
}

// expirePostgres drops an expired lease's role; on failure the lease stays
// (invisible) and is tried again after sweepRetryAfter.
func (s *Server) expirePostgres(ctx context.Context, l *lease) bool {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := s.engineRevoke(ctx, l)
	s.mu.Lock()
	defer s.mu.Unlock()
	l.revoking = false
	if err != nil {
		l.retryAt = s.now().Add(sweepRetryAfter)
		s.logger.Warn("expire lease: revocation failed", "lease", l.ID, "error", err)
		return false
	}
	delete(s.leases, l.ID)
	return true
}

func (s *Server) isPostgres(l *lease) bool {
	e := s.cfg.engines[l.Engine]
	return e != nil && e.kind == "postgres"
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
