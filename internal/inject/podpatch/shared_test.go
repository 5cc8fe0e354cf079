package podpatch

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// TestSharedEncodingsAreCopied registers shared values, then changes them
// behind the registry's back (which the injector never does): the patch
// still carries the encodings made at registration, which shows they are
// copied rather than encoded again, and only where the pod holds the
// registered value itself (a shared list whole, a shared volume under its
// own name).
func TestSharedEncodingsAreCopied(t *testing.T) {
	sc := &corev1.SecurityContext{RunAsUser: ptr.To[int64](1337)}
	mounts := []corev1.VolumeMount{{Name: "istio-envoy", MountPath: "/etc/istio/proxy"}, {Name: "istio-data", MountPath: "/var/lib/istio/data"}}
	volumes := []corev1.Volume{{Name: "istio-envoy", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}}
	Share(Shared{SecurityContexts: []*corev1.SecurityContext{sc}, VolumeMounts: [][]corev1.VolumeMount{mounts}, Volumes: [][]corev1.Volume{volumes}})
	registered := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	scJSON, mountsJSON, volumeJSON := registered(sc), registered(mounts), registered(&volumes[0])

	sc.RunAsUser = ptr.To[int64](0)
	mounts[1].MountPath = "/changed"
	volumes[0].EmptyDir.Medium = ""
	renamed := volumes[0]
	renamed.Name = "other"
	injected := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "istio-proxy", SecurityContext: sc, VolumeMounts: mounts},
			{Name: "part", VolumeMounts: mounts[:1]},
		},
		Volumes: []corev1.Volume{volumes[0], renamed},
	}}
	patch, err := CreatePatch(&corev1.Pod{}, injected)
	if err != nil {
		t.Fatal(err)
	}
	for what, want := range map[string]string{"security context": scJSON, "mounts": mountsJSON, "volume": volumeJSON} {
		if !strings.Contains(string(patch), want) {
			t.Errorf("the %s's registered encoding %s is not in the patch:\n%s", what, want, patch)
		}
	}
	// Values the registry does not hold as they are are encoded anew.
	for what, want := range map[string]string{"part of a shared list": registered(mounts[:1]), "a renamed shared volume": registered(&renamed)} {
		if !strings.Contains(string(patch), want) {
			t.Errorf("%s is not encoded as it is (%s):\n%s", what, want, patch)
		}
	}
}
