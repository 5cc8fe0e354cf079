package inject

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject/podpatch"
)

// The shared* values every injection shares are registered with the patch
// writer, which encodes each once and copies its JSON into every patch.
// A shared value added to the injector and not listed here is still
// patched right, only encoded anew each time.
func init() {
	podpatch.Share(podpatch.Shared{
		SecurityContexts: []*corev1.SecurityContext{sharedInitSC, sharedValidationSC, sharedProxySC, sharedTPROXYProxySC, sharedBindProxySC,
			sharedTPROXYBindProxySC, sharedTraceProxySC, sharedGatewaySC},
		Probes:     []*corev1.Probe{sharedStartupProbe, sharedReadinessProbe},
		Lifecycles: []*corev1.Lifecycle{sharedHoldLifecycle, sharedDrainLifecycle},
		EnvVarSources: []*corev1.EnvVarSource{srcPodName, srcPodNamespace, srcPodIP, srcServiceAccount, srcHostIP,
			srcNodeName, srcCPULimit, srcMemoryLimit},
		VolumeMounts:   [][]corev1.VolumeMount{sharedSidecarMounts, sharedGatewayMounts},
		ContainerPorts: [][]corev1.ContainerPort{sharedProxyPorts},
		Volumes:        [][]corev1.Volume{sharedSidecarVolumes, sharedGatewayVolumes},
	})
}
