package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// RevisionSource is the injector's ConfigSource in the operator: it holds, in
// memory, the injection configuration of every revision (from the
// revisions' ConfigMaps) and where every tag points (from the routing
// ConfigMap the reconciler writes beside them), rebuilt from the manager's
// cache whenever one changes. A request reads one atomic snapshot: no API
// call, no lock, no parsing. Routing lives in the cluster, not in the
// MeshInstall's status, so a lost status never re-routes a pod.
type RevisionSource struct {
	reader   client.Reader
	snapshot atomic.Pointer[snapshot]
	mu       sync.Mutex // serialises rebuilds
	loaded   atomic.Bool
}

type snapshot struct {
	revisions map[string]parsed
	tags      map[string]revision.Routing
}

// parsed is a revision's configuration and the JSON it was read from.
type parsed struct {
	cfg *inject.Config
	raw string
}

// NewRevisionSource watches ConfigMaps in the manager's cache. It reports
// ready (Ready) once the cache has synced and the first snapshot is built.
func NewRevisionSource(ctx context.Context, c cache.Cache) (*RevisionSource, error) {
	s := &RevisionSource{reader: c}
	s.snapshot.Store(&snapshot{})
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.rebuild(ctx) },
		UpdateFunc: func(any, any) { s.rebuild(ctx) },
		DeleteFunc: func(any) { s.rebuild(ctx) },
	}
	// Which ConfigMaps are believed follows the MeshInstalls (their UIDs
	// and namespaces), so a change to either rebuilds.
	for _, obj := range []client.Object{&corev1.ConfigMap{}, &meshv1alpha1.MeshInstall{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
	}
	go func() {
		if c.WaitForCacheSync(ctx) && s.rebuild(ctx) {
			s.loaded.Store(true)
		}
	}()
	return s, nil
}

// Ready is a readiness check: it fails until every revision's configuration
// and the routing have been loaded from a synced cache, so that a replica
// starting during a rolling update never answers for a revision it does
// not know yet.
func (s *RevisionSource) Ready(*http.Request) error {
	if !s.loaded.Load() {
		return errors.New("the injection configurations are not loaded yet")
	}
	return nil
}

// Resolve returns the configuration for a revision, or for the revision a
// tag assigns the workload to.
func (s *RevisionSource) Resolve(target Target, w Workload) (*inject.Config, error) {
	snap := s.snapshot.Load()
	rev := target.Revision
	if rev == "" {
		t, ok := snap.tags[target.Tag]
		if !ok {
			return nil, fmt.Errorf("revision tag %q points at no revision yet", target.Tag)
		}
		rev = t.Target(w.Namespace, w.Name)
	}
	p, ok := snap.revisions[rev]
	if !ok {
		return nil, fmt.Errorf("no injection configuration for revision %q yet", rev)
	}
	return p.cfg, nil
}

// rebuild recomputes the snapshot from the cache, and reports whether it
// could. Configurations whose ConfigMap did not change keep their parsed
// (and memoised) value.
func (s *RevisionSource) rebuild(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snapshot.Load()
	next := &snapshot{revisions: map[string]parsed{}, tags: map[string]revision.Routing{}}

	trusted, err := s.trustedConfigMaps(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "listing MeshInstalls")
		return false
	}
	var cms corev1.ConfigMapList
	if err := s.reader.List(ctx, &cms, client.MatchingLabels{render.LabelInjectionConfig: "true"}); err != nil {
		log.FromContext(ctx).Error(err, "listing injection configurations")
		return false
	}
	for i := range cms.Items {
		cm := &cms.Items[i]
		if !trusted(cm) {
			continue
		}
		rev := cm.Labels[render.LabelRevision]
		raw := cm.Data[render.InjectionConfigKey]
		if prev, ok := old.revisions[rev]; ok && prev.raw == raw {
			next.revisions[rev] = prev // keeps its memoised derivations
			continue
		}
		cfg := &inject.Config{}
		if err := json.Unmarshal([]byte(raw), cfg); err != nil {
			log.FromContext(ctx).Error(err, "unreadable injection configuration", "configmap", cm.Name)
			continue
		}
		if err := cfg.Prepare(); err != nil {
			log.FromContext(ctx).Error(err, "unusable injection configuration", "configmap", cm.Name)
			continue
		}
		next.revisions[rev] = parsed{cfg: cfg, raw: raw}
	}

	var routes corev1.ConfigMapList
	if err := s.reader.List(ctx, &routes, client.MatchingLabels{render.LabelRouting: "true"}); err != nil {
		log.FromContext(ctx).Error(err, "listing revision routing")
		return false
	}
	for i := range routes.Items {
		cm := &routes.Items[i]
		if !cm.DeletionTimestamp.IsZero() || !trusted(cm) {
			continue
		}
		r, err := revision.RoutingFromData(cm.Data)
		if err != nil {
			log.FromContext(ctx).Error(err, "unreadable revision routing", "configmap", cm.Namespace+"/"+cm.Name)
			continue
		}
		for _, tag := range r.Tags {
			next.tags[tag] = r
		}
	}
	s.snapshot.Store(next)
	return true
}

// trustedConfigMaps returns the trust rule the injector applies: a
// ConfigMap decides injection or routing only when it is a MeshInstall's
// own, in its control plane namespace with its controller reference
// (ownership.Scope). The labels only find candidates: anyone who may create
// a ConfigMap in their namespace can copy them.
func (s *RevisionSource) trustedConfigMaps(ctx context.Context) (func(*corev1.ConfigMap) bool, error) {
	var list meshv1alpha1.MeshInstallList
	if err := s.reader.List(ctx, &list); err != nil {
		return nil, err
	}
	scopes := make([]ownership.Scope, 0, len(list.Items))
	for i := range list.Items {
		scopes = append(scopes, ownership.Of(&list.Items[i]))
	}
	return func(cm *corev1.ConfigMap) bool {
		for _, scope := range scopes {
			if scope.OwnsControlPlane(cm) {
				return true
			}
		}
		return false
	}, nil
}
