// Package certs issues and renews the webhook server's own certificate
// authority and serving certificate (the embedded default; cert-manager can
// take over later). The decisions — is the bundle usable, when to renew — are
// pure functions of the bundle, the wanted hosts and the time.
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Secret data keys (the kubernetes.io/tls layout plus the CA's key, and
// during a rotation the next CA's key).
const (
	CACertKey    = "ca.crt"
	CAKeyKey     = "ca.key"
	CertKey      = "tls.crt"
	KeyKey       = "tls.key"
	NextCAKeyKey = "ca-next.key"
)

// Lifetimes of what Renew issues. A certificate is renewed once two thirds
// of its life have passed; a renewed CA keeps the old one in the bundle until
// it expires, so API servers holding the old bundle keep trusting us.
type Lifetimes struct {
	CA, Serving time.Duration
}

// DefaultLifetimes are five years for the CA and 90 days for the serving certificate.
var DefaultLifetimes = Lifetimes{CA: 5 * 365 * 24 * time.Hour, Serving: 90 * 24 * time.Hour}

// Bundle is the PEM material kept in the Secret.
type Bundle struct {
	// CACert holds the current CA first, then the next CA during a
	// rotation, then any previous CA still valid: it is what every webhook
	// configuration trusts.
	CACert []byte
	CAKey  []byte
	Cert   []byte
	Key    []byte
	// NextCAKey is the key of the next CA while a rotation waits for it to
	// be trusted everywhere (see StageCA and PromoteCA).
	NextCAKey []byte
}

// Data returns the bundle as Secret data.
func (b *Bundle) Data() map[string][]byte {
	d := map[string][]byte{CACertKey: b.CACert, CAKeyKey: b.CAKey, CertKey: b.Cert, KeyKey: b.Key}
	if len(b.NextCAKey) > 0 {
		d[NextCAKeyKey] = b.NextCAKey
	}
	return d
}

// FromData reads a bundle from Secret data.
func FromData(d map[string][]byte) *Bundle {
	return &Bundle{CACert: d[CACertKey], CAKey: d[CAKeyKey], Cert: d[CertKey], Key: d[KeyKey], NextCAKey: d[NextCAKeyKey]}
}

// Hosts are the names and addresses the serving certificate must be valid for.
type Hosts struct {
	DNSNames []string
	IPs      []net.IP
}

// Renewal says what must be (re)issued, and why.
type Renewal struct {
	CA, Serving bool
	Reason      string
}

// Check decides what a bundle needs at time now. It never issues anything.
func Check(b *Bundle, hosts Hosts, now time.Time) Renewal {
	ca, err := currentCA(b)
	if err != nil {
		return Renewal{CA: true, Serving: true, Reason: "no usable CA: " + err.Error()}
	}
	var r Renewal
	if renewDue(ca, now) && NextCA(b) == nil { // a staged next CA is the renewal under way
		r = Renewal{CA: true, Reason: fmt.Sprintf("CA expires %s", ca.NotAfter.Format(time.RFC3339))}
	}
	serving := func(reason string) Renewal {
		r.Serving = true
		if r.Reason != "" {
			reason = r.Reason + "; " + reason
		}
		r.Reason = reason
		return r
	}
	leaf, err := servingCert(b)
	if err != nil {
		return serving("no usable serving certificate: " + err.Error())
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return serving("serving certificate not signed by the current CA")
	}
	if renewDue(leaf, now) {
		return serving(fmt.Sprintf("serving certificate expires %s", leaf.NotAfter.Format(time.RFC3339)))
	}
	if !covers(leaf, hosts) {
		return serving("serving certificate does not cover the webhook's hosts")
	}
	return r
}

// StageCA starts a rotation: a new CA joins the bundle after the current
// one, its key kept as the next CA's. The current CA still signs what is
// issued until PromoteCA, which the caller runs once every client trusts
// the new CA.
func StageCA(b *Bundle, now time.Time, life Lifetimes) (*Bundle, error) {
	certPEM, keyPEM, err := newCA(now, life.CA)
	if err != nil {
		return nil, err
	}
	out := *b
	current := CurrentCA(b)
	out.CACert = slices.Concat(current, certPEM, withoutCert(stillValidCAs(b.CACert, now), current))
	out.NextCAKey = keyPEM
	return &out, nil
}

// NextCA returns the PEM of the staged next CA, or nil when no rotation waits.
func NextCA(b *Bundle) []byte {
	key, err := parseKey(b.NextCAKey)
	if err != nil {
		return nil
	}
	for rest := b.CACert; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && c.IsCA && key.PublicKey.Equal(c.PublicKey) {
			return pem.EncodeToMemory(block)
		}
	}
}

