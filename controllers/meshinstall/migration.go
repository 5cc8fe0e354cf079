package meshinstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"istio.io/api/annotation"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/migration"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// migrationObservation is what gather found of the foreign revision
// spec.migration adopts (or, once it was removed, of the one status says a
// migration ran off, until the abort is finished).
type migrationObservation struct {
	revision, namespace string
	// injectors are the foreign revision's injector configurations (its
	// own and its tags'), read live and whole: the cache trims them.
	injectors map[string]*admissionregistrationv1.MutatingWebhookConfiguration
	// validators are its validator configurations, by name, as detected.
	validators []foreignObject
	// istiods are its istiod Deployments in the migration's namespace.
	istiods []foreignObject
	// tags are the istio.io/tag of its revision tag configurations.
	tags []string
	// workloads and foreignPods are what the migration moves (migration.Input).
	workloads   []migration.Workload
	foreignPods int32
}

// migrationTarget is the foreign revision and namespace of the migration
// under way: spec.migration, or, after it was removed, status.migration
// until the abort finished. Zero when none.
func migrationTarget(mi *meshv1alpha1.MeshInstall) (rev, ns string) {
	if m := mi.Spec.Migration; m != nil {
		return m.Revision, m.Namespace
	}
	if s := mi.Status.Migration; s != nil && s.Phase != meshv1alpha1.MigrationAborted && s.Phase != meshv1alpha1.MigrationComplete {
		return s.Revision, s.Namespace
	}
	return "", ""
}

// observeMigration reads the foreign revision of the migration: its
// injectors live (the cache keeps only their names and labels), its
// validators and istiod from the cache, and, from the pods observe
// already gathered, which workloads it still injects. A MeshInstall with
// no migration pays nothing.
func (r *Reconciler) observeMigration(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation) (*migrationObservation, error) {
	rev, ns := migrationTarget(mi)
	if rev == "" {
		return nil, nil
	}
	m := &migrationObservation{revision: rev, namespace: ns, injectors: map[string]*admissionregistrationv1.MutatingWebhookConfiguration{}}
	for _, o := range obs.foreign.injectors {
		if cmpRevision(o.revision) != rev {
			continue
		}
		w := &admissionregistrationv1.MutatingWebhookConfiguration{}
		switch err := r.APIReader.Get(ctx, client.ObjectKey{Name: o.name}, w); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading the foreign injector %s: %w", o.name, err)
		}
		m.injectors[o.name] = w
		if o.tag != "" && o.tag != revision.DefaultTag {
			m.tags = append(m.tags, o.tag)
		}
	}
	for _, o := range obs.foreign.validators {
		if cmpRevision(o.revision) == rev {
			m.validators = append(m.validators, o)
		}
	}
	var deployments appsv1.DeploymentList
	if err := r.List(ctx, &deployments, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Deployments in %s: %w", ns, err)
	}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		if t := d.Spec.Template.Labels; t["app"] == "istiod" && revisionOf(t) == rev && !controlledByAMeshInstall(d) && d.DeletionTimestamp.IsZero() {
			o := foreignObject{kind: "Deployment", namespace: ns, name: d.Name, revision: rev}
			if err := r.describeIstiod(ctx, &o); err != nil {
				return nil, err
			}
			m.istiods = append(m.istiods, o)
		}
	}
	slices.Sort(m.tags)
	m.workloads, m.foreignPods = migrationWorkloads(obs)
	return m, nil
}

// cmpRevision is the revision an Istio object serves: unlabelled is default.
func cmpRevision(rev string) string {
	if rev == "" {
		return revision.DefaultTag
	}
	return rev
}

// migrationWorkloads are the workloads with pods injected by Istio's
// injector (sidecar status without meshkeeper's stamp, label or
// annotations) or with a migrated
// pod template, and how many running pods Istio's injector injected. While
// a migration runs, any other Istio injector stalls the MeshInstall
// (foreignRefusal), so every such pod is the migrated revision's.
func migrationWorkloads(obs *observation) ([]migration.Workload, int32) {
	byKey := map[rollout.Key]*migration.Workload{}
	get := func(k rollout.Key) *migration.Workload {
		w, ok := byKey[k]
		if !ok {
			wl := obs.workloads[k]
			w = &migration.Workload{Key: k, Migrated: obs.migratedTemplates[k], RolledOut: wl.RolledOut, OptedOut: wl.OptedOut}
			byKey[k] = w
		}
		return w
	}
	for k := range obs.migratedTemplates {
		if _, ok := obs.workloads[k]; ok {
			get(k)
		}
	}
	var foreign int32
	for _, wp := range obs.workloadPods {
		_, istio := wp.pod.Annotations[annotation.SidecarStatus.Name]
		isForeign := istio && wp.pod.Labels[inject.LabelInjectedBy] == "" && wp.current == ""
		if isForeign {
			foreign++
		}
		if _, ok := obs.workloads[wp.owner]; !ok || !wp.owner.Restartable() {
			continue
		}
		switch {
		case isForeign:
			get(wp.owner).ForeignPods++
		case wp.pod.Labels[migration.LabelMigrated] != "":
			get(wp.owner).MigratedPods++
		}
	}
	out := make([]migration.Workload, 0, len(byKey))
	for _, w := range byKey {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b migration.Workload) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out, foreign
}

