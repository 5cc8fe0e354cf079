// Package meshinstall holds the MeshInstall reconciler: a thin shell that
// observes the cluster, calls the pure packages under internal/ and applies
// their result. A pass reads top-down:
//
//   - controller.go: Reconcile's skeleton (get, finalizer, suspend,
//     deferred status, delete or a normal pass), SetupWithManager's watches
//     (setup.go) and the RBAC the reconciler needs;
//   - observe.go: the one gatherer, every fact the pass needs, from the
//     manager's cache (cache.go says what it holds) and the few live reads;
//   - desired.go: what the pass applies, rendered purely from the plans
//     (revision.Decide, meshca.Decide, rollout.Decide) and the observation;
//   - stages.go, apply.go: the staged server-side apply of that (through
//     internal/apply), cleanup.go the prune and the delete;
//   - status.go, events.go, metrics.go: the report, built from the pass's facts.
package meshinstall
