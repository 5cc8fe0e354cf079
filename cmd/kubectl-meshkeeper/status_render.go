package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// renderStatus prints a statusView. Everything it says comes from the
// MeshInstall's status (and the few facts statusView adds); it decides
// nothing the operator has not. With colour, good, busy and bad facts are
// green, yellow and red.
func renderStatus(v statusView, colour bool) string {
	p := &printer{colour: colour}
	mi := v.MI
	p.line(p.bold("MeshInstall "+mi.Name), fmt.Sprintf(" · spec.version %s · running %s · generation %d", mi.Spec.Version, cmp.Or(mi.Status.Version, "-"), mi.Generation))
	text, t := headline(mi)
	p.line("State: ", p.paint(t, text))
	p.blank()
	revisionTable(p, v)
	canarySection(p, mi, v.Now)
	migrationSection(p, mi, v.Now)
	dataPlaneSection(p, mi.Status.DataPlane)
	rolloutSection(p, mi, v.Namespace)
	namespaceSection(p, v.Namespace)
	conditionsSection(p, mi.Status.Conditions, v.Now)
	return p.String()
}

// headline is the one line that says where the mesh stands, taken from the
// condition that matters most now.
func headline(mi *meshv1alpha1.MeshInstall) (string, tone) {
	cond := func(t string) *metav1.Condition { return meta.FindStatusCondition(mi.Status.Conditions, t) }
	isTrue := func(t string) bool { c := cond(t); return c != nil && c.Status == metav1.ConditionTrue }
	switch {
	case mi.Status.ObservedGeneration < mi.Generation:
		return fmt.Sprintf("waiting for the operator to judge generation %d (last judged %d)", mi.Generation, mi.Status.ObservedGeneration), busy
	case isTrue(meshv1alpha1.ConditionStalled):
		return "stalled, a person must act: " + cond(meshv1alpha1.ConditionStalled).Message, bad
	case isTrue(meshv1alpha1.ConditionUpgradeInProgress):
		return "upgrading: " + cond(meshv1alpha1.ConditionUpgradeInProgress).Message, busy
	case mi.Status.DataPlane != nil && mi.Status.DataPlane.Rollout != nil && mi.Status.DataPlane.Rollout.Phase == meshv1alpha1.RolloutFailed:
		return "rollout failed: " + mi.Status.DataPlane.Rollout.LastError, bad
	case cond(meshv1alpha1.ConditionDataPlaneUpToDate) != nil && !isTrue(meshv1alpha1.ConditionDataPlaneUpToDate):
		return "data plane not up to date: " + cond(meshv1alpha1.ConditionDataPlaneUpToDate).Message, busy
	case isTrue(meshv1alpha1.ConditionReconciling):
		return "working: " + cond(meshv1alpha1.ConditionReconciling).Message, busy
	case isTrue(meshv1alpha1.ConditionReady):
		return "up to date", good
	case cond(meshv1alpha1.ConditionReady) != nil:
		return "not ready: " + cond(meshv1alpha1.ConditionReady).Message, bad
	}
	return "not reported yet", busy
}

// roleWords are the revision roles as an SRE says them.
var roleWords = map[meshv1alpha1.RevisionRole]string{
	meshv1alpha1.RevisionActive:   "stable",
	meshv1alpha1.RevisionCanary:   "canary",
	meshv1alpha1.RevisionDraining: "draining",
}

func revisionTable(p *printer, v statusView) {
	revs := v.MI.Status.Revisions
	if len(revs) == 0 {
		p.line("Revisions: none reported yet")
		p.blank()
		return
	}
	rows := [][]cell{{{text: "REVISION"}, {text: "VERSION"}, {text: "ROLE"}, {text: "WEIGHT"}, {text: "ISTIOD"}, {text: "PODS"}, {text: "UP-TO-DATE"}}}
	for _, r := range revs {
		rows = append(rows, []cell{
			{text: r.Name}, {text: revisionVersion(r)}, {text: cmp.Or(roleWords[r.Role], string(r.Role))},
			{text: fmt.Sprintf("%d%%", r.Weight)}, istiodCell(r, v.Istiods),
			{text: fmt.Sprint(r.Pods)}, upToDateCell(r.UpToDatePods, r.Pods),
		})
	}
	p.line("Revisions")
	p.table(rows)
	for _, r := range revs {
		if r.LastUsedTime != nil {
			p.line(fmt.Sprintf("  %s: no pod has used it for %s; it is pruned after the grace period", r.Name, since(r.LastUsedTime.Time, v.Now)))
		}
	}
	p.blank()
}