// withoutMigrated is what foreignRefusal judges: the foreign installation
// less the revision being migrated off (its istiod and injectors are the
// migration's to hand over, not a reason to stall).
func withoutMigrated(f foreignControlPlane, m *migrationObservation) foreignControlPlane {
	if m == nil {
		return f
	}
	ours := func(o foreignObject) bool { return cmpRevision(o.revision) == m.revision }
	f.istiods = slices.DeleteFunc(slices.Clone(f.istiods), func(o foreignObject) bool { return ours(o) && o.namespace == m.namespace })
	f.injectors = slices.DeleteFunc(slices.Clone(f.injectors), ours)
	f.injectedPods = 0 // the migration's to move
	return f
}

// migrationRefusal refuses a spec.migration that cannot be carried out:
// a revision no foreign control plane serves, a tag of it meshkeeper would
// not serve, a version outside the canary rules.
func migrationRefusal(mi *meshv1alpha1.MeshInstall, m *migrationObservation) error {
	spec := mi.Spec.Migration
	if spec == nil || m == nil || (mi.Status.Migration != nil && mi.Status.Migration.Phase == meshv1alpha1.MigrationComplete) {
		return nil
	}
	if len(m.istiods) == 0 && len(m.injectors) == 0 {
		return refusal.Newf(meshv1alpha1.ReasonInvalidSpec,
			"spec.migration.revision: no Istio control plane meshkeeper did not make serves revision %s in namespace %s (no istiod Deployment, no injector labelled istio.io/rev=%s)",
			spec.Revision, spec.Namespace, spec.Revision)
	}
	for _, tag := range m.tags {
		if !slices.Contains(mi.Spec.RevisionTags, tag) {
			return refusal.Newf(meshv1alpha1.ReasonInvalidSpec,
				"spec.revisionTags: the foreign revision %s has the tag %s; list it, so that pods of namespaces labelled istio.io/rev=%s are injected once they move",
				spec.Revision, tag, tag)
		}
	}
	desired, err := version.Parse(mi.Spec.Version)
	if err != nil {
		return nil // spec.version's own refusal names it
	}
	for _, o := range m.istiods {
		from, err := version.Parse(strings.SplitN(o.version, "-", 2)[0])
		if err != nil {
			return refusal.Newf(meshv1alpha1.ReasonUnsupportedVersion,
				"spec.migration: the foreign istiod %s/%s runs %q, which this operator cannot compare with spec.version: %v", o.namespace, o.name, o.version, err)
		}
		if desired.Compare(from) < 0 {
			return refusal.Newf(meshv1alpha1.ReasonDowngradeNotAllowed,
				"spec.migration: the foreign istiod %s/%s runs %s; spec.version %s would move its workloads to an older proxy: migrate at %s or newer (up to two minors)",
				o.namespace, o.name, from, desired, from)
		}
		if err := version.CheckCanary(from, desired); err != nil {
			return refusalFromSkew(err)
		}
	}
	return nil
}

func refusalFromSkew(err error) error {
	var skew *version.SkewError
	if errors.As(err, &skew) {
		return &refusal.Error{Reason: skew.Rule, Message: "spec.migration: " + skew.Message}
	}
	return err
}

// migrationInput is what migration.Decide reads, from the spec and what was observed.
func migrationInput(mi *meshv1alpha1.MeshInstall, obs *observation, m *migrationObservation) migration.Input {
	steps, interval, paused := revision.CanarySettings(mi)
	grace := 30 * time.Second
	if g := mi.Spec.UpdateStrategy.InactiveRevisionDeletionGracePeriod; g != nil {
		grace = g.Duration
	}
	in := migration.Input{
		Now: obs.Now, Spec: mi.Spec.Migration, Previous: mi.Status.Migration,
		Steps: steps, StepInterval: interval, Paused: paused, Grace: grace,
		Automatic:     mi.Spec.DataPlane.Rollout.Mode == meshv1alpha1.RolloutAutomatic,
		Injectors:     map[string]bool{},
		ReadyToInject: readyToInjectMigrated(obs),
		Workloads:     m.workloads,
		ForeignPods:   m.foreignPods,
	}
	for name, w := range m.injectors {
		in.Injectors[name] = migration.Narrowed(w)
	}
	return in
}

