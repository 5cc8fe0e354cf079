package revision

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// Render renders a pass of plan as the reconciler applies it: each of the
// plan's revisions, istiod running the CA istiodCA names, the shared
// objects following active, with spec.overlays applied. It is the one
// conversion of a plan into the renderer's revisions, so that admission
// judges overlays against exactly what the reconciler would apply.
// nodesWithoutNativeSidecars is what the reconciler observed of the nodes.
func Render(mi *meshv1alpha1.MeshInstall, plan Plan, active Planned, istiodCA string, nodesWithoutNativeSidecars bool) (perRevision [][]client.Object, shared []client.Object, err error) {
	revisions := make([]render.Revision, len(plan.Revisions))
	for i, p := range plan.Revisions {
		revisions[i] = render.Revision{Name: p.Name, Version: p.Version, ProxyVersion: p.ProxyVersion,
			CertificateAuthority: istiodCA, NodesWithoutNativeSidecars: nodesWithoutNativeSidecars, InjectCNI: p.InjectCNI}
	}
	return render.Pass(mi, revisions, render.Revision{Name: active.Name, Version: active.ProxyVersion})
}
