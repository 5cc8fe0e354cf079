package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// RevisionSource is the injector's ConfigSource in the operator: it holds, in
// memory, the injection configuration of every revision (from the
// revisions' ConfigMaps) and where every tag points (from the MeshInstall's
// status), rebuilt from the manager's cache whenever either changes. A
// request reads one atomic snapshot: no API call, no lock, no parsing.
type RevisionSource struct {
	reader   client.Reader
	snapshot atomic.Pointer[snapshot]
	mu       sync.Mutex // serialises rebuilds
}

type snapshot struct {
	revisions map[string]parsed
	tags      map[string]tagTarget
}

// parsed is a revision's configuration and the JSON it was read from.
type parsed struct {
	cfg *inject.Config
	raw string
}

// tagTarget is where a tag points: the active revision, and during a canary
// the canary revision with the share of workloads it receives.
type tagTarget struct {
	active, canary string
	weight         int32
}

// NewRevisionSource watches ConfigMaps and MeshInstalls in the manager's cache.
func NewRevisionSource(ctx context.Context, c cache.Cache) (*RevisionSource, error) {
	s := &RevisionSource{reader: c}
	s.snapshot.Store(&snapshot{})
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.rebuild(ctx) },
		UpdateFunc: func(any, any) { s.rebuild(ctx) },
		DeleteFunc: func(any) { s.rebuild(ctx) },
	}
	for _, obj := range []client.Object{&corev1.ConfigMap{}, &meshv1alpha1.MeshInstall{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
	}
	return s, nil
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
		rev = t.active
		if t.canary != "" && revision.OnCanary(w.Namespace, w.Name, t.weight) {
			rev = t.canary
		}
	}
	p, ok := snap.revisions[rev]
	if !ok {
		return nil, fmt.Errorf("no injection configuration for revision %q yet", rev)
	}
	return p.cfg, nil
}

// rebuild recomputes the snapshot from the cache. Configurations whose
// ConfigMap did not change keep their parsed (and memoised) value.
func (s *RevisionSource) rebuild(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snapshot.Load()
	next := &snapshot{revisions: map[string]parsed{}, tags: map[string]tagTarget{}}

	var cms corev1.ConfigMapList
	if err := s.reader.List(ctx, &cms, client.MatchingLabels{render.LabelInjectionConfig: "true"}); err != nil {
		log.FromContext(ctx).Error(err, "listing injection configurations")
		return
	}
	for i := range cms.Items {
		cm := &cms.Items[i]
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

	var mis meshv1alpha1.MeshInstallList
	if err := s.reader.List(ctx, &mis); err != nil {
		log.FromContext(ctx).Error(err, "listing MeshInstalls")
		return
	}
	for _, mi := range mis.Items {
		active := mi.Status.ActiveRevision
		if active == "" && len(next.revisions) == 1 {
			// First install: the revision's configuration is applied before
			// the status that names it is written; it is the only candidate.
			for rev := range next.revisions {
				active = rev
			}
		}
		if active == "" || !mi.DeletionTimestamp.IsZero() {
			continue
		}
		t := tagTarget{active: active}
		if c := mi.Status.Canary; c != nil {
			t.canary, t.weight = c.Revision, c.Weight
		}
		next.tags[webhookconfig.DefaultTag] = t
		for _, tag := range mi.Spec.RevisionTags {
			next.tags[tag] = t
		}
	}
	s.snapshot.Store(next)
}