// readyToInjectMigrated says whether meshkeeper's injector, as the pass
// found it in the cluster, selects migrated pods and the routing sends
// them to a revision whose istiod is available: only then may a workload
// be labelled as migrated.
func readyToInjectMigrated(obs *observation) bool {
	if obs.injector == nil || len(obs.injector.Webhooks) == 0 || obs.Routing == nil {
		return false
	}
	o := obs.Revisions[obs.Routing.Active]
	return o.Istiod != nil && o.Istiod.Available && gatedToMigrated(obs.injector)
}

// gatedToMigrated says whether meshkeeper's injector selects only migrated
// pods (but for gateways).
func gatedToMigrated(w *admissionregistrationv1.MutatingWebhookConfiguration) bool {
	return slices.ContainsFunc(w.Webhooks, func(h admissionregistrationv1.MutatingWebhook) bool {
		return h.ObjectSelector != nil && slices.ContainsFunc(h.ObjectSelector.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
			gate := migration.OnlyMigrated()
			return r.Key == gate.Key && r.Operator == gate.Operator && slices.Equal(r.Values, gate.Values)
		})
	})
}

// injectorGate is what meshkeeper's injector entries add to their
// objectSelector: while any foreign injector of the migration is in the
// cluster, only migrated pods, so that no pod is matched by both.
func injectorGate(m *migrationObservation) []metav1.LabelSelectorRequirement {
	if m == nil || len(m.injectors) == 0 {
		return nil
	}
	return []metav1.LabelSelectorRequirement{migration.OnlyMigrated()}
}

// heldByForeign says whether an object meshkeeper renders has the name of
// one of the foreign revision's webhook configurations (Istio's
// istio-revision-tag-default, istiod-default-validator): it is not applied
// while that one is in the cluster, and never written over.
func heldByForeign(m *migrationObservation, o client.Object) bool {
	if m == nil {
		return false
	}
	switch o.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		_, held := m.injectors[o.GetName()]
		return held
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return slices.ContainsFunc(m.validators, func(v foreignObject) bool { return v.name == o.GetName() })
	}
	return false
}

// carryOutMigration applies the migration's plan in its order: narrow the
// foreign injectors (before anything is labelled), label or unlabel pod
// templates, restore the foreign injectors (an abort, once every workload
// is back), remove the foreign control plane (completion with Remove).
func (r *Reconciler) carryOutMigration(ctx context.Context, mi *meshv1alpha1.MeshInstall, m *migrationObservation, p migration.Plan) error {
	for _, name := range p.Narrow {
		if err := r.rewriteInjector(ctx, m.injectors[name], migration.Narrow); err != nil {
			return err
		}
		r.event(mi, corev1.EventTypeNormal, "MigrationNarrowed", "Migrate",
			fmt.Sprintf("the foreign injector %s leaves out pods labelled %s", name, migration.LabelMigrated))
	}
	if len(p.Narrow) > 0 {
		return nil // the next pass sees them narrowed before anything moves
	}
	var errs []error
	for _, k := range p.Label {
		errs = append(errs, r.labelMigrated(ctx, k, true))
	}
	for _, k := range p.Unlabel {
		errs = append(errs, r.labelMigrated(ctx, k, false))
	}
	if n := len(p.Label); n > 0 {
		r.event(mi, corev1.EventTypeNormal, "MigrationStep", "Migrate", fmt.Sprintf("at %d%%: moving %d workload(s) to meshkeeper's revision", p.Status.Weight, n))
	}
	if n := len(p.Unlabel); n > 0 {
		r.event(mi, corev1.EventTypeNormal, "MigrationAborting", "Migrate", fmt.Sprintf("returning %d workload(s) to the foreign revision %s", n, m.revision))
	}
	for _, name := range p.Restore {
		errs = append(errs, r.rewriteInjector(ctx, m.injectors[name], migration.Restore))
		r.event(mi, corev1.EventTypeNormal, "MigrationAborted", "Migrate", fmt.Sprintf("the foreign injector %s is restored as it was", name))
	}
	if p.RemoveForeign {
		errs = append(errs, r.removeForeign(ctx, mi, m))
	}
	return errors.Join(errs...)
}

// rewriteInjector writes a foreign injector changed by change (narrowed or
// restored) with a merge patch under optimistic locking: if its owner
// changed it since it was read, nothing is written and the next pass reads it again.
func (r *Reconciler) rewriteInjector(ctx context.Context, w *admissionregistrationv1.MutatingWebhookConfiguration,
	change func(*admissionregistrationv1.MutatingWebhookConfiguration) (*admissionregistrationv1.MutatingWebhookConfiguration, error)) error {
	changed, err := change(w)
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, changed, client.MergeFromWithOptions(w, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("handing over injection on %s: %w", w.Name, err)
	}
	log.FromContext(ctx).Info("rewrote a foreign injector's selectors", "name", w.Name)
	return nil
}

