package migration

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
)

// Workload is what the migration reads of one Deployment, StatefulSet or
// DaemonSet whose pods the foreign revision injected or meshkeeper's
// revision injected because it was migrated.
type Workload struct {
	rollout.Key
	// Migrated is true when its pod template carries LabelMigrated=true.
	Migrated bool
	// ForeignPods are its running pods injected by the foreign revision.
	ForeignPods int32
	// MigratedPods are its running pods labelled LabelMigrated (injected by meshkeeper).
	MigratedPods int32
	// RolledOut is true when its controller has rolled out its current template.
	RolledOut bool
	// OptedOut is true when it or its namespace opted out of restarts
	// (mesh.meshkeeper.dev/rollout: disabled): it is reported, never moved.
	OptedOut bool
}

// Input is everything Decide reads.
type Input struct {
	Now time.Time
	// Spec is spec.migration; nil when it was removed (an abort, unless complete).
	Spec *meshv1alpha1.MigrationSpec
	// Previous is status.migration as last reported (nil when unknown).
	Previous *meshv1alpha1.MigrationStatus
	// Steps, StepInterval and Paused are spec.updateStrategy.canary's, defaults applied.
	Steps        []int32
	StepInterval time.Duration
	Paused       bool
	// Grace is spec.updateStrategy.inactiveRevisionDeletionGracePeriod.
	Grace time.Duration
	// Automatic is spec.dataPlane.rollout.mode Automatic: workloads are
	// labelled (moved) by meshkeeper; in Manual mode they are only listed.
	Automatic bool
	// Injectors are the foreign revision's injector configurations, by
	// name, and whether each is narrowed (Narrowed) in the cluster.
	Injectors map[string]bool
	// ReadyToInject is true when meshkeeper's injector in the cluster
	// selects migrated pods and routes them to a revision whose istiod is
	// available: only then may a template get LabelMigrated.
	ReadyToInject bool
	// Workloads are the workloads of the migration.
	Workloads []Workload
	// ForeignPods are all running pods injected by the foreign revision
	// (Jobs' and bare pods' included).
	ForeignPods int32
}

// Plan is the decision of one pass. Apply it in this order: Narrow, then
// meshkeeper's injector (gated), Label/Unlabel, Restore, Remove.
type Plan struct {
	Status meshv1alpha1.MigrationStatus
	// Narrow are foreign injectors to narrow now.
	Narrow []string
	// Restore are foreign injectors to restore now (an abort whose
	// workloads are all back).
	Restore []string
	// Label are workloads whose pod template gets LabelMigrated now;
	// Unlabel those that lose it (an abort).
	Label, Unlabel []rollout.Key
	// RemoveForeign is set once, when the migration completes with Remove.
	RemoveForeign bool
	// RequeueAfter is when to look again with nothing changed (0: no need).
	RequeueAfter time.Duration
}

// poll is how often a migration in progress looks again. Pod and workload
// events are batched (the reconciler's podEventDelay, 10s); a step waits on
// rollouts, so it looks sooner, only while a migration runs.
const poll = 2 * time.Second

// Active says whether a migration is under way or being aborted: spec.migration
// is set, or something of one is still in the cluster (a narrowed foreign
// injector, a migrated workload).
func Active(in Input) bool {
	if in.Spec != nil {
		return true
	}
	for _, narrowed := range in.Injectors {
		if narrowed {
			return true
		}
	}
	return slices.ContainsFunc(in.Workloads, func(w Workload) bool { return w.Migrated })
}

// Decide returns what the migration does this pass.
func Decide(in Input) Plan {
	if in.Spec == nil {
		return abort(in)
	}
	p := Plan{Status: meshv1alpha1.MigrationStatus{Revision: in.Spec.Revision, Namespace: in.Spec.Namespace}}
	wasComplete := false
	if prev := in.Previous; prev != nil && prev.Revision == in.Spec.Revision {
		p.Status.Weight, p.Status.StepStartTime, p.Status.ForeignUnusedSince = prev.Weight, prev.StepStartTime, prev.ForeignUnusedSince
		wasComplete = prev.Phase == meshv1alpha1.MigrationComplete
	}
	// First the foreign entries leave migrated pods out; nothing else
	// moves in the pass that narrows them.
	for _, name := range sortedNames(in.Injectors) {
		if !in.Injectors[name] {
			p.Narrow = append(p.Narrow, name)
		}
	}
	count(in, &p)
	if wasComplete {
		// Kept (Keep), the foreign injector still injects what is not
		// migrated: a workload that appears on it later moves too, and
		// entries its installer wrote back are narrowed again.
		p.Status.Phase, p.Status.Message = meshv1alpha1.MigrationComplete, in.Previous.Message
		if len(p.Narrow) == 0 && in.ReadyToInject {
			move(in, &p)
		}
		return p
	}
	switch {
	case len(p.Narrow) > 0:
		return handingOver(p, "narrowing the foreign injector's entries to leave out migrated pods")
	case !in.ReadyToInject:
		return handingOver(p, "waiting for meshkeeper's revision to be available and its injector to select migrated pods")
	}
	now := metav1.NewTime(in.Now)
	if p.Status.Weight == 0 {
		p.Status.Weight, p.Status.StepStartTime = in.Steps[0], &now
	}
	p.Status.Phase = meshv1alpha1.MigrationMoving
	pending := move(in, &p)
	started := in.Now
	if p.Status.StepStartTime != nil {
		started = p.Status.StepStartTime.Time
	}
	switch {
	case len(pending) > 0:
		p.Status.Message = fmt.Sprintf("at %d%%: waiting for %s", p.Status.Weight, listed(pending, 3))
		p.RequeueAfter = poll
	case p.Status.Weight < 100 && in.Paused:
		p.Status.Message = fmt.Sprintf("at %d%%: paused (spec.updateStrategy.canary.paused)", p.Status.Weight)
	case p.Status.Weight < 100 && in.Now.Sub(started) < in.StepInterval:
		p.Status.Message = fmt.Sprintf("at %d%%: next step once the step has lasted %s", p.Status.Weight, in.StepInterval)
		p.RequeueAfter = in.StepInterval - in.Now.Sub(started)
	case p.Status.Weight < 100:
		p.Status.Weight, p.Status.StepStartTime = nextStep(in.Steps, p.Status.Weight), &now
		p.Status.Message = fmt.Sprintf("moved to %d%%", p.Status.Weight)
		p.RequeueAfter = poll
	default:
		complete(in, &p)
	}
	return p
}