// revisionVersion is the version a revision injects, and its istiod's
// when that is ahead (during an in-place upgrade).
func revisionVersion(r meshv1alpha1.RevisionStatus) string {
	if r.ControlPlaneVersion != "" && r.ControlPlaneVersion != r.Version {
		return r.Version + " (istiod " + r.ControlPlaneVersion + ")"
	}
	return r.Version
}

func istiodCell(r meshv1alpha1.RevisionStatus, istiods map[string]replicas) cell {
	c := cell{text: "unavailable", tone: bad}
	if r.Ready {
		c = cell{text: "available", tone: good}
	}
	if n, ok := istiods[r.Name]; ok {
		c.text += fmt.Sprintf(" %d/%d", n.Available, n.Desired)
	}
	return c
}

func upToDateCell(upToDate, pods int32) cell {
	c := cell{text: fmt.Sprint(upToDate), tone: good}
	if upToDate < pods {
		c.tone = busy
	}
	return c
}

// canarySection shows the canary's weight and its step clock: how long the
// step has run, how long it has been healthy, and when the next step is due.
func canarySection(p *printer, mi *meshv1alpha1.MeshInstall, now time.Time) {
	c := mi.Status.Canary
	if c == nil {
		return
	}
	steps, interval, paused := revision.CanarySettings(mi)
	p.line(p.bold("Canary "+c.Revision), fmt.Sprintf(" (Istio %s): step %d of %d, weight %d%% (steps %s)", c.Version, c.Step+1, len(steps), c.Weight, percents(steps)))
	var clock []string
	if c.StepStartTime != nil {
		clock = append(clock, "step started "+since(c.StepStartTime.Time, now)+" ago")
	}
	switch {
	case paused:
		clock = append(clock, p.paint(busy, "paused at this step (spec.updateStrategy.canary.paused)"))
	case c.HealthySince == nil:
		clock = append(clock, p.paint(busy, "not healthy yet: the step waits for the canary's istiod and pods"))
	case int(c.Step)+1 >= len(steps):
		clock = append(clock, fmt.Sprintf("healthy for %s; promoted once healthy for %s", since(c.HealthySince.Time, now), duration(interval)))
	default:
		due := c.HealthySince.Add(interval).Sub(now)
		clock = append(clock, fmt.Sprintf("healthy for %s of %s; next step (%d%%) %s", since(c.HealthySince.Time, now), duration(interval), steps[c.Step+1], dueIn(due)))
	}
	p.line("  " + strings.Join(clock, "; "))
	p.blank()
}

// migrationSection shows a migration off a foreign Istio like a canary:
// the foreign revision is the stable side, meshkeeper's the canary.
func migrationSection(p *printer, mi *meshv1alpha1.MeshInstall, now time.Time) {
	m := mi.Status.Migration
	if m == nil {
		return
	}
	tone := busy
	switch m.Phase {
	case meshv1alpha1.MigrationComplete:
		tone = good
	case meshv1alpha1.MigrationAborted:
		tone = bad
	}
	p.line(p.bold("Migration off foreign revision "+m.Revision), fmt.Sprintf(" (namespace %s): ", m.Namespace), p.paint(tone, string(m.Phase)),
		fmt.Sprintf(", weight %d%% on meshkeeper's revision", m.Weight))
	facts := []string{fmt.Sprintf("%d workload(s) moved", m.MigratedWorkloads), p.paint(nonZero(m.ForeignPods, busy), fmt.Sprintf("%d pod(s) still on the foreign revision", m.ForeignPods))}
	if m.StepStartTime != nil && m.Phase == meshv1alpha1.MigrationMoving {
		facts = append(facts, "step started "+since(m.StepStartTime.Time, now)+" ago")
	}
	p.line("  " + strings.Join(facts, "; "))
	if len(m.NarrowedWebhookConfigurations) > 0 {
		p.line("  foreign injector(s) leaving out migrated pods: " + strings.Join(m.NarrowedWebhookConfigurations, ", "))
	}
	if m.Message != "" {
		p.line("  " + m.Message)
	}
	p.blank()
}

