package devserver

// ActiveLeases is the number of leases that are alive now (neither expired
// nor revoked). Tests use it to check that a client left no lease behind.
func (s *Server) ActiveLeases() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, l := range s.leases {
		if l.alive(now) {
			n++
		}
	}
	return n
}
