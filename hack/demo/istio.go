package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// realIstioStep runs Istio's own istiod (built by make istio) on the host for
// the active revision, from the Deployment meshkeeper rendered, and one
// injected pod's proxy agent against it: the proof, in one line, that what
// meshkeeper installs and injects works with real Istio. istiod keeps
// running (demo down stops it); its pid is recorded by onIstiod.
func realIstioStep(ctx context.Context, cl func() client.Client, rc func() *rest.Config, kubeconfig func() string, dir string, onIstiod func(pid int) error) step {
	return step{"Run real istiod for the active revision and one injected pod's proxy agent against it", func() error {
		bin, err := localcluster.IstioBinFromEnv()
		if err != nil {
			return err
		}
		mi := &meshv1alpha1.MeshInstall{}
		if err := cl().Get(ctx, client.ObjectKey{Name: "default"}, mi); err != nil {
			return err
		}
		rev := mi.Status.ActiveRevision
		key := client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(rev)}
		istiod, err := localcluster.StartIstiod(ctx, cl(), kubeconfig(), bin, key, filepath.Join(dir, "istiod"))
		if err != nil {
			return err
		}
		if err := onIstiod(istiod.PID()); err != nil {
			istiod.Stop()
			return err
		}
		if err := istiod.WaitReady(ctx, 2*time.Minute); err != nil {
			return err
		}
		fmt.Printf("  istiod of %s (pid %d) ready: http://%s/ready, XDS and CA on %s, log %s\n",
			key, istiod.PID(), istiod.HTTPAddr, istiod.XDSAddr, filepath.Join(dir, "istiod", "istiod.log"))

		var pods corev1.PodList
		if err := cl().List(ctx, &pods, client.InNamespace("demo"), client.MatchingLabels{"app": demoApps[0]}); err != nil {
			return err
		}
		var pod *corev1.Pod
		for i := range pods.Items {
			if p := &pods.Items[i]; p.DeletionTimestamp == nil && ready(p) && p.Annotations[inject.AnnotationRevision] == rev {
				pod = p
			}
		}
		if pod == nil {
			return fmt.Errorf("no ready pod of %s injected by %s", demoApps[0], rev)
		}
		cs, err := kubernetes.NewForConfig(rc())
		if err != nil {
			return err
		}
		start := time.Now()
		proxy, err := localcluster.StartProxy(ctx, cs, bin, pod, []*localcluster.Istiod{istiod}, filepath.Join(dir, "proxies"))
		if err != nil {
			return err
		}
		defer proxy.Stop()
		id, err := proxy.Identity()
		if err != nil {
			return err
		}
		fmt.Printf("  ✓ pod demo/%s (injected by %s): its proxy agent got certificate %s from %s in %s\n",
			pod.Name, rev, id, istiod.Host, time.Since(start).Round(time.Millisecond))
		return nil
	}}
}

// istioHints are the closing hints for Istio's own istioctl, which make demo
// does not build (make istio does).
func istioHints() string {
	bin := os.Getenv("MESHKEEPER_ISTIO_BIN")
	if bin == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(bin, "istioctl")); err != nil {
		return "  make istio                               # builds Istio's istioctl, to look at the mesh with Istio's own tool\n"
	}
	return fmt.Sprintf(`  %[1]s/istioctl version --remote=false   # the Istio the demo's istiod is built from
  %[1]s/istioctl analyze -n demo            # Istio's own checks of the mesh config in the cluster
`, bin)
}