// move labels the workloads the current weight assigns to meshkeeper's
// revision and returns what the step still waits for.
func move(in Input, p *Plan) []string {
	var pending []string
	for _, w := range in.Workloads {
		if !revision.OnCanary(w.Namespace, w.Name, p.Status.Weight) {
			continue
		}
		switch {
		case w.OptedOut && !w.Migrated:
			pending = append(pending, w.Key.String()+" (opted out of restarts: label its pod template "+LabelMigrated+"=true)")
		case !w.Migrated && in.Automatic:
			p.Label = append(p.Label, w.Key)
			pending = append(pending, w.Key.String()+" (moving)")
		case !w.Migrated:
			pending = append(pending, w.Key.String()+" (spec.dataPlane.rollout.mode is Manual: label its pod template "+LabelMigrated+"=true)")
		case !w.RolledOut || w.ForeignPods > 0:
			pending = append(pending, w.Key.String()+" (rolling out)")
		}
	}
	return pending
}

// complete waits for the foreign revision to be unused for the grace
// period, then completes the migration.
func complete(in Input, p *Plan) {
	if in.ForeignPods > 0 {
		p.Status.ForeignUnusedSince = nil
		p.Status.Message = fmt.Sprintf("every workload moved; %d running pod(s) still injected by the foreign revision (Jobs, bare pods: recreate them)", in.ForeignPods)
		p.RequeueAfter = poll
		return
	}
	now := metav1.NewTime(in.Now)
	if p.Status.ForeignUnusedSince == nil {
		p.Status.ForeignUnusedSince = &now
	}
	if idle := in.Now.Sub(p.Status.ForeignUnusedSince.Time); idle < in.Grace {
		p.Status.Message = fmt.Sprintf("no pod uses the foreign revision; complete after %s", in.Grace)
		p.RequeueAfter = in.Grace - idle
		return
	}
	p.Status.Phase = meshv1alpha1.MigrationComplete
	if in.Spec.ForeignControlPlane == meshv1alpha1.ForeignControlPlaneRemove {
		p.RemoveForeign = true
		p.Status.Message = "complete: the foreign revision's injector, validator and istiod were removed"
		return
	}
	p.Status.Message = fmt.Sprintf("complete: the foreign revision %s is kept and injects no pod; uninstall it with `istioctl uninstall --revision %s` or `helm uninstall`",
		in.Spec.Revision, in.Spec.Revision)
}

// abort returns every migrated workload to the foreign revision, and only
// once none runs on meshkeeper's restores the foreign injector's entries:
// until then they still leave out the pods meshkeeper injects.
func abort(in Input) Plan {
	p := Plan{Status: meshv1alpha1.MigrationStatus{Phase: meshv1alpha1.MigrationAborting}}
	if prev := in.Previous; prev != nil {
		p.Status.Revision, p.Status.Namespace = prev.Revision, prev.Namespace
	}
	count(in, &p)
	var pending []string
	for _, w := range in.Workloads {
		switch {
		case w.Migrated:
			p.Unlabel = append(p.Unlabel, w.Key)
			pending = append(pending, w.Key.String()+" (returning)")
		case !w.RolledOut || w.MigratedPods > 0:
			pending = append(pending, w.Key.String()+" (rolling out)")
		}
	}
	if len(pending) > 0 {
		p.Status.Message = "aborted: waiting for " + listed(pending, 3)
		p.RequeueAfter = poll
		return p
	}
	for _, name := range sortedNames(in.Injectors) {
		if in.Injectors[name] {
			p.Restore = append(p.Restore, name)
		}
	}
	p.Status.Phase = meshv1alpha1.MigrationAborted
	p.Status.Message = "aborted: every workload is back on the foreign revision and its injector is restored as it was"
	return p
}

func handingOver(p Plan, msg string) Plan {
	p.Status.Phase, p.Status.Message, p.RequeueAfter = meshv1alpha1.MigrationHandingOver, msg, poll
	return p
}

// count fills the status counts.
func count(in Input, p *Plan) {
	p.Status.ForeignPods = in.ForeignPods
	p.Status.MigratedWorkloads = 0
	for _, w := range in.Workloads {
		if w.Migrated {
			p.Status.MigratedWorkloads++
		}
	}
	p.Status.NarrowedWebhookConfigurations = nil
	for _, name := range sortedNames(in.Injectors) {
		if in.Injectors[name] {
			p.Status.NarrowedWebhookConfigurations = append(p.Status.NarrowedWebhookConfigurations, name)
		}
	}
}

func nextStep(steps []int32, weight int32) int32 {
	for _, s := range steps {
		if s > weight {
			return s
		}
	}
	return 100
}

func sortedNames(m map[string]bool) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func listed(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:n], "; "), len(items)-n)
}