func dueIn(d time.Duration) string {
	if d <= 0 {
		return "due now"
	}
	return "in " + d.Round(time.Second).String()
}

func percents(steps []int32) string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = fmt.Sprintf("%d%%", s)
	}
	return strings.Join(out, " → ")
}

func dataPlaneSection(p *printer, dp *meshv1alpha1.DataPlaneStatus) {
	if dp == nil {
		return
	}
	line := fmt.Sprintf("%d pods injected, %s up to date, %s outdated, %s uninjected",
		dp.InjectedPods, p.paint(good, fmt.Sprint(dp.UpToDatePods)), p.paint(nonZero(dp.OutdatedPods, busy), fmt.Sprint(dp.OutdatedPods)),
		p.paint(nonZero(dp.UninjectedPods, bad), fmt.Sprint(dp.UninjectedPods)))
	if dp.UnmanagedPods > 0 {
		line += fmt.Sprintf(" (%d of them bare pods: delete and recreate them)", dp.UnmanagedPods)
	}
	p.line(p.bold("Data plane"), ": ", line)
	p.blank()
}

func nonZero(n int32, t tone) tone {
	if n == 0 {
		return plain
	}
	return t
}

// barWidth is the width of the rollout's progress bar, in characters.
const barWidth = 40

// rolloutSection shows the data-plane rollout as a progress bar over its
// workloads (done, in progress, waiting, failed) with the names of what
// it restarts now, what waits and what stopped it, then the pods and
// workloads it leaves to a person. With -n, only that namespace's names.
func rolloutSection(p *printer, mi *meshv1alpha1.MeshInstall, ns *namespacePods) {
	dp := mi.Status.DataPlane
	if dp == nil || dp.Rollout == nil {
		return
	}
	r := dp.Rollout
	mode := cmp.Or(string(mi.Spec.DataPlane.Rollout.Mode), string(meshv1alpha1.RolloutManual))
	if r.Total == 0 {
		p.line(p.bold("Rollout"), fmt.Sprintf(" (%s, %s): no workload to restart", mode, r.Phase))
	} else {
		p.line(p.bold("Rollout"), fmt.Sprintf(" (%s, %s): %d of %d workloads done", mode, r.Phase, r.Done, r.Total))
		p.line("  ", bar(p, r), fmt.Sprintf("  done %d · in progress %d · waiting %d · failed %d", r.Done, r.InProgress, r.Waiting, r.Failed))
	}
	filter := func(names []string) []string {
		if ns == nil {
			return names
		}
		return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !strings.Contains(n, " "+ns.Name+"/") })
	}
	names := func(label string, t tone, list []string) {
		if list = filter(list); len(list) > 0 {
			p.line("  ", p.paint(t, label+":"), " ", strings.Join(list, ", "))
		}
	}
	names("in progress", busy, r.Current)
	if r.Phase == meshv1alpha1.RolloutManualPhase {
		names("restart yourself (Manual mode)", busy, r.Pending)
	} else {
		names("waiting", plain, r.Pending)
	}
	if r.LastError != "" {
		p.line("  ", p.paint(bad, "stopped by:"), " ", r.LastError)
	}
	p.blank()
	if manual := filter(r.NeedsManualAction); len(manual) > 0 {
		p.line(p.paint(bad, fmt.Sprintf("Needs manual action (%d)", len(manual))), ": meshkeeper does not restart these; restart or recreate them yourself")
		for _, m := range manual {
			p.line("  " + m)
		}
		p.blank()
	}
}

// bar draws done, in progress, waiting and failed workloads in proportion
// (a state that holds any workload is at least one character wide).
func bar(p *printer, r *meshv1alpha1.RolloutStatus) string {
	parts := []struct {
		n    int32
		char string
		tone tone
	}{{r.Done, "#", good}, {r.InProgress, ">", busy}, {r.Waiting, ".", plain}, {r.Failed, "x", bad}}
	counts := make([]int, len(parts))
	for i, part := range parts {
		counts[i] = int(part.n)
	}
	var b strings.Builder
	for i, width := range barWidths(counts, barWidth) {
		b.WriteString(p.paint(parts[i].tone, strings.Repeat(parts[i].char, width)))
	}
	return "[" + b.String() + "]"
}

