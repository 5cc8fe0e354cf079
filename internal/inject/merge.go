package inject

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/utils/ptr"
)

// autoImage in a user-supplied istio-proxy means "the injected image".
const autoImage = "auto"

// merge adds the rendered template to the pod the way Istio's strategic
// merge does: template labels and annotations win, template containers and
// volumes come first, and a container the user supplied under a template
// container's name (istio-proxy, istio-init) is merged over the injected one.
func (in *injection) merge(t *rendered) error {
	pod := in.pod
	if pod.Labels == nil {
		pod.Labels = make(map[string]string, len(t.labels)+1)
	}
	for _, kv := range t.labels {
		pod.Labels[kv.key] = kv.value
	}
	if pod.Annotations == nil {
		pod.Annotations = make(map[string]string, len(t.annotations)+8)
	}
	for _, kv := range t.annotations {
		pod.Annotations[kv.key] = kv.value
	}

	var overrides podOverrides
	var userProxy *corev1.Container
	for i := range t.containers {
		user := in.takeUserContainer(t.containers[i].Name)
		if user == nil {
			continue
		}
		if err := mergeUserContainer(&t.containers[i], user); err != nil {
			return err
		}
		overrides.Containers = append(overrides.Containers, overlayOf(user))
		if user.Name == ProxyContainerName {
			userProxy = user
		}
	}
	for i := range t.initContainers {
		user := in.takeUserContainer(t.initContainers[i].Name)
		if user == nil {
			continue
		}
		if err := mergeUserContainer(&t.initContainers[i], user); err != nil {
			return err
		}
		overrides.InitContainers = append(overrides.InitContainers, overlayOf(user))
		if user.Name == ProxyContainerName {
			userProxy = user
		}
	}
	if t.containers != nil {
		pod.Spec.Containers = append(t.containers, pod.Spec.Containers...)
	}
	if t.initContainers != nil {
		pod.Spec.InitContainers = append(t.initContainers, pod.Spec.InitContainers...)
	}
	pod.Spec.Volumes = mergeVolumes(t.volumes, pod.Spec.Volumes)
	pod.Spec.ImagePullSecrets = mergePullSecrets(t.imagePullSecrets, pod.Spec.ImagePullSecrets)
	if t.sysctls != nil {
		if pod.Spec.SecurityContext == nil {
			pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		pod.Spec.SecurityContext.Sysctls = t.sysctls
	}

	if len(overrides.Containers)+len(overrides.InitContainers) > 0 {
		js, err := json.Marshal(overrides)
		if err != nil {
			return err
		}
		pod.Annotations[annOverrides] = string(js)
	}
	if userProxy != nil {
		in.adjustInitUser(userProxy)
	}
	return nil
}

// podOverrides is the proxy.istio.io/overrides annotation: the containers the
// user supplied under injected names, kept to re-apply on re-injection.
type podOverrides struct {
	Containers     []corev1.Container `json:"containers,omitempty"`
	InitContainers []corev1.Container `json:"initContainers,omitempty"`
}

// takeUserContainer removes and returns the pod's own container of the given
// name: for an injected init container it may be a regular container (the
// native sidecar case), and meshkeeper also finds an injected regular
// container among the init containers, where a pod could not keep it.
func (in *injection) takeUserContainer(name string) *corev1.Container {
	spec := &in.pod.Spec
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			c := spec.Containers[i]
			spec.Containers = append(spec.Containers[:i:i], spec.Containers[i+1:]...)
			return &c
		}
	}
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == name {
			c := spec.InitContainers[i]
			spec.InitContainers = append(spec.InitContainers[:i:i], spec.InitContainers[i+1:]...)
			return &c
		}
	}
	return nil
}

// overlayOf is the user's container as re-applied: image "auto" keeps the
// injected image.
func overlayOf(user *corev1.Container) corev1.Container {
	o := *user
	if o.Image == autoImage {
		o.Image = ""
	}
	return o
}

// mergeUserContainer merges the user's container over the injected one with
// Kubernetes' strategic merge, twice as Istio's injector does (the template
// over the user's container, then the user's container over the result):
// fields the user sets win, lists merged by key (env, ports, mounts) keep the
// injected entries first.
func mergeUserContainer(injected *corev1.Container, user *corev1.Container) error {
	field := "spec.containers[" + user.Name + "]"
	userJSON, err := json.Marshal(user)
	if err != nil {
		return err
	}
	injectedJSON, err := json.Marshal(injected)
	if err != nil {
		return err
	}
	merged, err := strategicpatch.StrategicMergePatch(userJSON, injectedJSON, corev1.Container{})
	if err != nil {
		return &InvalidError{Field: field, Reason: fmt.Sprintf("cannot merge the injected container: %v", err)}
	}
	overlay := overlayOf(user)
	overlayJSON, err := json.Marshal(&overlay)
	if err != nil {
		return err
	}
	if merged, err = strategicpatch.StrategicMergePatch(merged, overlayJSON, corev1.Container{}); err != nil {
		return &InvalidError{Field: field, Reason: fmt.Sprintf("cannot merge over the injected container: %v", err)}
	}
	var out corev1.Container
	if err := json.Unmarshal(merged, &out); err != nil {
		return &InvalidError{Field: field, Reason: fmt.Sprintf("merged container is invalid: %v", err)}
	}
	*injected = out
	return nil
}

