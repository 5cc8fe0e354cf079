package inject

import (
	"encoding/json"
	"strings"
)

// ValidationContainerName is the init container that, with Istio's CNI
// node agent, checks the traffic redirection the CNI plugin set up; it
// replaces istio-init.
const ValidationContainerName = "istio-validation"

// annMultusNetworks is Multus' list of extra networks for a pod.
const annMultusNetworks = "k8s.v1.cni.cncf.io/networks"

// multusNetwork is the NetworkAttachmentDefinition through which Multus
// calls the istio-cni plugin: one, in the default namespace, for every
// meshed namespace (as Istio's template names it).
const (
	multusNetworkNamespace = "default"
	multusNetworkName      = "istio-cni"
	multusNetwork          = multusNetworkNamespace + "/" + multusNetworkName
)

// cniAnnotations are what the CNI plugin reads to redirect the pod's
// traffic, since no istio-init carries it in its arguments: the
// interception mode and the capture, as the sidecar template writes them
// (an empty IP range is left out, the inbound ports always written, the
// outbound ports only when named), the interfaces the pod names, and the
// Multus network that calls the plugin.
func (in *injection) cniAnnotations() []keyValue {
	ann := in.pod.Annotations
	c := in.capture()
	kvs := make([]keyValue, 0, 11)
	if in.d.multus {
		kvs = append(kvs, keyValue{annMultusNetworks, appendMultusNetwork(ann[annMultusNetworks])})
	}
	kvs = append(kvs, keyValue{annInterceptionMode, in.mode})
	if c.includeOutboundIPs != "" {
		kvs = append(kvs, keyValue{annIncludeOutIPs, c.includeOutboundIPs})
	}
	if c.excludeOutboundIPs != "" {
		kvs = append(kvs, keyValue{annExcludeOutIPs, c.excludeOutboundIPs})
	}
	kvs = append(kvs,
		keyValue{annIncludeInPorts, c.includeInboundPorts},
		keyValue{annExcludeInPorts, c.excludeInboundPorts})
	if c.includeOutboundPorts.set {
		kvs = append(kvs, keyValue{annIncludeOutPorts, c.includeOutboundPorts.ports})
	}
	if c.excludeOutboundPorts.set {
		kvs = append(kvs, keyValue{annExcludeOutPorts, c.excludeOutboundPorts.ports})
	}
	// The pod's own interface annotations, which the template repeats.
	for _, name := range []string{annKubevirtIfaces, annRerouteIfaces, annExcludeIfaces} {
		if v := ann[name]; v != "" {
			kvs = append(kvs, keyValue{name, v})
		}
	}
	return kvs
}

// appendMultusNetwork adds the istio-cni network to the pod's
// k8s.v1.cni.cncf.io/networks, in the notation the pod uses: a
// comma-separated list of [namespace/]name, or a JSON list of network
// objects. A list that already names it is kept; a JSON value that does not
// parse is kept as it is (Multus will report it), as Istio does.
func appendMultusNetwork(existing string) string {
	if existing == "" {
		return multusNetwork
	}
	end := strings.LastIndex(existing, "]")
	if end < 0 {
		for _, n := range strings.Split(existing, ",") {
			if strings.TrimSpace(n) == multusNetwork {
				return existing
			}
		}
		return existing + ", " + multusNetwork
	}
	var networks []struct {
		Name      any `json:"name"`
		Namespace any `json:"namespace"`
	}
	if err := json.Unmarshal([]byte(existing), &networks); err != nil {
		return existing
	}
	for _, n := range networks {
		if n.Name == multusNetworkName && n.Namespace == multusNetworkNamespace {
			return existing
		}
	}
	entry := `{"name": "` + multusNetworkName + `", "namespace": "` + multusNetworkNamespace + `"}`
	if len(networks) == 0 {
		// Istio would write "[, {…}]", which is not JSON; an empty list
		// gets the one entry.
		return existing[:end] + entry + existing[end:]
	}
	return existing[:end] + ", " + entry + existing[end:]
}
