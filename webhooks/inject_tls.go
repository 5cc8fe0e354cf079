package webhooks

import "crypto/tls"

// HardenTLS makes the webhook server accept TLS 1.2 or later only, and speak
// HTTP/1.1 only: HTTP/2 is disabled against its rapid-reset and stream
// exhaustion attacks (CVE-2023-44487, CVE-2023-39325), as Kubernetes
// projects do. Use it in webhook.Options.TLSOpts.
func HardenTLS(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"http/1.1"}
}

// TLSOptions returns the options for webhook.Options.TLSOpts: HardenTLS.
func TLSOptions() []func(*tls.Config) {
	return []func(*tls.Config){HardenTLS}
}
