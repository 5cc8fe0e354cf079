package meshinstall

import (
	"encoding/json"
	"fmt"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// The measured cost of each cached object (TestCachedBytesPerObject) gives
// the operator's memory limit in config/manager/manager.yaml.

// appPodTemplate is an ordinary application's pod template, injected.
func appPodTemplate(labels map[string]string) corev1.PodTemplateSpec {
	env := make([]corev1.EnvVar, 20)
	for i := range env {
		env[i] = corev1.EnvVar{Name: fmt.Sprintf("APP_SETTING_%d", i), Value: "some-value-of-a-setting"}
	}
	container := func(name string) corev1.Container {
		return corev1.Container{
			Name: name, Image: "registry.example.com/team/" + name + ":1.2.3", Env: env,
			Args:  []string{"--port=8080", "--log-level=info", "--config=/etc/app/config.yaml"},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}},
		}
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
			"prometheus.io/scrape": "true", "prometheus.io/port": "15020", "kubectl.kubernetes.io/default-container": "app",
			meshv1alpha1.AnnotationRestartedFor: "1-32-0/5d41402abc4b2a76", meshv1alpha1.AnnotationRestartedAt: "2026-12-07T12:00:00Z",
		}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{container("app"), container("istio-proxy")}, InitContainers: []corev1.Container{container("istio-init")},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}},
		},
	}
}

func appLabels() map[string]string {
	return map[string]string{
		"app": "checkout", "version": "v3", "app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop",
		"app.kubernetes.io/component": "api", "team": "payments", "pod-template-hash": "5d4f8b7c9",
		"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "checkout",
		"service.istio.io/canonical-revision": "v3", inject.LabelInjectedBy: "1-32-0",
	}
}

// hugeLabels is what a tenant who may create a workload can attach: 1 MiB
// of labels (the API server's request limit is 3 MiB).
func hugeLabels() map[string]string {
	l := appLabels()
	for i := range 16 << 10 {
		l[fmt.Sprintf("tenant.example.com/l%05d", i)] = strings.Repeat("x", 32)
	}
	return l
}

// cniAppPod is appPod scheduled, injected for the istio-cni node agent
// (istio-validation instead of istio-init): the cache keeps its node and
// that init container's name.
func cniAppPod() *corev1.Pod {
	p := appPod(appLabels())
	p.Spec.NodeName = "ip-10-0-112-34.eu-west-1.compute.internal"
	p.Spec.InitContainers[0].Name = inject.ValidationContainerName
	return p
}

func appPod(labels map[string]string) *corev1.Pod {
	t := appPodTemplate(labels)
	t.Annotations["sidecar.istio.io/status"] = `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"1-32-0"}`
	t.Annotations[inject.AnnotationRevision] = "1-32-0"
	t.Annotations[inject.AnnotationConfigHash] = "5d41402abc4b2a76"
	t.Annotations[inject.AnnotationProxyVersion] = "1.32.0"
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-5d4f8b7c9-x7k2p", GenerateName: "checkout-5d4f8b7c9-", Namespace: "shop",
			UID: "4b1e7c9a-3f2d-4e8b-9c1a-7d6e5f4a3b2c", ResourceVersion: "123456789", Labels: t.Labels, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "checkout-5d4f8b7c9",
				UID: "9c1a7d6e-5f4a-3b2c-4b1e-7c9a3f2d4e8b", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: t.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.3.17", HostIP: "172.18.0.4",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "registry.example.com/team/app:1.2.3",
				ImageID:     "registry.example.com/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				ContainerID: "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}},
	}
}

func appDeployment(labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop", UID: "7c9a3f2d-4e8b-9c1a-7d6e-5f4a3b2c4b1e",
			ResourceVersion: "123456789", Generation: 7, Labels: labels,
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "7", meshv1alpha1.AnnotationRollout: "enabled"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}},
			Template: appPodTemplate(labels)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 7, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", Message: `ReplicaSet "checkout-5d4f8b7c9" has successfully progressed.`}}},
	}
}

// forgedOwn is a Deployment labelled as meshkeeper's, by anyone who may create one.
func forgedOwn(labels map[string]string) *appsv1.Deployment {
	d := appDeployment(labels)
	d.Labels[render.LabelManagedBy] = render.ManagedBy
	return d
}