// adjustInitUser follows a user-supplied istio-proxy's runAsUser: istio-init
// (or istio-validation) excludes that user's traffic instead of 1337, and
// istio-validation runs as that user and group; in TPROXY mode the proxy
// must still run as root.
func (in *injection) adjustInitUser(user *corev1.Container) {
	sc := user.SecurityContext
	if sc == nil || (sc.RunAsUser == nil && sc.RunAsGroup == nil) {
		return
	}
	init := findContainer(in.pod.Spec.InitContainers, in.d.initName)
	if init == nil {
		return
	}
	tproxy := in.mode == "TPROXY"
	if tproxy && sc.RunAsUser != nil {
		if proxy := in.proxyContainer(); proxy != nil && proxy.SecurityContext != nil {
			sc := *proxy.SecurityContext // may be shared: copy before changing
			sc.RunAsUser = ptr.To(int64(0))
			proxy.SecurityContext = &sc
		}
	}
	if !tproxy && init.Name == ValidationContainerName {
		var vsc corev1.SecurityContext
		if init.SecurityContext != nil {
			vsc = *init.SecurityContext // shared: copy before changing
		}
		if sc.RunAsUser != nil {
			vsc.RunAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			vsc.RunAsGroup = sc.RunAsGroup
		}
		init.SecurityContext = &vsc
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		return
	}
	for i := 0; i+1 < len(init.Args); i++ {
		if init.Args[i] == "-u" {
			init.Args[i+1] = strconv.FormatInt(*sc.RunAsUser, 10)
			return
		}
	}
}

// mergeVolumes puts the template's volumes first; a pod volume of the same
// name as an injected one is replaced by it.
func mergeVolumes(injected, own []corev1.Volume) []corev1.Volume {
	if len(own) == 0 {
		return injected // may be shared; nothing changes a pod's volumes in place
	}
	out := make([]corev1.Volume, 0, len(injected)+len(own))
	out = append(out, injected...)
	for i := range own {
		if !hasVolume(injected, own[i].Name) {
			out = append(out, own[i])
		}
	}
	return out
}

// mergePullSecrets puts the template's pull secrets first, as Istio's
// strategic merge does; the pod's own follow unless named already.
func mergePullSecrets(injected, own []corev1.LocalObjectReference) []corev1.LocalObjectReference {
	if len(injected) == 0 {
		return own
	}
	if len(own) == 0 {
		return injected // shared; nothing changes a pod's pull secrets in place
	}
	out := append(make([]corev1.LocalObjectReference, 0, len(injected)+len(own)), injected...)
	for _, s := range own {
		if !slices.Contains(injected, s) {
			out = append(out, s)
		}
	}
	return out
}

// hasVolume indexes rather than ranging by value: a Volume is a large struct.
func hasVolume(vols []corev1.Volume, name string) bool {
	for i := range vols {
		if vols[i].Name == name {
			return true
		}
	}
	return false
}

// overlay lays template b over template a, as Istio's injector lays each
// of several templates over the pod in turn: b's labels and annotations
// win, and the containers, init containers and volumes are merged with
// Kubernetes' strategic merge (by name; b's fields win, lists inside merged
// by key, b's new entries first). Neither a nor b is modified (they may
// hold shared parts).
func overlay(a, b *rendered) (*rendered, error) {
	out := &rendered{
		labels:      overlayKeyValues(a.labels, b.labels),
		annotations: overlayKeyValues(a.annotations, b.annotations),
		sysctls:     a.sysctls,
	}
	if b.sysctls != nil {
		out.sysctls = b.sysctls
	}
	base := corev1.PodSpec{Containers: a.containers, InitContainers: a.initContainers, Volumes: a.volumes}
	// A container b injects as an init container (a native sidecar) that a
	// injects as a regular one moves first, as Istio moves it in the pod.
	for i := range b.initContainers {
		if j := slices.IndexFunc(base.Containers, func(c corev1.Container) bool { return c.Name == b.initContainers[i].Name }); j >= 0 {
			base.InitContainers = append(slices.Clone(base.InitContainers), base.Containers[j])
			base.Containers = slices.Delete(slices.Clone(base.Containers), j, j+1)
		}
	}
	baseJSON, err := json.Marshal(&base)
	if err != nil {
		return nil, err
	}
	overJSON, err := json.Marshal(&corev1.PodSpec{Containers: b.containers, InitContainers: b.initContainers, Volumes: b.volumes})
	if err != nil {
		return nil, err
	}
	merged, err := strategicpatch.StrategicMergePatch(baseJSON, overJSON, corev1.PodSpec{})
	if err != nil {
		return nil, fmt.Errorf("overlaying the injection templates: %w", err)
	}
	var spec corev1.PodSpec
	if err := json.Unmarshal(merged, &spec); err != nil {
		return nil, fmt.Errorf("overlaying the injection templates: %w", err)
	}
	out.containers, out.initContainers, out.volumes = spec.Containers, spec.InitContainers, spec.Volumes
	return out, nil
}

func overlayKeyValues(a, b []keyValue) []keyValue {
	out := slices.Clone(a)
	for _, kv := range b {
		if i := slices.IndexFunc(out, func(o keyValue) bool { return o.key == kv.key }); i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}
