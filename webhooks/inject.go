package webhooks

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/inject/podpatch"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// InjectHandler is meshkeeper's sidecar injection webhook: an http.Handler
// that reads an admission.k8s.io/v1 AdmissionReview of a pod creation,
// injects the revision's sidecar with inject.Inject and answers with a JSON
// patch.
//
// It answers allowed with no patch for what it does not inject (not a pod
// creation, host network pods, pods already injected or opted out with
// sidecar.istio.io/inject=false), and allowed=false only for pods Istio
// would refuse too (an invalid annotation). When it cannot inject for its
// own reasons (no configuration for the revision, a malformed request) it
// answers with an HTTP error, so that the API server applies the webhook's
// failurePolicy: admitting the pod uninjected or refusing it is the user's
// choice, not the handler's.
type InjectHandler struct {
	source     ConfigSource
	namespaces NamespaceSource
	log        logr.Logger
}

// NamespaceSource gives the injector the labels of a pod's namespace,
// whose Pod Security level inject.Inject checks.
type NamespaceSource interface {
	// NamespaceLabels returns the labels of the named namespace, or nil
	// when it does not know them (the pod is then not checked; the API
	// server's Pod Security admission still is).
	NamespaceLabels(name string) map[string]string
}

// WithNamespaces makes h refuse, naming the setting responsible, a pod
// that its namespace's Pod Security level admits as created and would
// refuse once injected (see inject.PodSecurityError). It returns h.
func (h *InjectHandler) WithNamespaces(namespaces NamespaceSource) *InjectHandler {
	h.namespaces = namespaces
	return h
}

// NewInjectHandler returns the injection webhook handler, reading revisions'
// configurations from source.
func NewInjectHandler(source ConfigSource, log logr.Logger) *InjectHandler {
	return &InjectHandler{source: source, log: log}
}

// RegisterInjector serves h at /inject and under /inject/ (the path
// parameters) on the webhook server, within InjectorLimits.
func RegisterInjector(server webhook.Server, h http.Handler) {
	bounded := Bounded("injector", h, InjectorLimits)
	server.Register(webhookconfig.InjectPath, bounded)
	server.Register(webhookconfig.InjectPath+"/", bounded)
}

// buffers recycles request and response buffers.
var buffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 16<<10)) }}

// ServeHTTP handles one admission request.
func (h *InjectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { injectionDuration.Observe(time.Since(start).Seconds()) }()

	if r.Method != http.MethodPost {
		h.fail(w, http.StatusMethodNotAllowed, reasonBadRequest, false, "only POST is supported")
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		h.fail(w, http.StatusUnsupportedMediaType, reasonUnsupportedMedia, false, "Content-Type must be application/json")
		return
	}
	target, err := ParseInjectPath(r.URL.Path)
	if err != nil {
		h.fail(w, http.StatusNotFound, reasonBadRequest, false, err.Error())
		return
	}
	in := buffers.Get().(*bytes.Buffer)
	defer putBuffer(in)
	if r.ContentLength > MaxRequestBytes {
		h.fail(w, http.StatusRequestEntityTooLarge, reasonTooLarge, false, fmt.Sprintf("request body exceeds %d bytes", MaxRequestBytes))
		return
	}
	if _, err := in.ReadFrom(http.MaxBytesReader(w, r.Body, MaxRequestBytes)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.fail(w, http.StatusRequestEntityTooLarge, reasonTooLarge, false, fmt.Sprintf("request body exceeds %d bytes", MaxRequestBytes))
			return
		}
		h.fail(w, http.StatusBadRequest, reasonBadRequest, false, "reading the request: "+err.Error())
		return
	}
	review, err := decodeReview(in.Bytes())
	if err != nil {
		h.fail(w, http.StatusBadRequest, reasonBadRequest, false, "decoding the AdmissionReview: "+err.Error())
		return
	}
	out := buffers.Get().(*bytes.Buffer)
	defer putBuffer(out)
	resp, status := h.review(review, target, out.AvailableBuffer())
	if status != http.StatusOK {
		w.Header()["Content-Type"] = textContentType
		w.WriteHeader(status)
	} else {
		w.Header()["Content-Type"] = jsonContentType
	}
	_, _ = w.Write(resp)
}

// Response content types, shared to spare an allocation per request.
var (
	jsonContentType = []string{"application/json"}
	textContentType = []string{"text/plain; charset=utf-8"}
)

