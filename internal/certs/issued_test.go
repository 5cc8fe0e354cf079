package certs

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestUsable(t *testing.T) {
	now := time.Now()
	hosts := Hosts{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	life := Lifetimes{CA: 24 * time.Hour, Serving: time.Hour}
	b, err := Renew(&Bundle{}, Renewal{CA: true, Serving: true}, hosts, now, life)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Renew(&Bundle{}, Renewal{CA: true, Serving: true}, hosts, now, life)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
		hosts     Hosts
		at        time.Time
		wantErr   string
	}{
		{"valid for the host", b.Cert, b.Key, hosts, now, ""},
		{"nothing", nil, nil, hosts, now, "no certificate"},
		{"another certificate's key", b.Cert, other.Key, hosts, now, "private key does not match"},
		{"expired", b.Cert, b.Key, hosts, now.Add(2 * time.Hour), "valid from"},
		{"not for this host", b.Cert, b.Key, Hosts{DNSNames: []string{"webhook.meshkeeper-system.svc"}}, now, "not every one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Usable(tc.cert, tc.key, tc.hosts, tc.at)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
