package e2e

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// artifactsRoot is where failed tests keep what explains them:
// E2E_ARTIFACTS_DIR, else meshkeeper-e2e-artifacts in the temp dir. It is
// outside the checkout and outlives the run (the work dir does not).
func artifactsRoot() string {
	if d := os.Getenv("E2E_ARTIFACTS_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "meshkeeper-e2e-artifacts")
}

// saveArtifacts keeps, for a failed test, everything its cluster was doing
// in a folder the test prints: every component's whole log (cluster/), the
// logs of the processes the test ran on the host (operator and replicas,
// real istiod, OLM, cert-manager: processes/), and a dump of the objects
// involved (objects/): the MeshInstalls with status, nodes and their leases,
// and in the mesh's namespaces the Deployments, ReplicaSets, pods (with
// conditions) and events. A passing test keeps nothing.
func (e *env) saveArtifacts(t *testing.T) {
	dir := filepath.Join(artifactsRoot(), testDirName(t)+"-"+time.Now().Format("20060102-150405.000"))
	var problems []string
	note := func(what string, err error) {
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", what, err))
		}
	}
	note("cluster logs", e.cluster.SaveLogs(filepath.Join(dir, "cluster")))
	note("process logs", copyTestLogs(testDirName(t), filepath.Join(dir, "processes")))
	note("objects", e.dumpObjects(filepath.Join(dir, "objects")))
	if len(problems) > 0 {
		note("problems", os.WriteFile(filepath.Join(dir, "PROBLEMS.txt"), []byte(strings.Join(problems, "\n")+"\n"), 0o644))
	}
	t.Logf("artifacts of the failed test (cluster %s): %s", e.cluster.Name, dir)
}

// saveFailedClusterLogs keeps the component logs of a cluster that did not
// come up (which Create left in logs, under the work dir the suite removes)
// in the test's artifacts folder, and returns that folder.
func saveFailedClusterLogs(t *testing.T, logs string) string {
	dir := filepath.Join(artifactsRoot(), testDirName(t)+"-"+time.Now().Format("20060102-150405.000"))
	err := filepath.WalkDir(logs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return copyFile(path, filepath.Join(dir, "cluster", filepath.Base(path)))
	})
	if err != nil {
		return fmt.Sprintf("%s (incomplete: %v)", dir, err)
	}
	return dir
}

// testDirName is the top-level test's name as its work dirs are named.
func testDirName(t *testing.T) string {
	return strings.ReplaceAll(t.Name(), "/", "_")
}