// barWidths shares width between counts in proportion, every non-zero
// count getting at least one; what rounding leaves goes to the largest.
// With nothing to count the bar is full of the first (done).
func barWidths(counts []int, width int) []int {
	total, largest := 0, 0
	for i, n := range counts {
		total += n
		if n > counts[largest] {
			largest = i
		}
	}
	out := make([]int, len(counts))
	if total == 0 {
		out[0] = width
		return out
	}
	used := 0
	for i, n := range counts {
		out[i] = n * width / total
		if n > 0 && out[i] == 0 {
			out[i] = 1
		}
		used += out[i]
	}
	out[largest] += width - used
	return out
}

func namespaceSection(p *printer, ns *namespacePods) {
	if ns == nil {
		return
	}
	var parts []string
	for _, rev := range slices.Sorted(maps.Keys(ns.ByRevision)) {
		parts = append(parts, fmt.Sprintf("%d on %s", ns.ByRevision[rev], rev))
	}
	parts = append(parts, fmt.Sprintf("%d without a sidecar", ns.WithoutSidecar))
	p.line(p.bold("Namespace "+ns.Name), " (pods by the revision stamped on them): ", strings.Join(parts, ", "))
	p.blank()
}

// conditionWords say each condition type in words, and whether True is
// the good state (Ready) or a state of work (Reconciling) or trouble (Stalled).
var conditionWords = map[string]struct {
	words    string
	trueTone tone
}{
	meshv1alpha1.ConditionReady:                     {"ready", good},
	meshv1alpha1.ConditionReconciling:               {"operator working", busy},
	meshv1alpha1.ConditionStalled:                   {"needs a person", bad},
	meshv1alpha1.ConditionUpgradeInProgress:         {"upgrade in progress", busy},
	meshv1alpha1.ConditionDataPlaneUpToDate:         {"data plane up to date", good},
	meshv1alpha1.ConditionWorkloadRollout:           {"restarting workloads", busy},
	meshv1alpha1.ConditionCertificateAuthorityReady: {"mesh CA ready", good},
	meshv1alpha1.ConditionCNIReady:                  {"CNI node agent ready", good},
	meshv1alpha1.ConditionPodSecurityCompatible:     {"injected pods pass Pod Security", good},
}

// conditionsSection lists the conditions, most recently changed first, as
// "yes/no, what, why, since when".
func conditionsSection(p *printer, conds []metav1.Condition, now time.Time) {
	if len(conds) == 0 {
		return
	}
	sorted := slices.Clone(conds)
	slices.SortStableFunc(sorted, func(a, b metav1.Condition) int {
		return cmp.Or(b.LastTransitionTime.Compare(a.LastTransitionTime.Time), cmp.Compare(a.Type, b.Type))
	})
	p.line(p.bold("Conditions"), " (latest change first)")
	rows := make([][]cell, 0, len(sorted))
	for _, c := range sorted {
		w, known := conditionWords[c.Type]
		if !known {
			w.words, w.trueTone = c.Type, plain
		}
		answer := cell{text: "unknown", tone: busy}
		switch c.Status {
		case metav1.ConditionTrue:
			answer = cell{text: "yes", tone: w.trueTone}
		case metav1.ConditionFalse:
			answer = cell{text: "no", tone: opposite(w.trueTone)}
		}
		rows = append(rows, []cell{answer, {text: w.words}, {text: since(c.LastTransitionTime.Time, now) + " ago"}, {text: c.Reason + ": " + c.Message}})
	}
	p.table(rows)
}

// opposite is the tone of a condition's False: trouble when True is good,
// calm when True is work or trouble.
func opposite(t tone) tone {
	if t == good {
		return bad
	}
	return plain
}

// since is how long ago t was, in words (duration).
func since(t, now time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return duration(now.Sub(t))
}

// duration is d in whole seconds under an hour (1m30s), in hours and
// minutes beyond (2h5m).
func duration(d time.Duration) string {
	d = max(d, 0)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	case m > 0 && sec > 0:
		return fmt.Sprintf("%dm%ds", m, sec)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", sec)
}
