package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	hosts = Hosts{DNSNames: []string{"meshkeeper-webhook-service.meshkeeper-system.svc"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
)

func issue(t *testing.T, now time.Time) *Bundle {
	t.Helper()
	r := Check(&Bundle{}, hosts, now)
	if !r.CA || !r.Serving {
		t.Fatalf("an empty bundle needs everything, got %+v", r)
	}
	b, err := Renew(&Bundle{}, r, hosts, now, DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify checks the serving certificate the way an API server would: chain to the bundle, for the host.
func verify(t *testing.T, b *Bundle, host string, now time.Time) error {
	t.Helper()
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return err
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CACert) {
		t.Fatal("bundle has no CA")
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: now})
	return err
}

func TestIssuedBundleIsTrustedForEveryHost(t *testing.T) {
	b := issue(t, t0)
	for _, h := range []string{"meshkeeper-webhook-service.meshkeeper-system.svc", "127.0.0.1"} {
		if err := verify(t, b, h, t0); err != nil {
			t.Errorf("not valid for %s: %v", h, err)
		}
	}
	if err := verify(t, b, "evil.example.com", t0); err == nil {
		t.Error("valid for a host it was not issued for")
	}
	if r := Check(b, hosts, t0); r.CA || r.Serving {
		t.Errorf("a fresh bundle needs renewal: %+v", r)
	}
}

func TestServingCertificateIsRenewedWellBeforeExpiry(t *testing.T) {
	b := issue(t, t0)
	if r := Check(b, hosts, t0.Add(DefaultLifetimes.Serving/2)); r.Serving {
		t.Errorf("renewal asked for at half life: %+v", r)
	}
	late := t0.Add(DefaultLifetimes.Serving * 3 / 4)
	r := Check(b, hosts, late)
	if !r.Serving || r.CA {
		t.Fatalf("at three quarters of its life: got %+v, want the serving certificate renewed", r)
	}
	if next := NextCheck(b, t0); next != t0.Add(24*time.Hour) {
		t.Errorf("NextCheck of a fresh bundle = %s, want a daily check", next)
	}
	due := t0.Add(-5 * time.Minute).Add((DefaultLifetimes.Serving + 5*time.Minute) * 2 / 3) // two thirds of NotBefore..NotAfter
	if next := NextCheck(b, due.Add(-time.Hour)); !next.Equal(due) {
		t.Errorf("NextCheck an hour before renewal = %s, want %s", next, due)
	}
	renewed, err := Renew(b, r, hosts, late, DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	if string(renewed.CACert) != string(b.CACert) {
		t.Error("renewing the serving certificate changed the CA bundle, which every webhook configuration holds")
	}
	if err := verify(t, renewed, hosts.DNSNames[0], late.Add(DefaultLifetimes.Serving/2)); err != nil {
		t.Errorf("renewed certificate not valid: %v", err)
	}
}

func TestCARotationKeepsTheOldCATrusted(t *testing.T) {
	late := t0.Add(DefaultLifetimes.CA * 3 / 4)
	// The old CA's serving certificate, renewed as usual an hour before.
	b, err := Renew(issue(t, t0), Renewal{Serving: true}, hosts, late.Add(-time.Hour), DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	if r := Check(b, hosts, late); !r.CA || r.Serving {
		t.Fatalf("got %+v, want the CA due and the fresh serving certificate not", r)
	}

	// Step one: the next CA joins the bundle; the old one still signs.
	staged, err := StageCA(b, late, DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	next := NextCA(staged)
	if next == nil || string(CurrentCA(staged)) != string(CurrentCA(b)) {
		t.Fatal("staging changed the current CA or staged none")
	}
	if string(staged.Cert) != string(b.Cert) || !Serves(staged, late) {
		t.Error("staging a CA replaced the served certificate")
	}
	if !Trusts(staged.CACert, next) || !Trusts(staged.CACert, CurrentCA(b)) || Trusts(b.CACert, next) {
		t.Error("the staged bundle must trust both CAs, the old bundle only the old one")
	}
	// A serving renewal while the next CA waits (say, the injector is never
	// rewritten) is signed by the old CA, which every client trusts.
	waited := late.Add(DefaultLifetimes.Serving)
	renewedMeanwhile, err := Renew(staged, Check(staged, hosts, waited), hosts, waited, DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, &Bundle{CACert: b.CACert, Cert: renewedMeanwhile.Cert, Key: renewedMeanwhile.Key}, hosts.DNSNames[0], waited); err != nil {
		t.Errorf("a certificate renewed during the wait is not trusted by the old bundle: %v", err)
	}

	// Step two, once every configuration holds the staged bundle.
	promoted, err := PromoteCA(staged, late)
	if err != nil {
		t.Fatal(err)
	}
	if string(CurrentCA(promoted)) != string(next) || len(promoted.NextCAKey) != 0 || NextCA(promoted) != nil {
		t.Error("promotion did not make the next CA current")
	}
	if r := Check(promoted, hosts, late); !r.Serving || r.CA || !strings.Contains(r.Reason, "not signed by the current CA") {
		t.Errorf("after promotion: got %+v, want the old CA's serving certificate renewed", r)
	}
	rotated, err := Renew(promoted, Renewal{Serving: true}, hosts, late, DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, rotated, hosts.DNSNames[0], late); err != nil {
		t.Errorf("certificate of the new CA not trusted: %v", err)
	}
	if n := strings.Count(string(rotated.CACert), "BEGIN CERTIFICATE"); n != 2 || !Trusts(rotated.CACert, CurrentCA(b)) {
		t.Errorf("rotated bundle holds %d CAs, want the new and the old", n)
	}
	// The old CA's certificate, still held by a replica that has not reloaded, stays trusted.
	if err := verify(t, &Bundle{CACert: rotated.CACert, Cert: b.Cert, Key: b.Key}, hosts.DNSNames[0], late); err != nil {
		t.Errorf("the old certificate with the new bundle: %v", err)
	}
	// Once the old CA has expired it leaves the bundle at the next rotation.
	again, err := StageCA(rotated, t0.Add(DefaultLifetimes.CA+time.Hour), DefaultLifetimes)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(again.CACert), "BEGIN CERTIFICATE"); n != 2 || Trusts(again.CACert, CurrentCA(b)) {
		t.Errorf("after the first CA expired the bundle holds %d CAs, want the current and the next", n)
	}
}

func TestHostChangeReissuesServingOnly(t *testing.T) {
	b := issue(t, t0)
	more := Hosts{DNSNames: append([]string{"other.svc"}, hosts.DNSNames...), IPs: hosts.IPs}
	if r := Check(b, more, t0); !r.Serving || r.CA {
		t.Errorf("got %+v, want only the serving certificate reissued", r)
	}
}

func TestGarbageIsReplaced(t *testing.T) {
	b, other := issue(t, t0), issue(t, t0)
	cases := []struct {
		name       string
		bundle     *Bundle
		wantCA     bool
		wantReason string
	}{
		{"no CA key", &Bundle{CACert: b.CACert, Cert: b.Cert, Key: b.Key}, true, "no usable CA"},
		{"mismatched CA key", &Bundle{CACert: b.CACert, CAKey: other.CAKey, Cert: b.Cert, Key: b.Key}, true, "no usable CA"},
		{"garbage cert", &Bundle{CACert: b.CACert, CAKey: b.CAKey, Cert: []byte("nope"), Key: b.Key}, false, "no usable serving certificate"},
		{"leaf and key that do not match", &Bundle{CACert: b.CACert, CAKey: b.CAKey, Cert: b.Cert, Key: other.Key}, false, "no usable serving certificate"},
		{"leaf of another CA", &Bundle{CACert: b.CACert, CAKey: b.CAKey, Cert: other.Cert, Key: other.Key}, false, "not signed by the current CA"},
	}
	for _, tc := range cases {
		r := Check(tc.bundle, hosts, t0)
		if !r.Serving || r.CA != tc.wantCA || !strings.Contains(r.Reason, tc.wantReason) {
			t.Errorf("%s: got %+v, want serving renewed (CA too: %v) because %q", tc.name, r, tc.wantCA, tc.wantReason)
		}
	}
}

func TestShortLivedCertificatesAreNotRenewedAtOnce(t *testing.T) {
	life := Lifetimes{CA: DefaultLifetimes.CA, Serving: 45 * time.Second}
	b, err := Renew(&Bundle{}, Renewal{CA: true, Serving: true}, hosts, t0, life)
	if err != nil {
		t.Fatal(err)
	}
	if r := Check(b, hosts, t0.Add(10*time.Second)); r.Serving {
		t.Errorf("renewal asked for 10s into a 45s certificate: %+v", r)
	}
	if r := Check(b, hosts, t0.Add(35*time.Second)); !r.Serving {
		t.Errorf("no renewal 35s into a 45s certificate")
	}
	if !Serves(b, t0.Add(35*time.Second)) || Serves(b, t0.Add(46*time.Second)) {
		t.Errorf("Serves does not follow the certificate's validity")
	}
}
