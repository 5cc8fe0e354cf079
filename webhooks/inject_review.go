package webhooks

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// The AdmissionReview versions the injector answers; the response echoes the
// request's.
const (
	admissionV1      = "admission.k8s.io/v1"
	admissionV1beta1 = "admission.k8s.io/v1beta1"
)

// admissionReview is the part of an AdmissionReview the injector reads.
// Decoding only that, rather than the whole review with controller-runtime's
// decoder, keeps the webhook fast.
type admissionReview struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Request    *admissionRequest `json:"request"`
}

type admissionRequest struct {
	UID         string                      `json:"uid"`
	Kind        metav1.GroupVersionKind     `json:"kind"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource"`
	Namespace   string                      `json:"namespace"`
	Operation   string                      `json:"operation"`
	DryRun      *bool                       `json:"dryRun"`
	// Object is the pod, decoded with the review in one pass.
	Object *corev1.Pod `json:"object"`
}

// rawAdmissionReview is an AdmissionReview whose object is not decoded.
type rawAdmissionReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		admissionRequest
		Object json.RawMessage `json:"object"`
	} `json:"request"`
}

// decodeReview decodes an AdmissionReview request, case-sensitively as the
// API server encodes it, with its pod.
func decodeReview(body []byte) (*admissionReview, error) {
	var ar admissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &ar); err != nil {
		// An object of another kind may not decode as a pod; the rest of
		// the review says whether it matters.
		var raw rawAdmissionReview
		if kjson.UnmarshalCaseSensitivePreserveInts(body, &raw) != nil || raw.Request == nil {
			return nil, err
		}
		ar = admissionReview{APIVersion: raw.APIVersion, Kind: raw.Kind, Request: &raw.Request.admissionRequest}
		ar.Request.Object = nil
		if ar.Request.isPodCreate() {
			return nil, fmt.Errorf("decoding the pod: %w", err)
		}
	}
	switch {
	case ar.Kind != "AdmissionReview" || (ar.APIVersion != admissionV1 && ar.APIVersion != admissionV1beta1):
		return nil, errors.New("not an admission.k8s.io/v1 AdmissionReview")
	case ar.Request == nil:
		return nil, errors.New("AdmissionReview has no request")
	case ar.Request.UID == "":
		return nil, errors.New("AdmissionReview request has no uid")
	}
	return &ar, nil
}

// isPodCreate reports whether the request creates a pod (not a subresource).
func (r *admissionRequest) isPodCreate() bool {
	return r.Operation == "CREATE" && r.SubResource == "" &&
		r.Kind.Group == "" && r.Kind.Kind == "Pod" &&
		r.Resource.Group == "" && r.Resource.Resource == "pods"
}

func (r *admissionRequest) dryRun() bool { return r.DryRun != nil && *r.DryRun }

// appendAllowed appends the AdmissionReview response that admits the pod,
// with the patch if there is one.
func appendAllowed(b []byte, apiVersion, uid string, patch []byte) []byte {
	b = appendResponseStart(b, apiVersion, uid)
	b = append(b, `,"allowed":true`...)
	if len(patch) > 0 {
		b = append(b, `,"patchType":"JSONPatch","patch":"`...)
		b = base64.StdEncoding.AppendEncode(b, patch)
		b = append(b, '"')
	}
	return append(b, "}}"...)
}

// appendRefused appends the AdmissionReview response that refuses the pod.
func appendRefused(b []byte, apiVersion, uid string, code int, reason metav1.StatusReason, message string) []byte {
	b = appendResponseStart(b, apiVersion, uid)
	b = append(b, `,"allowed":false,"status":{"metadata":{},"status":"Failure","message":`...)
	b = appendString(b, message)
	b = append(b, `,"reason":`...)
	b = appendString(b, string(reason))
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "}}}"...)
}

func appendResponseStart(b []byte, apiVersion, uid string) []byte {
	b = append(b, `{"kind":"AdmissionReview","apiVersion":`...)
	b = appendString(b, apiVersion)
	b = append(b, `,"response":{"uid":`...)
	return appendString(b, uid)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	simple := utf8.ValidString(s)
	for i := 0; simple && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			simple = false
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	js, _ := json.Marshal(s)
	return append(b, js...)
}
