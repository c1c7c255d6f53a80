package devserver

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const stateFormat = 1

// state is the saved form of a server (Options.DataFile).
type state struct {
	Format   int               `json:"format"`
	EventSeq int64             `json:"event_seq"`
	Secrets  []stateSecret     `json:"secrets"`
	Leases   []*lease          `json:"leases"`
	Tokens   map[string]*token `json:"tokens"` // by SHA-256 of the token
	CA       *stateCA          `json:"ca"`
	Orders   []*acmeOrder      `json:"acme_orders,omitempty"`
}

type stateSecret struct {
	Path        string         `json:"path"`
	CreatedAt   time.Time      `json:"created_at"`
	Current     int            `json:"current"`
	Deleted     bool           `json:"deleted,omitempty"`
	MaxVersions int            `json:"max_versions,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	Policy      *statePolicy   `json:"policy,omitempty"`
	Versions    []stateVersion `json:"versions"`
}

type statePolicy struct {
	ID       string        `json:"id"`
	Interval time.Duration `json:"interval_ns"`
	Next     time.Time     `json:"next"`
}

type stateVersion struct {
	Version    int                        `json:"version"`
	SecretType string                     `json:"secret_type"`
	Data       map[string]json.RawMessage `json:"data"`
	CreatedAt  time.Time                  `json:"created_at"`
	RetireAt   time.Time                  `json:"retire_at,omitzero"`
	Previous   int                        `json:"previous_version,omitempty"`
	GraceEnd   time.Time                  `json:"grace_end,omitzero"`
}

type stateCA struct {
	RootCert   string `json:"root_cert"`
	RootKey    string `json:"root_key"`
	IssuerCert string `json:"issuer_cert"`
	IssuerKey  string `json:"issuer_key"`
	ACMECert   string `json:"acme_cert,omitempty"` // the dev ACME CA; absent in older files
	ACMEKey    string `json:"acme_key,omitempty"`
}

// loadState fills the store from the data file when it exists, else from
// the seed, and sets up the CA.
func (s *Server) loadState() error {
	if s.dataFile != "" {
		raw, err := os.ReadFile(s.dataFile)
		switch {
		case err == nil:
			return s.restore(raw)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("read data file: %w", err)
		}
	}
	now := s.now()
	for _, sd := range s.cfg.secrets {
		e := &secretEntry{path: sd.path, createdAt: now, current: 1, maxVersions: sd.maxVersions, metadata: sd.metadata}
		e.versions = []*secretVersion{{num: 1, secretType: sd.secretType, data: sd.data, createdAt: now}}
		if p := sd.policy; p != nil {
			next := p.nextAt
			if next.IsZero() {
				next = now.Add(p.nextIn)
			}
			e.policy = &rotationPolicy{id: p.id, interval: p.interval, next: next}
		}
		s.secrets[sd.path] = e
	}
	pki, err := newPKI(now)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	s.pki = pki
	if s.acmeCA, err = newACMECA(now); err != nil {
		return fmt.Errorf("create ACME CA: %w", err)
	}
	return nil
}

func (s *Server) restore(raw []byte) error {
	var st state
	if err := decodeJSON(raw, &st); err != nil {
		return fmt.Errorf("data file %s: %v", s.dataFile, err)
	}
	if st.Format != stateFormat {
		return fmt.Errorf("data file %s: unknown format %d", s.dataFile, st.Format)
	}
	for _, ss := range st.Secrets {
		if len(ss.Versions) == 0 {
			return fmt.Errorf("data file %s: secret %s has no versions", s.dataFile, ss.Path)
		}
		e := &secretEntry{path: ss.Path, createdAt: ss.CreatedAt, current: ss.Current, deleted: ss.Deleted,
			maxVersions: ss.MaxVersions, metadata: ss.Metadata}
		if ss.Policy != nil {
			e.policy = &rotationPolicy{id: ss.Policy.ID, interval: ss.Policy.Interval, next: ss.Policy.Next}
		}
		for _, v := range ss.Versions {
			e.versions = append(e.versions, &secretVersion{num: v.Version, secretType: v.SecretType, data: v.Data,
				createdAt: v.CreatedAt, retireAt: v.RetireAt, prev: v.Previous, graceEnd: v.GraceEnd})
		}
		s.secrets[ss.Path] = e
	}
	for _, l := range st.Leases {
		if s.cfg.engines[l.Engine] == nil {
			s.logger.Warn("data file: dropping lease of an engine the seed no longer has", "lease", l.ID)
			continue
		}
		s.leases[l.ID] = l
	}
	for h, t := range st.Tokens {
		s.tokens[h] = t
	}
	s.hub.setSeq(st.EventSeq)
	s.restoreOrders(st.Orders)
	if st.CA == nil {
		pki, err := newPKI(s.now())
		s.pki = pki
		if err == nil {
			s.acmeCA, err = newACMECA(s.now())
		}
		return err
	}
	pki, err := st.CA.load()
	if err != nil {
		return fmt.Errorf("data file %s: ca: %v", s.dataFile, err)
	}
	s.pki = pki
	if st.CA.ACMECert == "" {
		s.acmeCA, err = newACMECA(s.now())
	} else if s.acmeCA, err = loadCA(st.CA.ACMECert, st.CA.ACMEKey); err != nil {
		return fmt.Errorf("data file %s: acme ca: %v", s.dataFile, err)
	}
	return err
}

// restoreOrders keeps the saved orders of the accounts the seed still has.
func (s *Server) restoreOrders(orders []*acmeOrder) {
	for _, o := range orders {
		if o == nil || s.cfg.acmeByID[o.AccountID] == nil {
			s.logger.Warn("data file: dropping an ACME order of an account the seed no longer has")
			continue
		}
		if o.Cert != nil {
			o.keys = []string{o.Cert.PrivateKeyPEM}
		}
		s.orders[o.ID] = o
	}
}

// snapshotLocked builds the saved form; the caller holds s.mu.
func (s *Server) snapshotLocked() *state {
	st := &state{Format: stateFormat, EventSeq: s.hub.lastSeq(), Tokens: s.tokens, CA: s.pki.save()}
	st.CA.ACMECert, st.CA.ACMEKey = s.acmeCA.pem, keyPEM(s.acmeCA.key)
	for _, id := range sortedKeys(s.orders) {
		st.Orders = append(st.Orders, s.orders[id])
	}
	for _, p := range s.sortedLocked() {
		e := s.secrets[p]
		ss := stateSecret{Path: p, CreatedAt: e.createdAt, Current: e.current, Deleted: e.deleted,
			MaxVersions: e.maxVersions, Metadata: e.metadata}
		if e.policy != nil {
			ss.Policy = &statePolicy{ID: e.policy.id, Interval: e.policy.interval, Next: e.policy.next}
		}
		for _, v := range e.versions {
			ss.Versions = append(ss.Versions, stateVersion{Version: v.num, SecretType: v.secretType, Data: v.data,
				CreatedAt: v.createdAt, RetireAt: v.retireAt, Previous: v.prev, GraceEnd: v.graceEnd})
		}
		st.Secrets = append(st.Secrets, ss)
	}
	for _, l := range s.leases {
		st.Leases = append(st.Leases, l)
	}
	return st
}

// persist writes the state to the data file, if any. Writers are serialized
// and each takes a fresh snapshot, so the file always ends at the newest state.
func (s *Server) persist() error {
	if s.dataFile == "" {
		return nil
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	raw, err := json.Marshal(s.snapshotLocked())
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return writeFileAtomic(s.dataFile, raw)
}

// writeFileAtomic writes a temp file in the same directory (0600), fsyncs,
// renames it over path and fsyncs the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (p *pkiState) save() *stateCA {
	return &stateCA{
		RootCert: p.root.pem, RootKey: keyPEM(p.root.key),
		IssuerCert: p.issuer.pem, IssuerKey: keyPEM(p.issuer.key),
	}
}

func keyPEM(k crypto.Signer) string {
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return pemString("PRIVATE KEY", der)
}

func (st *stateCA) load() (*pkiState, error) {
	root, err := loadCA(st.RootCert, st.RootKey)
	if err != nil {
		return nil, fmt.Errorf("root: %v", err)
	}
	issuer, err := loadCA(st.IssuerCert, st.IssuerKey)
	if err != nil {
		return nil, fmt.Errorf("issuer: %v", err)
	}
	return &pkiState{root: root, issuer: issuer}, nil
}

func loadCA(certPEM, keyPEMText string) (*caCert, error) {
	cb, _ := pem.Decode([]byte(certPEM))
	kb, _ := pem.Decode([]byte(keyPEMText))
	if cb == nil || kb == nil {
		return nil, errors.New("bad PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, errors.New("bad private key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key cannot sign")
	}
	return caFromDER(cb.Bytes, signer)
}
