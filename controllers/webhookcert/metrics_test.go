package webhookcert

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshkeeper/meshkeeper/internal/certs"
)

// TestWebhookCertificateExpiryIsWhatIsServed publishes a bundle in the
// middle of a CA rotation: the serving series is the leaf's expiry, the CA
// series the later of the two CAs, and a bundle that does not parse
// leaves no series (an alert on a stale expiry would mislead).
func TestWebhookCertificateExpiryIsWhatIsServed(t *testing.T) {
	hosts := certs.Hosts{DNSNames: []string{"meshkeeper-webhook.test.svc"}}
	issued := time.Now().Add(-50 * time.Second).Truncate(time.Second)
	life := certs.Lifetimes{CA: time.Minute, Serving: 30 * time.Second}
	b, err := certs.Renew(&certs.Bundle{}, certs.Renewal{CA: true, Serving: true}, hosts, issued, life)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = certs.StageCA(b, issued.Add(40*time.Second), life); err != nil {
		t.Fatal(err)
	}

	recordServed(b.Cert, b.CACert)
	if got, want := testutil.ToFloat64(certificateExpiry.WithLabelValues(certificateServing)), float64(issued.Add(30*time.Second).Unix()); got != want {
		t.Errorf("serving expiry %v, want the leaf's %v", got, want)
	}
	if got, want := testutil.ToFloat64(certificateExpiry.WithLabelValues(certificateCA)), float64(issued.Add(100*time.Second).Unix()); got != want {
		t.Errorf("CA expiry %v, want the staged CA's %v (the later one)", got, want)
	}

	recordServed([]byte("not a certificate"), nil)
	if n := testutil.CollectAndCount(certificateExpiry); n != 0 {
		t.Errorf("%d series after an unparseable bundle, want none", n)
	}
}
