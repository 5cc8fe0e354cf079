package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func metaWith(name string, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "shop", Annotations: annotations}
}

func ownedPod(generateName string, labels map[string]string, apiVersion, kind, owner string) *corev1.Pod {
	yes := true
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		GenerateName: generateName, Namespace: "shop", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: owner, Controller: &yes}},
	}}
}

func TestWorkloadOf(t *testing.T) {
	cases := []struct {
		name      string
		pod       *corev1.Pod
		namespace string
		want      Workload
		wantOwner string
	}{
		{
			name:      "deployment behind its replica set",
			pod:       ownedPod("web-5d8f7b9c6-", map[string]string{"pod-template-hash": "5d8f7b9c6"}, "apps/v1", "ReplicaSet", "web-5d8f7b9c6"),
			want:      Workload{Namespace: "shop", Name: "web", Kind: "Deployment", APIVersion: "apps/v1"},
			wantOwner: "kubernetes://apis/apps/v1/namespaces/shop/deployments/web",
		},
		{
			name: "bare replica set",
			pod:  ownedPod("rs-", nil, "apps/v1", "ReplicaSet", "rs"),
			want: Workload{Namespace: "shop", Name: "rs", Kind: "ReplicaSet", APIVersion: "apps/v1"},
		},
		{
			name: "argo rollout",
			pod:  ownedPod("r-6c-", map[string]string{"rollouts-pod-template-hash": "6c"}, "apps/v1", "ReplicaSet", "r-6c"),
			want: Workload{Namespace: "shop", Name: "r", Kind: "Rollout", APIVersion: "v1alpha1"},
		},
		{
			name:      "cron job behind its job",
			pod:       ownedPod("report-28931400-", nil, "batch/v1", "Job", "report-28931400"),
			want:      Workload{Namespace: "shop", Name: "report", Kind: "CronJob", APIVersion: "batch/v1"},
			wantOwner: "kubernetes://apis/batch/v1/namespaces/shop/cronjobs/report",
		},
		{
			name: "plain job",
			pod:  ownedPod("migrate-", nil, "batch/v1", "Job", "migrate"),
			want: Workload{Namespace: "shop", Name: "migrate", Kind: "Job", APIVersion: "batch/v1"},
		},
		{
			name: "openshift deployment config",
			pod:  ownedPod("app-1-", map[string]string{"deploymentconfig": "app"}, "v1", "ReplicationController", "app-1"),
			want: Workload{Namespace: "shop", Name: "app", Kind: "DeploymentConfig", APIVersion: "v1"},
		},
		{
			name:      "named pod: itself, even with an owner",
			pod:       &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "shop", OwnerReferences: ownedPod("", nil, "apps/v1", "StatefulSet", "db").OwnerReferences}},
			want:      Workload{Namespace: "shop", Name: "db-0", Kind: "Pod", APIVersion: "v1"},
			wantOwner: "kubernetes://apis/v1/namespaces/shop/pods/db-0",
		},
		{
			name:      "namespace from the request",
			pod:       &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}},
			namespace: "batch",
			want:      Workload{Namespace: "batch", Name: "p", Kind: "Pod", APIVersion: "v1"},
		},
		{
			name: "generated name without a controller",
			pod:  &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "x-", Namespace: "shop"}},
			want: Workload{Namespace: "shop", Kind: "Pod", APIVersion: "v1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := WorkloadOf(tc.pod, tc.namespace)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if tc.wantOwner != "" && got.owner() != tc.wantOwner {
				t.Errorf("owner %q, want %q", got.owner(), tc.wantOwner)
			}
		})
	}
}
