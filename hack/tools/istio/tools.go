//go:build tools

// Package tools pins Istio's own binaries: istiod (pilot-discovery), the proxy
// agent (pilot-agent) and istioctl, built by hack/build-tool.sh istio and run
// on the host against the simulated cluster by the e2e tests and the demo.
package tools

import (
	_ "istio.io/istio/istioctl/cmd/istioctl"
	_ "istio.io/istio/pilot/cmd/pilot-agent"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
