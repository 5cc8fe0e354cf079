// Package render computes, purely, the Kubernetes objects of an Istio control
// plane described by a MeshInstall: per revision (istiod, its RBAC, mesh and
// injection configuration, validation webhook) and shared (the reader
// identity, the default validator, mesh-wide mTLS, gateways), plus Istio's
// CRDs.
//
// Nothing here reads the cluster, the clock or a random source: the same
// MeshInstall and revisions always give the same objects, in apply order,
// with TypeMeta set for server-side apply. The facts (names, labels, RBAC
// rules, ports, probes, profile defaults) follow Istio's own Helm charts for
// the supported versions; the code is meshkeeper's own.
package render