func appStatefulSet() *appsv1.StatefulSet {
	d := appDeployment(appLabels())
	return &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"}, ObjectMeta: d.ObjectMeta,
		Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 7, Replicas: 3, ReadyReplicas: 3, UpdatedReplicas: 3,
			CurrentRevision: "checkout-5d4f8b7c9", UpdateRevision: "checkout-5d4f8b7c9"}}
}

func appDaemonSet() *appsv1.DaemonSet {
	d := appDeployment(appLabels())
	return &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}, ObjectMeta: d.ObjectMeta,
		Spec:   appsv1.DaemonSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 7, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 3, NumberReady: 3}}
}

func appJob() *batchv1.Job {
	d := appDeployment(appLabels())
	return &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: d.ObjectMeta,
		Spec: batchv1.JobSpec{Completions: ptr.To[int32](1), Template: d.Spec.Template},
		Status: batchv1.JobStatus{Active: 1, StartTime: &metav1.Time{}, Ready: ptr.To[int32](1),
			Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods"}}}}
}

func appCronJob() *batchv1.CronJob {
	j := appJob()
	return &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}, ObjectMeta: j.ObjectMeta,
		Spec:   batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: j.Spec}},
		Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Kind: "Job", Namespace: "shop", Name: "checkout-29412345"}}}}
}

// boundLabels are a template's labels just within maxCachedLabelBytes:
// the most a user's workload keeps of them.
func boundLabels() map[string]string {
	l := appLabels()
	size := 0
	for k, v := range l {
		size += len(k) + len(v)
	}
	for i := 0; ; i++ {
		k := fmt.Sprintf("tenant.example.com/l%05d", i)
		if size+len(k)+10 > maxCachedLabelBytes {
			break
		}
		l[k] = strings.Repeat("x", 10)
		size += len(k) + 10
	}
	return l
}

func appPDB() *policyv1.PodDisruptionBudget {
	d := appDeployment(appLabels())
	return &policyv1.PodDisruptionBudget{TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"}, ObjectMeta: d.ObjectMeta,
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%")), Selector: d.Spec.Selector},
		Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 7, DisruptionsAllowed: 1, CurrentHealthy: 3, DesiredHealthy: 2, ExpectedPods: 3,
			DisruptedPods: map[string]metav1.Time{"checkout-5d4f8b7c9-x7k2p": {}},
			Conditions:    []metav1.Condition{{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue, Reason: policyv1.SufficientPodsReason}}}}
}

func hugeSelector() *policyv1.PodDisruptionBudget {
	p := appPDB()
	p.Spec.Selector = &metav1.LabelSelector{MatchLabels: hugeLabels()}
	return p
}

func node() *corev1.Node {
	images := make([]corev1.ContainerImage, 50)
	for i := range images {
		images[i] = corev1.ContainerImage{Names: []string{fmt.Sprintf("registry.example.com/team/image-%d@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", i)}, SizeBytes: 123456789}
	}
	return &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: "worker-17", UID: "1a7d6e5f-4a3b-2c4b-1e7c-9a3f2d4e8b9c", ResourceVersion: "123456789",
			Labels: map[string]string{"kubernetes.io/hostname": "worker-17", "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m6i.2xlarge", "topology.kubernetes.io/zone": "eu-west-1a"}},
		Status: corev1.NodeStatus{Images: images, NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.34.2", OSImage: "Ubuntu 24.04", ContainerRuntimeVersion: "containerd://2.1.0"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.18.0.4"}, {Type: corev1.NodeHostName, Address: "worker-17"}}}}
}

func namespaceMetadata() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "2c4b1e7c-9a3f-2d4e-8b9c-1a7d6e5f4a3b", ResourceVersion: "123456789",
			Labels:      map[string]string{"kubernetes.io/metadata.name": "shop", "istio.io/rev": "1-32-0", "team": "payments"},
			Annotations: map[string]string{"scheduler.alpha.kubernetes.io/node-selector": "pool=apps"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:istio.io/rev":{},"f:team":{}}}}`)}}}}}
}

