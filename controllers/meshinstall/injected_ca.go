package meshinstall

import (
	"context"
	"encoding/json"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// This file holds what the MeshInstall controller does differently when
// cert-manager's cainjector, not meshkeeper, writes the injector's caBundles
// (webhookconfig.Endpoint.InjectCAFrom).

// untrustedRevisions are the revisions of the plan whose injector entries
// the API server cannot call yet: missing from the injector in the cluster,
// or with a caBundle that does not hold the CA of the certificate served.
// A new revision's entries are written without a caBundle, and cainjector
// fills them a moment later; until then no workload is routed to it. With
// meshkeeper's own CA every entry is written with its bundle, and none is
// held.
func untrustedRevisions(plan revision.Plan, obs *observation, endpoint webhookconfig.Endpoint) map[string]bool {
	out := map[string]bool{}
	if endpoint.InjectCAFrom == "" {
		return out
	}
	for _, p := range plan.Revisions {
		path := webhookconfig.TargetPath("rev", p.Name)
		if p.Name == revision.DefaultTag {
			// The in-place revision has no entries of its own: the default tag's serve it.
			path = webhookconfig.TargetPath("tag", revision.DefaultTag)
		}
		if !obs.matcher.Trusts(path, endpoint.ServingCA) {
			out[p.Name] = true
		}
	}
	return out
}

// union is the revisions in any of the sets.
func union(sets ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, s := range sets {
		for k, v := range s {
			if v {
				out[k] = true
			}
		}
	}
	return out
}

// removeDroppedEntries deletes, by name, the entries of the injector in the
// cluster that the new configuration leaves out, before it is applied.
// cainjector applies every entry's caBundle, so it co-owns each entry: a
// server-side apply that leaves one out would only drop meshkeeper's fields
// of it, and what remained (a name and a caBundle) would fail validation,
// and the whole apply with it. It runs whatever the certificate provider:
// cainjector's ownership outlives a switch back to meshkeeper's own CA.
func removeDroppedEntries(ctx context.Context, c client.Writer, live, desired *admissionregistrationv1.MutatingWebhookConfiguration) error {
	if live == nil {
		return nil
	}
	keep := map[string]bool{}
	for _, w := range desired.Webhooks {
		keep[w.Name] = true
	}
	var drop []map[string]string
	for _, w := range live.Webhooks {
		if !keep[w.Name] {
			drop = append(drop, map[string]string{"name": w.Name, "$patch": "delete"})
		}
	}
	if len(drop) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"webhooks": drop})
	if err != nil {
		return err
	}
	target := &admissionregistrationv1.MutatingWebhookConfiguration{}
	target.Name = live.Name
	if err := c.Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, patch), apply.FieldOwner); err != nil {
		return fmt.Errorf("removing %d entries of %s: %w", len(drop), apply.KeyOf(desired), err)
	}
	return nil
}