// isJSON reports whether a Content-Type is application/json (with any
// parameters).
func isJSON(contentType string) bool {
	if contentType == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// review answers a decoded AdmissionReview: the response body, and the HTTP
// status (200 with a review; an error status with a plain text message).
func (h *InjectHandler) review(ar *admissionReview, target Target, buf []byte) ([]byte, int) {
	req := ar.Request
	dryRun := req.dryRun()
	allow := func(reason string) ([]byte, int) {
		countRequest(resultSkipped, reason, dryRun)
		return appendAllowed(buf, ar.APIVersion, req.UID, nil), http.StatusOK
	}
	internal := func(reason string, err error) ([]byte, int) {
		countRequest(resultError, reason, dryRun)
		h.log.Error(err, "sidecar injection failed", "namespace", req.Namespace, "uid", req.UID, "target", target)
		return []byte(err.Error()), http.StatusInternalServerError
	}
	if !req.isPodCreate() {
		return allow(reasonNotPodCreate)
	}
	pod := req.Object
	if pod == nil {
		countRequest(resultError, reasonBadRequest, dryRun)
		return []byte("the pod creation request has no object"), http.StatusBadRequest
	}
	namespace := pod.Namespace
	if namespace == "" {
		namespace = req.Namespace
	}
	if reason := skipReason(pod, namespace); reason != "" {
		return allow(reason)
	}
	workload := inject.WorkloadOf(pod, req.Namespace)
	cfg, err := h.source.Resolve(target, workload)
	if err != nil {
		return internal(reasonNoConfig, fmt.Errorf("resolving the injection configuration of %s: %w", describe(target), err))
	}
	if _, gateway := pod.Labels[render.LabelGateway]; namespace == cfg.Namespace && !gateway {
		// The control plane's own namespace is never injected, except for
		// the gateways meshkeeper runs there.
		return allow(reasonSystemNamespace)
	}
	var nsLabels map[string]string
	if h.namespaces != nil {
		nsLabels = h.namespaces.NamespaceLabels(namespace)
	}
	injected, err := inject.Inject(pod, cfg, inject.Request{
		Namespace: req.Namespace, Workload: workload, ClusterID: target.ClusterID, Network: target.Network,
		NamespaceLabels: nsLabels,
	})
	if inject.IsInvalid(err) {
		countRequest(resultRefused, reasonInvalidPod, dryRun)
		return appendRefused(buf, ar.APIVersion, req.UID, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			"meshkeeper cannot inject the Istio sidecar: "+err.Error()), http.StatusOK
	}
	if inject.IsPodSecurity(err) {
		// Refused here rather than by Pod Security after injection, whose
		// message would be about containers the user never wrote.
		countRequest(resultRefused, reasonPodSecurity, dryRun)
		return appendRefused(buf, ar.APIVersion, req.UID, http.StatusForbidden, metav1.StatusReasonForbidden,
			"meshkeeper cannot inject the Istio sidecar: "+err.Error()), http.StatusOK
	}
	if err != nil {
		return internal(reasonInternal, err)
	}
	patchBuf := buffers.Get().(*bytes.Buffer)
	defer putBuffer(patchBuf)
	patch, err := podpatch.AppendPatch(patchBuf.AvailableBuffer(), pod, injected)
	if err != nil {
		return internal(reasonInternal, fmt.Errorf("creating the patch: %w", err))
	}
	countRequest(resultInjected, reasonNone, dryRun)
	if log := h.log.V(1); log.Enabled() {
		log.Info("injected sidecar", "namespace", namespace, "workload", workload.Name, "revision", cfg.Revision, "dryRun", dryRun)
	}
	return appendAllowed(buf, ar.APIVersion, req.UID, patch), http.StatusOK
}

// skipReason says why the pod is not to be injected, or "": the injector
// configuration's own exclusions (webhookconfig.Excluded), which the API
// server's match conditions apply too.
func skipReason(pod *corev1.Pod, namespace string) string {
	if len(pod.Spec.Containers) == 0 || (pod.Name == "" && pod.GenerateName == "") {
		// The API server's validation refuses it after admission.
		return reasonIncompletePod
	}
	return webhookconfig.Excluded(webhookconfig.Pod{
		Namespace: namespace, Labels: pod.Labels, Annotations: pod.Annotations, HostNetwork: pod.Spec.HostNetwork,
	})
}

func describe(t Target) string {
	if t.Revision != "" {
		return "revision " + t.Revision
	}
	return "revision tag " + t.Tag
}

// fail answers with an HTTP error; the API server then applies the
// webhook's failurePolicy.
func (h *InjectHandler) fail(w http.ResponseWriter, status int, reason string, dryRun bool, msg string) {
	countRequest(resultError, reason, dryRun)
	h.log.Info("rejected injection request", "status", status, "reason", msg)
	http.Error(w, msg, status)
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return // do not keep a huge buffer for the rare huge pod
	}
	b.Reset()
	buffers.Put(b)
}
