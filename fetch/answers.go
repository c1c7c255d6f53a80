package fetch

import (
	"crypto/tls"
	"fmt"
	"time"
)

// The checks below reject answers the client could not act on safely. They
// name the field and never quote a value (a lease or certificate carries
// secrets).

// checkLease checks a lease answer. lease_duration must fit a
// time.Duration, counted in seconds (watch multiplies it by time.Second: a
// huge value would wrap around to a lease that ends in the past); a
// negative one is nonsense. needID: an answer to Generate must carry the id
// that renews and revokes the lease (renew and look-up answers may leave it
// out: the caller knows it).
func checkLease(l *Lease, needID bool) error {
	switch {
	case needID && l.LeaseID == "":
		return fmt.Errorf("decode answer: lease without lease_id")
	case l.LeaseDuration < 0:
		return fmt.Errorf("decode answer: negative lease_duration %d", l.LeaseDuration)
	case l.LeaseDuration > maxDurationSeconds:
		return fmt.Errorf("decode answer: lease_duration %d out of range (at most %d seconds)", l.LeaseDuration, maxDurationSeconds)
	case !l.MaxExpiresAt.IsZero() && !l.ExpiresAt.IsZero() && l.MaxExpiresAt.Before(l.ExpiresAt):
		return fmt.Errorf("decode answer: lease max_expires_at %s before expires_at %s",
			l.MaxExpiresAt.Format(time.RFC3339), l.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// checkCert checks an issued certificate: without the certificate or its
// key there is nothing to hand the child, and without expires_at nothing
// to schedule the re-issue by.
func checkCert(c *Cert) error {
	switch {
	case c.CertificatePEM == "":
		return fmt.Errorf("decode answer: certificate without certificate_pem")
	case c.PrivateKeyPEM == "":
		return fmt.Errorf("decode answer: certificate without private_key_pem")
	case c.ExpiresAt.IsZero():
		return fmt.Errorf("decode answer: certificate without expires_at")
	}
	// A certificate whose key is another's would fail the child's TLS
	// set-up at its next reload (nginx refuses the pair); the error of
	// crypto/tls names neither.
	if _, err := tls.X509KeyPair([]byte(c.CertificatePEM), []byte(c.PrivateKeyPEM)); err != nil {
		return fmt.Errorf("decode answer: certificate_pem and private_key_pem are not a pair: %v", err)
	}
	return nil
}
