// Package meshinstall holds the MeshInstall reconciler: a thin shell that
// gathers facts from the cluster, plans with the pure packages under
// internal/, applies the plan and reports. reconcileNormal reads top-down:
//
//   - controller.go: Reconcile's skeleton (get, finalizer, suspend,
//     deferred status, delete or a pass), the pass itself, and the RBAC the
//     reconciler needs; setup.go its watches;
//   - observe.go: gather, the one gatherer: every fact the pass needs, from
//     the manager's cache (cache.go says what it holds), the mesh CA's
//     issuer (read live), the webhook endpoint, and which revisions are
//     retired (read live); foreign.go finds Istio installations meshkeeper
//     did not make (observeForeign, from the cache; a foreign istiod is
//     read live for its version and installer), and while one runs,
//     foreignRefusal (pure) stops every pass before its plan;
//   - plan.go, pure: decide (revision.Decide, with the data plane rollout
//     for the routing observed), routingStage (what the last stages apply,
//     from which revisions failed in the first), confirmedUnused and
//     pruneSelection, rolloutFor, and nothingToApply, the pass's early
//     exit (settled, and applyInputs unchanged since the last pass that
//     applied); desired.go: the planner, which holds no client, renders
//     everything the pass applies (desiredObjects);
//   - apply.go: an applier, which holds a client.Writer only, executes the
//     plan stage by stage (applyRevisions, applyRouting) through
//     internal/apply, reading nothing and deciding nothing;
//     meshca.go applies the mesh CA, workloads.go restarts workloads,
//     cleanup.go prunes (the applier too) and deletes; cni.go holds the
//     istio-cni node agent's part of each stage (observed with the pods,
//     rendered at the planner's version, kept while pods rely on it,
//     reported as CNIReady and status.cni);
//   - status.go, events.go, metrics.go: the report, built from the pass's
//     facts by finish; the order in which facts win in Ready, Reconciling
//     and Stalled is one table, ladder.
//
// There is one request key, the MeshInstall's name. Its own events, its
// objects', nodes' and CRDs' enqueue it at once; pods', namespaces' and
// users' workloads' enqueue it batched by podEventDelay (setup.go). A pass
// whose plan finds nothing to apply (nothingToApply) stops after the plan:
// it counts the data plane, carries the rollout on, and writes the counts.
//
// Whether a revision is still used is read in gather (observeRetired), live
// from the API server, and only for a revision the injector and the routing
// observed no longer send pods to: no pod can be injected by it after that
// read. The plan prunes a revision only on such a pass (confirmedUnused),
// which costs one pass more than the one that took the revision out, and
// prune reads nothing.
//
// One read stays outside gather, where its answer must be fresh:
// takeover.go asks the API server, by name, about the objects the plan
// would create that the cache does not hold as the MeshInstall's.
package meshinstall