// retainedBytes is the heap n decoded copies of obj hold once trim (nil:
// none) has run on each: what an informer keeps per object, less its
// store's index entry.
func retainedBytes(t *testing.T, obj client.Object, trim func(any) (any, error), n int) int {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(obj).Elem()
	kept := make([]any, n)
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.GC() // sync.Pool's buffers (json's among them) outlive one collection
	goruntime.ReadMemStats(&before)
	for i := range kept {
		o := reflect.New(typ).Interface()
		if err := json.Unmarshal(raw, o); err != nil {
			t.Fatal(err)
		}
		if trim != nil {
			if o, err = trim(o); err != nil {
				t.Fatal(err)
			}
		}
		kept[i] = o
	}
	goruntime.GC()
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	goruntime.KeepAlive(kept)
	goruntime.KeepAlive(raw)
	return int(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
}

// cacheBudget is the most a cached object of each kind may cost, trimmed:
// the figures the memory limit is derived from.
var cacheBudget = map[string]int{
	"Pod":                                  3 << 10,
	"Pod, 1 MiB of labels":                 3 << 10,
	"Pod on a node, with istio-validation": 3 << 10,
	"Deployment":                           4 << 10,
	"Deployment, forged label":             4 << 10,
	"Deployment, labels at the bound":      12 << 10,
	"StatefulSet":                          4 << 10,
	"DaemonSet":                            4 << 10,
	"PodDisruptionBudget":                  2 << 10,
	"PodDisruptionBudget, 1 MiB selector":  2 << 10,
	"CronJob":                              2 << 10,
	"Job":                                  2 << 10,
	"Node":                                 1 << 10,
	"Namespace":                            2 << 10,
}

func TestCachedBytesPerObject(t *testing.T) {
	for _, c := range []struct {
		kind string
		obj  client.Object
		trim func(any) (any, error)
		n    int
	}{
		{"Pod", appPod(appLabels()), TrimPod, 2000},
		{"Pod, 1 MiB of labels", appPod(hugeLabels()), TrimPod, 20},
		{"Pod on a node, with istio-validation", cniAppPod(), TrimPod, 2000},
		{"Deployment", appDeployment(appLabels()), TrimWorkload, 2000},
		{"Deployment, forged label", forgedOwn(hugeLabels()), TrimWorkload, 20},
		{"Deployment, labels at the bound", appDeployment(boundLabels()), TrimWorkload, 2000},
		{"StatefulSet", appStatefulSet(), TrimWorkload, 2000},
		{"DaemonSet", appDaemonSet(), TrimWorkload, 2000},
		{"CronJob", appCronJob(), TrimJob, 2000},
		{"Job", appJob(), TrimJob, 2000},
		{"PodDisruptionBudget", appPDB(), TrimBudget, 2000},
		{"PodDisruptionBudget, 1 MiB selector", hugeSelector(), TrimBudget, 20},
		{"Node", node(), TrimNode, 2000},
		// Metadata only, as the inventory watches them; whole but for managed
		// fields (only cluster-wide roles may label a namespace).
		{"Namespace", namespaceMetadata(), cache.TransformStripManagedFields(), 2000},
	} {
		t.Run(c.kind, func(t *testing.T) {
			whole := retainedBytes(t, c.obj, nil, c.n)
			trimmed := retainedBytes(t, c.obj, c.trim, c.n)
			t.Logf("%-26s %8d bytes whole, %6d bytes cached", c.kind, whole, trimmed)
			if trimmed > cacheBudget[c.kind] {
				t.Errorf("a cached %s costs %d bytes, budget %d", c.kind, trimmed, cacheBudget[c.kind])
			}
		})
	}
}

func TestTrimPodKeepsWhatInjectionSelects(t *testing.T) {
	mwc := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", OperatorNamespace: "meshkeeper-system", Revisions: []string{"1-32-0"}, Tags: []string{"prod"}})
	for _, w := range mwc.Webhooks {
		for _, r := range w.ObjectSelector.MatchExpressions {
			if !slices.Contains(keptPodLabels, r.Key) {
				t.Errorf("webhook %s selects pods by label %s, which TrimPod drops", w.Name, r.Key)
			}
		}
		for k := range w.ObjectSelector.MatchLabels {
			t.Errorf("webhook %s selects pods by label %s: keep it in keptPodLabels", w.Name, k)
		}
	}
}
