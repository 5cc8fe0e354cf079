package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// observation is every fact one pass needs, gathered once at its start from
// the manager's cache. Decide, render, apply and status read only this.
type observation struct {
	revision.Observed
	// live are the objects the MeshInstall owns, by key, as the cache holds them.
	live map[apply.Key]client.Object
	// scope is where the MeshInstall's objects may live: only what it
	// holds, with the MeshInstall's controller reference, is in live.
	scope ownership.Scope
	// namespaces maps every namespace to its labels.
	namespaces map[string]map[string]string
	// controlledNamespaces are the namespaces the MeshInstall created (its
	// controller reference), whatever their labels now say.
	controlledNamespaces map[string]bool
	// pods are the running pods, for the data plane counts.
	pods []inventory.Pod
	// configHash maps each revision to the hash of its current injection configuration.
	configHash map[string]string
	// injector is the injector configuration in the cluster; nil when missing.
	injector *admissionregistrationv1.MutatingWebhookConfiguration
	// matcher is the injector configuration compiled; nil when there is none.
	matcher *webhookconfig.Matcher
	// crdHashes maps each CRD meshkeeper applied to the spec hash it applied.
	crdHashes map[string]string
	// workloads are the users' Deployments, StatefulSets and DaemonSets.
	workloads map[rollout.Key]rollout.Workload
	// workloadPods are the running pods, as the rollout reads them.
	workloadPods []workloadPod
	// namespacesOptedOut carry mesh.meshkeeper.dev/rollout: disabled.
	namespacesOptedOut map[string]bool
	// ca is the mesh CA (observeCertificateAuthority).
	ca meshca.Observed
	// endpoint is how the API server reaches the webhooks, and the CA it
	// trusts them with; endpointErr says why it is not known yet.
	endpoint    webhookconfig.Endpoint
	endpointErr error
	// nodesWithoutNativeSidecars: some node's kubelet cannot run native
	// sidecars (observeNodes), which decides spec.injection.nativeSidecars Auto.
	nodesWithoutNativeSidecars bool
	// retired are the revisions that, when the pass began, neither the
	// injector nor the routing sent pods to, and that the API server itself
	// (not the cache) said no running pod used and no namespace selected
	// (observeRetired). Only those may be pruned (confirmedUnused);
	// retiredErr says why a revision could not be checked.
	retired    map[string]bool
	retiredErr error
	// cni is what the pass saw of the istio-cni node agent; Observed.CNI
	// is its judgement for the planner.
	cni cniObservation
	// foreign is what runs of Istio installations meshkeeper did not make
	// (observeForeign); while it holds an istiod or an injector, nothing
	// is applied (foreignRefusal).
	foreign foreignControlPlane
	// migration is the foreign revision spec.migration adopts (or an abort
	// still finishing); nil without one.
	migration *migrationObservation
	// migratedTemplates are the workloads whose pod template carries
	// migration.LabelMigrated.
	migratedTemplates map[rollout.Key]bool
	// migrationPhase is the phase the pass's migration step decided: a
	// change of it is reported (UpgradeInProgress) by a pass that applies.
	migrationPhase meshv1alpha1.MigrationPhase
}

