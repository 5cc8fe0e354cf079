package main

import (
	"fmt"
	"slices"
	"strings"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// renderPrecheck prints a precheckReport: the verdict first, then what an
// accepted change would ask of the cluster.
func renderPrecheck(r precheckReport) string {
	p := &printer{}
	p.line(fmt.Sprintf("MeshInstall %s: spec.version %s → %s", r.MeshInstall, r.From, r.To))
	if r.Refused != nil {
		reason := refusalReason(r.Refused)
		if reason != "" {
			reason = " (" + reason + ")"
		}
		p.line("Verdict: REFUSED", reason, ": ", r.Refused.Error())
		p.line("The validating webhook refuses this spec.version and nothing of it would be applied.")
		return p.String()
	}
	p.line("Verdict: allowed")
	p.line("Path: ", pathWords(r))
	defaultsSection(p, r)
	workloadsSection(p, r)
	roomSection(p, r.Room)
	// The validator's warning of changed istiod defaults says what the
	// defaults section lists already.
	warnings := slices.DeleteFunc(slices.Clone(r.Warnings), func(w string) bool { return len(r.Defaults) > 0 && strings.Contains(w, "changes istiod defaults") })
	if len(warnings) > 0 {
		p.blank()
		p.line("The validator warns:")
		for _, w := range warnings {
			p.line("  " + w)
		}
	}
	return p.String()
}

// pathWords says how the planner would carry the change out.
func pathWords(r precheckReport) string {
	switch r.Plan.Phase {
	case revision.PhaseUpgradingInPlace:
		return fmt.Sprintf("in place: istiod of revision %s rolls to %s, then new pods get its proxy", r.Plan.Active.Name, r.To)
	case revision.PhaseCanary, revision.PhaseCanaryPaused:
		for _, rev := range r.Plan.Revisions {
			if rev.Role == meshv1alpha1.RevisionCanary {
				return fmt.Sprintf("canary: revision %s (Istio %s) starts beside %s (Istio %s) and takes a growing share of workloads",
					rev.Name, rev.Version, r.Plan.Active.Name, r.Plan.Active.Version)
			}
		}
	case revision.PhaseSteady:
		return "nothing changes: the mesh already runs " + r.To
	}
	return string(r.Plan.Phase) + ": " + r.Plan.Message
}

func defaultsSection(p *printer, r precheckReport) {
	if len(r.Defaults) == 0 {
		return
	}
	p.blank()
	p.line("istiod defaults that change; to keep the old behaviour set in spec.pilot.env:")
	for _, d := range r.Defaults {
		pinned := ""
		if d.Pinned {
			pinned = "  (already set)"
		}
		p.line(fmt.Sprintf("  %s=%s%s", d.Env, d.Keeps, pinned))
	}
}

func workloadsSection(p *printer, r precheckReport) {
	ro := r.Rollout
	p.blank()
	who := "you restart them (spec.dataPlane.rollout.mode Manual)"
	if r.Mode == meshv1alpha1.RolloutAutomatic {
		who = "meshkeeper restarts them (Automatic rollout)"
	}
	p.line(fmt.Sprintf("Workloads to restart onto the new proxy: %d; %s", ro.Total, who))
	if len(ro.NeedsManualAction) == 0 {
		p.line("Needs manual action: none")
		return
	}
	p.line(fmt.Sprintf("Needs manual action (%d): meshkeeper will not restart these; plan to restart or recreate them yourself", len(ro.NeedsManualAction)))
	for _, n := range ro.NeedsManualAction {
		p.line("  " + n)
	}
}

func roomSection(p *printer, r *room) {
	if r == nil {
		return
	}
	p.blank()
	ask := fmt.Sprintf("%d replica(s) asking %s CPU and %s memory each", r.Replicas, r.CPU.String(), r.Memory.String())
	verdict := "fits"
	if r.Fits < r.Replicas {
		verdict = "DOES NOT FIT: the canary's istiod would stay Pending and the canary would wait at weight 0"
	}
	excluded := ""
	if r.Excluded > 0 {
		excluded = fmt.Sprintf(" (%d more cordoned, not Ready or with a taint istiod does not tolerate)", r.Excluded)
	}
	p.line(fmt.Sprintf("Room for the canary's istiod: %s; %d schedulable node(s)%s have room for %d: %s", ask, r.Nodes, excluded, r.Fits, verdict))
}
