package render

import (
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

func withCNI(c meshv1alpha1.CNISpec) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) { c.Enabled = true; mi.Spec.CNI = c }
}

func mustCNI(t *testing.T, mi *meshv1alpha1.MeshInstall, v string) []client.Object {
	t.Helper()
	objs, err := CNI(mi, mustVersion(t, v))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func cniObject[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T %s among %d objects", zero, name, len(objs))
	return zero
}

// The agent's objects are the chart's, in apply order, each marked as the
// agent's and with the version it runs, for every supported minor.
func TestCNIObjects(t *testing.T) {
	for _, v := range []string{"1.30.8", "1.31.4", "1.32.0"} {
		t.Run(v, func(t *testing.T) {
			objs := mustCNI(t, meshInstall(v, withCNI(meshv1alpha1.CNISpec{})), v)
			var got []string
			for _, o := range objs {
				got = append(got, o.GetObjectKind().GroupVersionKind().Kind+" "+o.GetNamespace()+"/"+o.GetName())
				if o.GetLabels()[LabelCNI] != "true" || CNIVersionOf(o) != v || o.GetLabels()[LabelRevision] != "" {
					t.Errorf("%s labels %v: want %s=true, version %s and no revision", o.GetName(), o.GetLabels(), LabelCNI, v)
				}
			}
			want := []string{
				"ServiceAccount kube-system/istio-cni",
				"ClusterRole /istio-cni",
				"ClusterRole /istio-cni-repair-role",
				"ClusterRoleBinding /istio-cni",
				"ClusterRoleBinding /istio-cni-repair-rolebinding",
				"ConfigMap kube-system/istio-cni-config",
				"DaemonSet kube-system/istio-cni-node",
			}
			if !slices.Equal(got, want) {
				t.Errorf("objects:\n got %q\nwant %q", got, want)
			}
			ds := cniObject[*appsv1.DaemonSet](t, objs, CNIDaemonSetName)
			c := ds.Spec.Template.Spec.Containers[0]
			if c.Image != "docker.io/istio/install-cni:"+v {
				t.Errorf("image %s", c.Image)
			}
			if cm := cniObject[*corev1.ConfigMap](t, objs, CNIConfigMapName); cm.Data["CURRENT_AGENT_VERSION"] != v {
				t.Errorf("CURRENT_AGENT_VERSION %q, want %s", cm.Data["CURRENT_AGENT_VERSION"], v)
			}
		})
	}
}

// The DaemonSet runs as the chart runs it: root without privilege, the
// chart's capabilities only, on every Linux node whatever its taints, as
// system-node-critical, one node at a time, its configuration from the
// ConfigMap, the host's CNI directories mounted.
func TestCNIDaemonSetAsTheChart(t *testing.T) {
	mi := meshInstall("1.32.0", withCNI(meshv1alpha1.CNISpec{Namespace: "istio-system", BinDir: "/var/lib/cni/bin", ConfDir: "/etc/cni/conf"}))
	mi.Spec.Hub = "registry.example/istio"
	ds := cniObject[*appsv1.DaemonSet](t, mustCNI(t, mi, "1.32.0"), CNIDaemonSetName)
	if ds.Namespace != "istio-system" {
		t.Errorf("namespace %s, want spec.cni.namespace", ds.Namespace)
	}
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	sc := c.SecurityContext
	if c.Image != "registry.example/istio/install-cni:1.32.0" || *sc.Privileged || *sc.RunAsUser != 0 ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_ADMIN", "DAC_OVERRIDE"}) {
		t.Errorf("container %s security %+v", c.Image, sc)
	}
	if spec.PriorityClassName != "system-node-critical" || spec.NodeSelector[corev1.LabelOSStable] != "linux" || spec.ServiceAccountName != CNIName {
		t.Errorf("priority %q, node selector %v, service account %q", spec.PriorityClassName, spec.NodeSelector, spec.ServiceAccountName)
	}
	if len(spec.Tolerations) != 3 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %+v, want the chart's three", spec.Tolerations)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate.MaxUnavailable.IntValue() != 1 {
		t.Errorf("update strategy %+v", u)
	}
	if c.EnvFrom[0].ConfigMapRef.Name != CNIConfigMapName {
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	paths := map[string]string{}
	for _, v := range spec.Volumes {
		paths[v.Name] = v.HostPath.Path
	}
	if paths["cni-bin-dir"] != "/var/lib/cni/bin" || paths["cni-net-dir"] != "/etc/cni/conf" || paths["cni-host-procfs"] != "/proc" {
		t.Errorf("host paths %v", paths)
	}
	if ds.Spec.Template.Labels[labelSidecarInject] != "false" || ds.Spec.Template.Annotations[labelSidecarInject] != "false" {
		t.Error("the agent's pods must never be injected")
	}
}