// copyTestLogs copies every *.log under the test's work dirs (workDir/<name>,
// and the siblings named <name>-… or <name>_…, as replicas' are) to dst,
// keeping their relative paths.
func copyTestLogs(name, dst string) error {
	entries, err := os.ReadDir(workDir)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		n := entry.Name()
		if !entry.IsDir() || (n != name && !strings.HasPrefix(n, name+"-") && !strings.HasPrefix(n, name+"_")) {
			continue
		}
		err := filepath.WalkDir(filepath.Join(workDir, n), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
				return err
			}
			rel, err := filepath.Rel(workDir, path)
			if err != nil {
				return err
			}
			return copyFile(path, filepath.Join(dst, rel))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dumpObjects writes the objects a stalled install or upgrade depends on as
// YAML, and summary.txt with one line per Deployment and pod.
func (e *env) dumpObjects(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var mis meshv1alpha1.MeshInstallList
	// Without the CRD (a test that never installed it) there is nothing to list.
	_ = e.k8s.List(ctx, &mis)
	var errs []string
	save := func(file string, list client.ObjectList, opts ...client.ListOption) {
		if err := e.k8s.List(ctx, list, opts...); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", file, err))
			return
		}
		data, err := yaml.Marshal(list)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, file), data, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", file, err))
		}
	}
	if len(mis.Items) > 0 {
		save("meshinstalls.yaml", &meshv1alpha1.MeshInstallList{})
	}
	save("nodes.yaml", &corev1.NodeList{})
	save("node-leases.yaml", &coordinationv1.LeaseList{}, client.InNamespace("kube-node-lease"))
	save("kube-system-leases.yaml", &coordinationv1.LeaseList{}, client.InNamespace("kube-system"))
	// MeshInstalls are cluster-scoped: their events land in default.
	save("default-events.yaml", &corev1.EventList{}, client.InNamespace("default"))
	namespaces := meshNamespaces(mis.Items)
	for _, ns := range namespaces {
		save(ns+"-deployments.yaml", &appsv1.DeploymentList{}, client.InNamespace(ns))
		save(ns+"-replicasets.yaml", &appsv1.ReplicaSetList{}, client.InNamespace(ns))
		save(ns+"-pods.yaml", &corev1.PodList{}, client.InNamespace(ns))
		save(ns+"-events.yaml", &corev1.EventList{}, client.InNamespace(ns))
	}
	summary, err := os.Create(filepath.Join(dir, "summary.txt"))
	if err != nil {
		return err
	}
	e.writeClusterState(summary, namespaces)
	if err := summary.Close(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// meshNamespaces are the namespaces a MeshInstall runs things in: its
// control plane's and its gateways' (istio-system when there is none).
func meshNamespaces(mis []meshv1alpha1.MeshInstall) []string {
	set := []string{"istio-system"}
	for _, mi := range mis {
		cp := mi.Spec.Namespace
		if cp == "" {
			cp = "istio-system"
		}
		set = append(set, cp)
		for _, gw := range mi.Spec.Gateways {
			if gw.Namespace != "" {
				set = append(set, gw.Namespace)
			}
		}
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// writeClusterState writes one line per Deployment, ReplicaSet and pod of
// the namespaces, and per node: what a stalled rollout looks like at a glance.
func (e *env) writeClusterState(w io.Writer, namespaces []string) {
	ctx := context.Background()
	var nodes corev1.NodeList
	if err := e.k8s.List(ctx, &nodes); err == nil {
		for _, n := range nodes.Items {
			fmt.Fprintf(w, "node %s: unschedulable %t, taints %v, conditions %s\n", n.Name, n.Spec.Unschedulable, n.Spec.Taints, nodeConditions(n.Status.Conditions))
		}
	}
	for _, ns := range namespaces {
		var deployments appsv1.DeploymentList
		if err := e.k8s.List(ctx, &deployments, client.InNamespace(ns)); err == nil {
			for _, d := range deployments.Items {
				fmt.Fprintf(w, "deployment %s/%s: generation %d observed %d, %d/%d updated, %d ready, %d available, conditions %+v\n",
					ns, d.Name, d.Generation, d.Status.ObservedGeneration, d.Status.UpdatedReplicas, d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.Conditions)
			}
		}
		var sets appsv1.ReplicaSetList
		if err := e.k8s.List(ctx, &sets, client.InNamespace(ns)); err == nil {
			for _, rs := range sets.Items {
				fmt.Fprintf(w, "replicaset %s/%s: %d desired, %d ready, %d available, conditions %+v\n",
					ns, rs.Name, ptrValue(rs.Spec.Replicas), rs.Status.ReadyReplicas, rs.Status.AvailableReplicas, rs.Status.Conditions)
			}
		}
		var pods corev1.PodList
		if err := e.k8s.List(ctx, &pods, client.InNamespace(ns)); err == nil {
			for _, p := range pods.Items {
				fmt.Fprintf(w, "pod %s/%s: %s on %q, created %s, conditions %s\n", ns, p.Name, p.Status.Phase, p.Spec.NodeName,
					p.CreationTimestamp.UTC().Format(time.TimeOnly), podConditions(p.Status.Conditions))
			}
		}
	}
}

func nodeConditions(cs []corev1.NodeCondition) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s=%s (%s, %s)", c.Type, c.Status, c.Reason, c.LastTransitionTime.UTC().Format(time.TimeOnly)))
	}
	return strings.Join(out, ", ")
}

func podConditions(cs []corev1.PodCondition) string {
	var out []string
	for _, c := range cs {
		s := fmt.Sprintf("%s=%s at %s", c.Type, c.Status, c.LastTransitionTime.UTC().Format(time.TimeOnly))
		if c.Reason != "" || c.Message != "" {
			s += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