// labelMigrated sets or removes LabelMigrated on a workload's pod template,
// which rolls it out: its new pods are injected by meshkeeper, or, without
// the label, by the foreign revision again.
func (r *Reconciler) labelMigrated(ctx context.Context, k rollout.Key, migrated bool) error {
	obj, ok := workloadObject(k)
	if !ok {
		return fmt.Errorf("%s cannot be moved", k)
	}
	var value any // null removes it
	if migrated {
		value = "true"
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"labels": map[string]any{migration.LabelMigrated: value}}}}})
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("moving %s: %w", k, err)
	}
	return nil
}

// removeForeign deletes the foreign revision's injector and validator
// configurations and istiod Deployments, named exactly as detected, each
// only if it is still the object that was detected (its UID): nothing else
// of the foreign installation (its CRDs, ConfigMaps, users' objects).
func (r *Reconciler) removeForeign(ctx context.Context, mi *meshv1alpha1.MeshInstall, m *migrationObservation) error {
	var objs []client.Object
	for _, w := range m.injectors {
		objs = append(objs, w)
	}
	for _, v := range m.validators {
		objs = append(objs, &admissionregistrationv1.ValidatingWebhookConfiguration{})
		objs[len(objs)-1].SetName(v.name)
	}
	for _, d := range m.istiods {
		objs = append(objs, &appsv1.Deployment{})
		objs[len(objs)-1].SetNamespace(d.namespace)
		objs[len(objs)-1].SetName(d.name)
	}
	var errs []error
	for _, o := range objs {
		var opts []client.DeleteOption
		if uid := o.GetUID(); uid != "" {
			opts = append(opts, client.Preconditions{UID: &uid})
		}
		if err := r.Delete(ctx, o, opts...); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing the foreign %T %s: %w", o, o.GetName(), err))
			continue
		}
		r.event(mi, corev1.EventTypeNormal, "MigrationRemoved", "Migrate", fmt.Sprintf("removed the foreign %s of revision %s", foreignName(o), m.revision))
	}
	return errors.Join(errs...)
}

func foreignName(o client.Object) string {
	switch o.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return "injector " + o.GetName()
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return "validator " + o.GetName()
	}
	return "istiod Deployment " + o.GetNamespace() + "/" + o.GetName()
}

// migrationHeld names the foreign webhook configurations a migration holds,
// sorted: when they change, the injector's gate and what is held back do.
func migrationHeld(m *migrationObservation) []string {
	if m == nil {
		return nil
	}
	var names []string
	for name := range m.injectors {
		names = append(names, "injector "+name)
	}
	for _, v := range m.validators {
		names = append(names, "validator "+v.name)
	}
	slices.Sort(names)
	return names
}

// migrationStep decides the migration's pass and carries it out, before
// meshkeeper's own objects are applied: narrowing comes before anything
// else, and a template is labelled only once meshkeeper's injector in the
// cluster already selects migrated pods (readyToInjectMigrated).
func (r *Reconciler) migrationStep(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation, st *statusBuilder) (migration.Plan, error) {
	p := migration.Decide(migrationInput(mi, obs, obs.migration))
	st.migrated(p.Status)
	if prev := mi.Status.Migration; prev == nil || prev.Phase != p.Status.Phase || prev.Weight != p.Status.Weight {
		r.event(mi, corev1.EventTypeNormal, "Migration"+string(p.Status.Phase), "Migrate",
			fmt.Sprintf("migration off revision %s: %s at %d%%: %s", p.Status.Revision, p.Status.Phase, p.Status.Weight, p.Status.Message))
	}
	return p, r.carryOutMigration(ctx, mi, obs.migration, p)
}

// restoreNarrowedInjectors restores, when a MeshInstall is deleted, every
// foreign injector a migration narrowed, before meshkeeper's injector goes:
// otherwise migrated workloads' new pods would match no injector at all.
// For that moment both match them; each injector leaves a pod the other
// injected alone (sidecar.istio.io/status), so one injects it.
func (r *Reconciler) restoreNarrowedInjectors(ctx context.Context) error {
	var mutating admissionregistrationv1.MutatingWebhookConfigurationList
	if err := r.List(ctx, &mutating); err != nil {
		return fmt.Errorf("listing MutatingWebhookConfigurations: %w", err)
	}
	var errs []error
	for i := range mutating.Items {
		if cached := &mutating.Items[i]; controlledByAMeshInstallRef(cached) || !istioInjector(cached) {
			continue
		}
		w := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Name: mutating.Items[i].Name}, w); err != nil {
			errs = append(errs, client.IgnoreNotFound(err))
			continue
		}
		if _, narrowed := w.Annotations[migration.AnnotationOriginalSelectors]; narrowed {
			errs = append(errs, r.rewriteInjector(ctx, w, migration.Restore))
		}
	}
	return errors.Join(errs...)
}