// spec.cni.repair decides the ConfigMap's repair keys, the repair role's
// extra permission, and whether /proc is mounted.
func TestCNIRepairModes(t *testing.T) {
	for _, tc := range []struct {
		mode                     meshv1alpha1.CNIRepairMode
		enabled, label, del, fix string
		extra                    []string // the repair role's rule beyond events and reading pods
		repairRole, procMounted  bool
	}{
		{meshv1alpha1.CNIRepairPods, "true", "false", "false", "true", nil, true, true},
		{meshv1alpha1.CNIRepairLabelPods, "true", "true", "false", "false", []string{"pods/status", "patch", "update"}, true, false},
		{meshv1alpha1.CNIRepairDeletePods, "true", "false", "true", "false", []string{"pods", "delete"}, true, false},
		{meshv1alpha1.CNIRepairNone, "false", "false", "false", "false", nil, false, false},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			objs := mustCNI(t, meshInstall("1.31.4", withCNI(meshv1alpha1.CNISpec{Repair: tc.mode})), "1.31.4")
			cm := cniObject[*corev1.ConfigMap](t, objs, CNIConfigMapName)
			got := []string{cm.Data["REPAIR_ENABLED"], cm.Data["REPAIR_LABEL_PODS"], cm.Data["REPAIR_DELETE_PODS"], cm.Data["REPAIR_REPAIR_PODS"]}
			if want := []string{tc.enabled, tc.label, tc.del, tc.fix}; !slices.Equal(got, want) {
				t.Errorf("enabled/label/delete/repair = %v, want %v", got, want)
			}
			var role *rbacv1.ClusterRole
			for _, o := range objs {
				if r, ok := o.(*rbacv1.ClusterRole); ok && r.Name == cniRepairName {
					role = r
				}
			}
			if (role != nil) != tc.repairRole {
				t.Fatalf("repair role rendered: %v, want %v", role != nil, tc.repairRole)
			}
			if role != nil {
				var extra []string
				if len(role.Rules) > 2 {
					extra = append(slices.Clone(role.Rules[2].Resources), role.Rules[2].Verbs...)
				}
				if !slices.Equal(extra, tc.extra) {
					t.Errorf("repair role's extra rule %v, want %v", extra, tc.extra)
				}
			}
			ds := cniObject[*appsv1.DaemonSet](t, objs, CNIDaemonSetName)
			proc := slices.ContainsFunc(ds.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "cni-host-procfs" })
			if proc != tc.procMounted {
				t.Errorf("/proc mounted %v, want %v", proc, tc.procMounted)
			}
		})
	}
}