// observe reads what the MeshInstall owns, grouped by revision, where the
// tags point, Istio's CRDs, the namespaces and the running pods, all from
// the manager's cache. The set of revisions is the cluster's, whatever
// status says: every revision with an object the MeshInstall owns
// (ownership.Scope). Pod stamps are counted against those, never added.
func (r *Reconciler) observe(ctx context.Context, mi *meshv1alpha1.MeshInstall) (*observation, error) {
	obs := &observation{
		Observed:             revision.Observed{Now: time.Now(), Revisions: map[string]revision.ObservedRevision{}, InventoryKnown: true},
		live:                 map[apply.Key]client.Object{},
		namespaces:           map[string]map[string]string{},
		controlledNamespaces: map[string]bool{},
		namespacesOptedOut:   map[string]bool{},
		configHash:           map[string]string{},
		crdHashes:            map[string]string{},
	}
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := r.List(ctx, &crds, client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
		return nil, fmt.Errorf("listing CRDs: %w", err)
	}
	for _, crd := range crds.Items {
		obs.crdHashes[crd.Name] = crd.Annotations[AnnotationSpecHash]
	}
	if err := r.observeNodes(ctx, obs); err != nil {
		return nil, err
	}
	nsList, err := r.listNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	for i := range nsList.Items {
		ns := &nsList.Items[i]
		obs.namespaces[ns.Name] = ns.Labels
		if ownership.CreatedBy(ns, mi.UID) {
			obs.controlledNamespaces[ns.Name] = true
		}
		if ns.Annotations[meshv1alpha1.AnnotationRollout] == meshv1alpha1.RolloutDisabled {
			obs.namespacesOptedOut[ns.Name] = true
		}
	}
	obs.scope = ownership.Of(mi, slices.Collect(maps.Keys(obs.controlledNamespaces))...)
	owned, err := r.owned(ctx, mi, obs.scope)
	if err != nil {
		return nil, err
	}
	for _, o := range owned {
		obs.live[apply.KeyOf(o)] = o
		obs.ownedObject(o)
	}
	obs.observeCNIDaemonSet(mi)
	obs.CNI = obs.cni.observed()

	// The injector observed says which pods are in the mesh (obs.pod).
	if obs.injector != nil {
		if obs.matcher, err = webhookconfig.NewMatcher(obs.injector); err != nil {
			return nil, fmt.Errorf("reading the injector configuration: %w", err)
		}
	}

	var pods corev1.PodList
	// Read-only from here on: the cache's objects are not copied (10,000 pods per pass would be).
	if err := r.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		// Unknown usage never prunes; the rest of the plan can go on.
		log.FromContext(ctx).Error(err, "listing pods")
		obs.InventoryKnown = false
		return obs, nil
	}
	istiodPods := map[string]string{} // revision → why its pods cannot run
	for i := range pods.Items {
		obs.pod(mi, &pods.Items[i], istiodPods)
	}
	obs.CNI = obs.cni.observed() // now with the nodes of meshed pods and of the agent's
	for name, o := range obs.Revisions {
		if o.Istiod != nil && !o.Istiod.Available && istiodPods[name] != "" {
			o.Istiod.Reason = istiodPods[name]
			obs.Revisions[name] = o
		}
	}
	if err := r.observeWorkloads(ctx, obs); err != nil {
		return nil, err
	}
	return obs, nil
}

// gather is the one gatherer of a pass: observe's facts from the manager's
// cache, the mesh CA with its issuer (read live, only when the spec asks
// for cert-manager's CA), Istio installations meshkeeper did not make
// (observeForeign), with spec.cni.provider multus the network injected pods
// ask Multus for (observeMultusNetwork), where the API server reaches the webhooks, and
// which unused revisions are retired (read live, only for a revision the
// cache already finds unused).
func (r *Reconciler) gather(ctx context.Context, mi *meshv1alpha1.MeshInstall) (*observation, error) {
	obs, err := r.observe(ctx, mi)
	if err != nil {
		return nil, err
	}
	if err := r.observeCertificateAuthority(ctx, mi, obs); err != nil {
		return nil, err
	}
	if obs.foreign, err = r.observeForeign(ctx, mi, obs); err != nil {
		return nil, err
	}
	if obs.migration, err = r.observeMigration(ctx, mi, obs); err != nil {
		return nil, err
	}
	if err := r.observeMultusNetwork(ctx, mi, obs); err != nil {
		return nil, err
	}
	obs.endpoint, obs.endpointErr = r.WebhookEndpoint(ctx)
	obs.retired, obs.retiredErr = r.observeRetired(ctx, obs)
	return obs, nil
}

// observeRetired asks the API server, for each revision the cache already
// finds unused (no running pod, nothing selecting it) and that the injector
// and the routing observed no longer send pods to, whether a running pod
// uses it or a namespace selects it. The read is live, and it follows the
// observation of the injector and the routing without it: a pod created
// after it cannot be injected by the revision, so a revision found unused
// here stays unused. A revision the plan would prune but that was still in
// the injector or the routing is confirmed a pass later, once the pass that
// took it out has been observed.
func (r *Reconciler) observeRetired(ctx context.Context, obs *observation) (map[string]bool, error) {
	retired := map[string]bool{}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(obs.Revisions)) {
		o := obs.Revisions[name]
		if !obs.InventoryKnown || o.Pods > 0 || len(o.SelectedBy) > 0 || sendsPodsTo(obs, name) {
			continue
		}
		inUse, err := r.revisionInUse(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		retired[name] = !inUse
	}
	return retired, errors.Join(errs...)
}

