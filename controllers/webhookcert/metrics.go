package webhookcert

import (
	"crypto/x509"
	"encoding/pem"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The certificate label of meshkeeper_webhook_certificate_expiry_timestamp_seconds.
const (
	// certificateServing is the certificate the webhook server serves.
	certificateServing = "serving"
	// certificateCA is the CA the webhook configurations trust for it.
	certificateCA = "ca"
)

var certificateExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "meshkeeper_webhook_certificate_expiry_timestamp_seconds",
	Help: "When the webhook server's certificate expires (certificate=serving) and when the last of the CAs trusted for it " +
		"expires (certificate=ca), in seconds since the epoch, whichever provider (self-managed or cert-manager) issued them.",
}, []string{"certificate"})

func init() {
	metrics.Registry.MustRegister(certificateExpiry)
}

// recordServed publishes the expiry of what the webhook server now serves:
// its certificate (the leaf, first in certPEM) and the latest expiry in the
// CA bundle, which may hold the next CA during a rotation. A part that does
// not parse leaves its series out: no expiry is better than a wrong one.
func recordServed(certPEM, caPEM []byte) {
	certificateExpiry.Reset()
	if leaf := notAfters(certPEM); len(leaf) > 0 {
		certificateExpiry.WithLabelValues(certificateServing).Set(float64(leaf[0].Unix()))
	}
	if cas := notAfters(caPEM); len(cas) > 0 {
		last := cas[0]
		for _, t := range cas[1:] {
			if t.After(last) {
				last = t
			}
		}
		certificateExpiry.WithLabelValues(certificateCA).Set(float64(last.Unix()))
	}
}

// notAfters lists the expiry of each certificate in a PEM bundle, in order.
func notAfters(bundle []byte) []time.Time {
	var out []time.Time
	for block, rest := pem.Decode(bundle); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c.NotAfter)
		}
	}
	return out
}