// Through Multus the plugin runs standalone from istio-cni.conf (Istio's
// OpenShift profile) and the agent may use the privileged SCC; by default it
// is chained. Excluded namespaces reach the ConfigMap as the chart joins them.
func TestCNIProviderAndExclusions(t *testing.T) {
	objs := mustCNI(t, meshInstall("1.32.0", withCNI(meshv1alpha1.CNISpec{})), "1.32.0")
	cm := cniObject[*corev1.ConfigMap](t, objs, CNIConfigMapName)
	if cm.Data["CHAINED_CNI_PLUGIN"] != "true" || cm.Data["EXCLUDE_NAMESPACES"] != "kube-system" || cm.Data["CNI_CONF_NAME"] != "" {
		t.Errorf("default provider: %v", cm.Data)
	}
	objs = mustCNI(t, meshInstall("1.32.0", withCNI(meshv1alpha1.CNISpec{Provider: meshv1alpha1.CNIProviderMultus,
		ExcludeNamespaces: []string{"kube-system", "openshift-monitoring"}})), "1.32.0")
	cm = cniObject[*corev1.ConfigMap](t, objs, CNIConfigMapName)
	if cm.Data["CHAINED_CNI_PLUGIN"] != "false" || cm.Data["CNI_CONF_NAME"] != "istio-cni.conf" || cm.Data["EXCLUDE_NAMESPACES"] != "kube-system,openshift-monitoring" {
		t.Errorf("multus: %v", cm.Data)
	}
	role := cniObject[*rbacv1.ClusterRole](t, objs, CNIName)
	if len(role.Rules) != 2 || role.Rules[1].APIGroups[0] != "security.openshift.io" || role.Rules[1].ResourceNames[0] != "privileged" {
		t.Errorf("multus cluster role %+v", role.Rules)
	}
}

// The user's placement replaces the chart's tolerations and adds to the
// pod; the labels the DaemonSet selects on cannot be set.
func TestCNIPlacement(t *testing.T) {
	mi := meshInstall("1.32.0", withCNI(meshv1alpha1.CNISpec{PodPlacement: meshv1alpha1.PodPlacement{
		Tolerations:       []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
		PriorityClassName: "mesh-critical",
		PodLabels:         map[string]string{"team": "net"},
	}}))
	spec := cniObject[*appsv1.DaemonSet](t, mustCNI(t, mi, "1.32.0"), CNIDaemonSetName).Spec.Template
	if len(spec.Spec.Tolerations) != 1 || spec.Spec.PriorityClassName != "mesh-critical" || spec.Labels["team"] != "net" {
		t.Errorf("placement: tolerations %+v, priority %q, labels %v", spec.Spec.Tolerations, spec.Spec.PriorityClassName, spec.Labels)
	}

	mi.Spec.CNI.PodLabels = map[string]string{"k8s-app": "other"}
	_, err := CNI(mi, mustVersion(t, "1.32.0"))
	var invalidErr *InvalidError
	if !errors.As(err, &invalidErr) || !strings.Contains(err.Error(), "spec.cni.podLabels[k8s-app]") {
		t.Errorf("got %v, want a refusal naming spec.cni.podLabels[k8s-app]", err)
	}
}

func mustVersion(t *testing.T, s string) version.Version {
	t.Helper()
	v, err := version.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The agent runs in kube-system or the control plane's namespace, nowhere
// else; a refusal names the field.
func TestCNINamespaceIsKubeSystemOrTheControlPlanes(t *testing.T) {
	for ns, ok := range map[string]bool{"": true, "kube-system": true, "istio-system": true, "shop": false} {
		mi := meshInstall("1.32.0", withCNI(meshv1alpha1.CNISpec{Namespace: ns}))
		_, err := CNI(mi, mustVersion(t, "1.32.0"))
		if _, cpErr := ControlPlane(mi, Revision{Name: DefaultRevision, Version: mustVersion(t, "1.32.0")}); (cpErr == nil) != ok {
			t.Errorf("namespace %q: control plane render error %v, want accepted %v", ns, cpErr, ok)
		}
		if ok != (err == nil) || (!ok && !strings.Contains(err.Error(), "spec.cni.namespace")) {
			t.Errorf("namespace %q: %v, want accepted %v (naming spec.cni.namespace)", ns, err, ok)
		}
	}
}