// sendsPodsTo reports whether the injector or the routing observed may
// still have new pods injected by revision rev: an injector entry for it,
// or the routing's tags pointing at it (active or canary).
func sendsPodsTo(obs *observation, rev string) bool {
	if obs.matcher.Serves(webhookconfig.TargetPath("rev", rev)) {
		return true
	}
	return obs.Routing != nil && (obs.Routing.Active == rev || obs.Routing.Canary == rev)
}

// observeCertificateAuthority adds to obs what the pass needs of the mesh
// CA: the CA istiod runs with, and, when the spec asks for cert-manager's CA
// or a Certificate of ours may be left to delete, whether cert-manager is
// installed, the Certificate and the issuer. cert-manager may be installed
// after the operator started: its CRDs are looked for on every such pass,
// and the Certificate is watched from the first pass that finds them.
func (r *Reconciler) observeCertificateAuthority(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation) error {
	obs.ca = meshca.Observed{Running: obs.Routing != nil}
	obs.ca.IstiodExists, obs.ca.IstiodCA = istiodCertificateAuthority(obs)
	want := render.CertificateAuthorityOf(mi)
	if want == "" && mi.Status.CertificateAuthority == nil {
		return nil // istiod's own CA, and no Certificate of ours to clean up
	}
	installed, err := certmanager.Served(r.RESTMapper())
	if err != nil || !installed {
		return err
	}
	obs.ca.CertManagerInstalled = true
	if err := r.watches.ensureKind(&cmapi.Certificate{}); err != nil {
		log.FromContext(ctx).Error(err, "watching cert-manager Certificates; their status is read again on the next pass")
	}
	cert := &cmapi.Certificate{}
	switch err := r.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.CACertificateName}, cert); {
	case err == nil:
		if metav1.IsControlledBy(cert, mi) {
			obs.ca.Certificate = cert
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading the mesh CA Certificate: %w", err)
	}
	if want == "" {
		return nil
	}
	ref := mi.Spec.Security.CertificateAuthority.IssuerRef
	namespace := "" // a ClusterIssuer
	if ref.Kind == meshv1alpha1.IssuerKindIssuer {
		namespace = mi.Spec.Namespace
	}
	switch issuer, err := certmanager.ReadIssuer(ctx, r.APIReader, namespace, ref.Name); {
	case err == nil:
		obs.ca.Issuer = issuer
	case certmanager.NotServed(err):
		obs.ca.CertManagerInstalled = false // only part of cert-manager's CRDs are served
	default:
		return fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
	}
	return nil
}

// istiodCertificateAuthority says whether an istiod Deployment exists and
// which CA it runs with: the active revision's, else any revision's.
func istiodCertificateAuthority(obs *observation) (exists bool, ca string) {
	for key, o := range obs.live {
		d, ok := o.(*appsv1.Deployment)
		rev, labelled := o.GetLabels()[render.LabelRevision]
		if !ok || !labelled || key.Name != render.IstiodName(rev) {
			continue
		}
		if !exists || (obs.Routing != nil && rev == obs.Routing.Active) {
			exists, ca = true, d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]
		}
	}
	return exists, ca
}

// ownedObject files one owned object under its revision, or as the routing
// or the injector. What decides routing and which revisions exist is
// believed only in the control plane namespace (a gateway namespace may be
// shared with its users).
func (obs *observation) ownedObject(o client.Object) {
	if o.GetNamespace() != "" && !obs.scope.OwnsControlPlane(o) {
		return
	}
	l := o.GetLabels()
	switch o := o.(type) {
	case *corev1.ConfigMap:
		if o.Name == render.RoutingConfigMapName && l[render.LabelRouting] == "true" {
			if routing, err := revision.RoutingFromData(o.Data); err == nil {
				obs.Routing = &routing
			}
			return
		}
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		if o.Name == webhookconfig.InjectorName {
			obs.injector = o
		}
		return
	}
	name, ok := l[render.LabelRevision]
	if !ok {
		return
	}
	rev := obs.Revisions[name]
	switch o := o.(type) {
	case *appsv1.Deployment:
		if o.Name == render.IstiodName(name) {
			rev.Istiod = rolloutOf(o)
			rev.ControlPlaneVersion = l[render.LabelVersion]
		}
	case *corev1.ConfigMap:
		if l[render.LabelInjectionConfig] == "true" {
			rev.ProxyVersion = l[render.LabelVersion]
			rev.InjectsCNI = o.Annotations[render.AnnotationInjectsCNI] == "true"
			obs.configHash[name] = o.Annotations[inject.AnnotationConfigHash]
		} else if rev.ControlPlaneVersion == "" {
			rev.ControlPlaneVersion = l[render.LabelVersion] // istiod itself may be gone
		}
	}
	rev.PodsReady = true
	obs.Revisions[name] = rev
}

