// Package podpatch writes the webhook's answer to a pod creation: the JSON
// patch (RFC 6902) from the pod as sent to the pod inject.Inject returns, and
// the JSON the injector puts in the pod itself (strings, ports,
// ISTIO_KUBE_APP_PROBERS).
//
//   - patch.go, patch_container.go: AppendPatch, one operation per changed
//     map entry, list element or probe, rather than a diff of whole documents;
//   - encode.go, encode_volume.go, probers.go, jsonwrite.go: encoders that
//     write the bytes encoding/json writes for the types injection produces,
//     without reflection (encode_test.go checks them against encoding/json on
//     random values);
//   - shared.go: the registry of the values every injection shares
//     (Shared, Share), each encoded once and copied into every patch.
//
// They pay for themselves on the webhook's whole path, AdmissionReview in to
// AdmissionReview out: webhooks' BenchmarkPatchWriters puts them side by side
// with encoding/json and a generic JSON-patch library.
package podpatch
