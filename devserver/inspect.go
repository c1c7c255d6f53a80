package devserver

import "encoding/json"

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

// SecretValues lists every secret the server holds or has handed out, for
// tests that scan logs and errors for leaks: the string values of every
// version of every secret, every lease's data, every client secret and the
// root token (client tokens are kept only as hashes), and the private key
// of every ACME certificate it issued. Values shorter than 4 bytes are left out (they would
// match by chance).
func (s *Server) SecretValues() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v)
		}
	}
	addJSON := func(data map[string]json.RawMessage) {
		for _, raw := range data {
			var str string
			if json.Unmarshal(raw, &str) == nil {
				add(str)
			} else {
				add(string(raw))
			}
		}
	}
	for _, e := range s.secrets {
		for _, v := range e.versions {
			addJSON(v.data)
		}
	}
	for _, l := range s.leases {
		addJSON(l.Data)
	}
	for _, o := range s.orders {
		for _, k := range o.keys {
			add(k)
		}
	}
	for _, c := range s.cfg.clients {
		add(c.secret)
	}
	add(s.cfg.rootToken)
	return out
}
