package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Usable reports why a certificate issued by someone else (cert-manager)
// cannot be served for hosts at now: its key does not match, it is not
// valid yet or any more, or it does not cover every host. nil means it can.
func Usable(certPEM, keyPEM []byte, hosts Hosts, now time.Time) error {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return errors.New("no certificate or key")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return fmt.Errorf("valid from %s to %s only", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if !covers(leaf, hosts) {
		return fmt.Errorf("covers %v %v, not every one of %v %v", leaf.DNSNames, leaf.IPAddresses, hosts.DNSNames, hosts.IPs)
	}
	return nil
}