// PromoteCA makes the staged next CA the current one; the old CA stays in
// the bundle until it expires. The serving certificate, still the old
// CA's, is then due (Check).
func PromoteCA(b *Bundle, now time.Time) (*Bundle, error) {
	next := NextCA(b)
	if next == nil {
		return nil, errors.New("no next CA to promote")
	}
	out := *b
	out.CACert = slices.Concat(next, withoutCert(stillValidCAs(b.CACert, now), next))
	out.CAKey, out.NextCAKey = b.NextCAKey, nil
	return &out, nil
}

// withoutCert drops one certificate from a PEM bundle.
func withoutCert(bundle, certPEM []byte) []byte {
	drop, _ := pem.Decode(certPEM)
	var out bytes.Buffer
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out.Bytes()
		}
		if drop == nil || !bytes.Equal(block.Bytes, drop.Bytes) {
			_ = pem.Encode(&out, block)
		}
	}
}

// NextCheck is when Check will next ask for a renewal, at the latest.
func NextCheck(b *Bundle, now time.Time) time.Time {
	next := now.Add(24 * time.Hour)
	for _, parse := range []func(*Bundle) (*x509.Certificate, error){currentCA, servingCert} {
		if c, err := parse(b); err == nil {
			if due := renewAt(c); due.Before(next) {
				next = due
			}
		}
	}
	if next.Before(now) {
		return now
	}
	return next
}

// Renew issues what r asks for and returns the new bundle: a new current CA
// (for a bundle without a usable one; a rotation of a CA in use goes
// through StageCA and PromoteCA) and a serving certificate of the current CA.
func Renew(b *Bundle, r Renewal, hosts Hosts, now time.Time, life Lifetimes) (*Bundle, error) {
	out := *b
	if r.CA {
		certPEM, keyPEM, err := newCA(now, life.CA)
		if err != nil {
			return nil, err
		}
		out.CACert = append(certPEM, stillValidCAs(b.CACert, now)...)
		out.CAKey = keyPEM
	}
	if r.Serving {
		ca, err := currentCA(&out)
		if err != nil {
			return nil, err
		}
		caKey, err := parseKey(out.CAKey)
		if err != nil {
			return nil, err
		}
		out.Cert, out.Key, err = newServing(ca, caKey, hosts, now, life.Serving)
		if err != nil {
			return nil, err
		}
	}
	return &out, nil
}

// Serves reports whether the bundle's serving certificate can still be
// served at now: it matches its key, is within its validity and chains to
// a CA of the bundle. A rotation keeps serving it until the new CA is trusted.
func Serves(b *Bundle, now time.Time) bool {
	leaf, err := servingCert(b)
	if err != nil || now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CACert) {
		return false
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// CurrentCA returns the PEM of the bundle's current CA: the first of CACert.
func CurrentCA(b *Bundle) []byte {
	block, _ := pem.Decode(b.CACert)
	if block == nil {
		return nil
	}
	return pem.EncodeToMemory(block)
}

// Trusts reports whether a CA bundle (a webhook configuration's caBundle)
// holds the certificate caPEM.
func Trusts(caBundle, caPEM []byte) bool {
	want, _ := pem.Decode(caPEM)
	if want == nil {
		return false
	}
	for rest := caBundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		if bytes.Equal(block.Bytes, want.Bytes) {
			return true
		}
	}
}

// renewAt is two thirds into a certificate's life.
func renewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3)
}

func renewDue(c *x509.Certificate, now time.Time) bool { return !now.Before(renewAt(c)) }

func covers(c *x509.Certificate, h Hosts) bool {
	for _, d := range h.DNSNames {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range h.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func currentCA(b *Bundle) (*x509.Certificate, error) {
	block, _ := pem.Decode(b.CACert)
	if block == nil {
		return nil, errors.New("no CA certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if !ca.IsCA {
		return nil, errors.New("CA certificate is not a CA")
	}
	key, err := parseKey(b.CAKey)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, errors.New("CA key does not match the CA certificate")
	}
	return ca, nil
}

func servingCert(b *Bundle) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

// stillValidCAs keeps the previous CAs that have not expired, so clients with
// an older bundle still trust certificates during a CA rotation.
func stillValidCAs(bundle []byte, now time.Time) []byte {
	var out bytes.Buffer
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out.Bytes()
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && now.Before(c.NotAfter) {
			_ = pem.Encode(&out, block)
		}
	}
}

// backdate tolerates clocks a little behind ours, within a tenth of the life.
func backdate(validity time.Duration) time.Duration { return min(5*time.Minute, validity/10) }

func newCA(now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "meshkeeper-webhook-ca", Organization: []string{"meshkeeper"}},
		NotBefore:             now.Add(-backdate(validity)),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

func newServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts Hosts, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cn := "meshkeeper-webhook"
	if len(hosts.DNSNames) > 0 {
		cn = hosts.DNSNames[0]
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"meshkeeper"}},
		NotBefore:    now.Add(-backdate(validity)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     hosts.DNSNames,
		IPAddresses:  hosts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