// pod counts one pod: towards its revision's usage and the data plane
// inventory when it runs, and, for an istiod pod that cannot be scheduled,
// as the reason its revision is not available.
func (obs *observation) pod(mi *meshv1alpha1.MeshInstall, p *corev1.Pod, istiodPods map[string]string) {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	if rev, ok := p.Labels[render.LabelRevision]; ok && p.Namespace == mi.Spec.Namespace && p.Labels[render.LabelMeshInstall] == mi.Name {
		// An istiod pod (gateways are shared and carry no revision label).
		if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
			istiodPods[rev] = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	name, stamped := p.Labels[inject.LabelInjectedBy]
	rev, known := obs.Revisions[name]
	pod := webhookconfig.Pod{Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations, HostNetwork: p.Spec.HostNetwork}
	// Anyone who may create a pod can write the stamp, and pods outlive
	// their MeshInstall: a stamp is a report, counted against a revision
	// whose own objects exist, never a reason to create one. A pod of a
	// revision that is gone is counted as outdated (countDataPlane). A
	// stamped pod keeps its revision from being pruned wherever it runs; it
	// counts against the revision's health (a canary's step), and its node
	// among those the CNI node agent must run on, only where the injector
	// observed would inject its workload's next pods: a never-Ready pod
	// with a copied stamp in a namespace outside the mesh, or one pinned
	// by nodeName to a node the agent does not run on, cannot hold an
	// upgrade.
	inMesh := stamped && known && obs.matcher.Route(obs.namespaces[p.Namespace], pod) != ""
	if stamped && known {
		rev.Pods++
		if c := podCondition(p, corev1.PodReady); (c == nil || c.Status != corev1.ConditionTrue) && inMesh {
			rev.PodsReady = false
			if created := p.CreationTimestamp.Time; rev.OldestUnreadyPod.IsZero() || created.Before(rev.OldestUnreadyPod) {
				rev.OldestUnreadyPod = created
			}
		}
		rev.PodVersion = newer(rev.PodVersion, p.Annotations[inject.AnnotationProxyVersion])
		obs.Revisions[name] = rev
	}
	obs.cniPod(p, stamped && known, inMesh)
	if !p.DeletionTimestamp.IsZero() {
		return // still running, so it holds its revision; no longer counted
	}
	obs.pods = append(obs.pods, inventory.Pod{
		Pod:        pod,
		Controlled: metav1.GetControllerOfNoCopy(p) != nil,
	})
	obs.workloadPods = append(obs.workloadPods, workloadPodOf(p))
}

// newer returns the newer of two versions; unparseable ones lose.
func newer(a, b string) string {
	vb, err := semver.NewVersion(b)
	if err != nil {
		return a
	}
	if va, err := semver.NewVersion(a); err == nil && !vb.GreaterThan(va) {
		return a
	}
	return b
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// rolloutOf judges an istiod Deployment: available when it runs its
// current template on every replica, and otherwise why not, in its own words.
func rolloutOf(d *appsv1.Deployment) *revision.Rollout {
	r := &revision.Rollout{Available: rolledOut(d), Serving: d.Status.AvailableReplicas > 0 && conditionTrue(d, appsv1.DeploymentAvailable)}
	if r.Available {
		return r
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	r.Reason = fmt.Sprintf("%d of %d replicas updated, %d available", d.Status.UpdatedReplicas, want, d.Status.AvailableReplicas)
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			r.DeadlineExceeded = true
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			r.Reason = c.Reason + ": " + c.Message
		}
	}
	return r
}

func conditionTrue(d *appsv1.Deployment, t appsv1.DeploymentConditionType) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolledOut is true when a Deployment runs its current template on every
// replica and all of them are available.
func rolledOut(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.UpdatedReplicas < want || s.Replicas > s.UpdatedReplicas || s.AvailableReplicas < want {
		return false
	}
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return want == 0
}
