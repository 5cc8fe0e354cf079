package inject

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// Volumes the templates add.
const (
	volWorkloadSocket   = "workload-socket"
	volCredentialSocket = "credential-socket"
	volWorkloadCerts    = "workload-certs"
	volBootstrap        = "custom-bootstrap-volume"
	volEnvoy            = "istio-envoy"
	volData             = "istio-data"
	volPodInfo          = "istio-podinfo"
	volToken            = "istio-token"
	volCACert           = "istiod-ca-cert"
	volCRL              = "istio-ca-crl"
)

// volumes returns the template's volumes and istio-proxy's mounts. The
// sidecar template also mounts the CA's CRL and the pod's
// sidecar.istio.io/userVolume(Mount)s.
//
// Most pods get the same volumes: those are built once and shared.
func (in *injection) volumes(sidecar bool) ([]corev1.Volume, []corev1.VolumeMount, error) {
	ann := in.pod.Annotations
	bootstrap, hasBootstrap := ann[annBootstrapOverride]
	_, hasUserVolumes := ann[annUserVolume]
	_, hasUserMounts := ann[annUserVolumeMount]
	switch {
	case hasBootstrap:
	case !sidecar:
		return sharedGatewayVolumes, sharedGatewayMounts, nil
	case !hasUserVolumes && !hasUserMounts:
		return sharedSidecarVolumes, sharedSidecarMounts, nil
	}
	var userVols []corev1.Volume
	var userMounts []corev1.VolumeMount
	if sidecar {
		var err error
		if v, ok := ann[annUserVolume]; ok {
			if userVols, err = parseUserVolumes(v); err != nil {
				return nil, nil, invalidAnnotation(annUserVolume, v, err)
			}
		}
		if v, ok := ann[annUserVolumeMount]; ok {
			if userMounts, err = parseUserVolumeMounts(v); err != nil {
				return nil, nil, invalidAnnotation(annUserVolumeMount, v, err)
			}
		}
	}

	vols, mounts := buildVolumes(sidecar, bootstrap, hasBootstrap, userVols, userMounts)
	return vols, mounts, nil
}

// Volumes and mounts shared by the pods without bootstrap override or user
// volumes. They must not be modified.
var (
	sharedSidecarVolumes, sharedSidecarMounts = buildVolumes(true, "", false, nil, nil)
	sharedGatewayVolumes, sharedGatewayMounts = buildVolumes(false, "", false, nil, nil)
)

// buildVolumes builds a template's volumes and istio-proxy's mounts.
func buildVolumes(sidecar bool, bootstrap string, hasBootstrap bool, userVols []corev1.Volume, userMounts []corev1.VolumeMount) ([]corev1.Volume, []corev1.VolumeMount) {
	mounts := make([]corev1.VolumeMount, 0, 11+len(userMounts))
	mounts = append(mounts,
		corev1.VolumeMount{Name: volWorkloadSocket, MountPath: "/var/run/secrets/workload-spiffe-uds"},
		corev1.VolumeMount{Name: volCredentialSocket, MountPath: "/var/run/secrets/credential-uds"},
		corev1.VolumeMount{Name: volWorkloadCerts, MountPath: "/var/run/secrets/workload-spiffe-credentials"},
		corev1.VolumeMount{Name: volCACert, MountPath: "/var/run/secrets/istio"},
	)
	if sidecar {
		mounts = append(mounts, corev1.VolumeMount{Name: volCRL, MountPath: "/var/run/secrets/istio/crl"})
	}
	mounts = append(mounts, corev1.VolumeMount{Name: volData, MountPath: "/var/lib/istio/data"})
	if hasBootstrap {
		mounts = append(mounts, corev1.VolumeMount{Name: volBootstrap, MountPath: "/etc/istio/custom-bootstrap"})
	}
	mounts = append(mounts,
		corev1.VolumeMount{Name: volEnvoy, MountPath: "/etc/istio/proxy"},
		corev1.VolumeMount{Name: volToken, MountPath: "/var/run/secrets/tokens"},
		corev1.VolumeMount{Name: volPodInfo, MountPath: "/etc/istio/pod"},
	)
	mounts = append(mounts, userMounts...)

	vols := make([]corev1.Volume, 0, 11+len(userVols))
	vols = append(vols,
		emptyDir(volWorkloadSocket, ""),
		emptyDir(volCredentialSocket, ""),
		emptyDir(volWorkloadCerts, ""),
	)
	if hasBootstrap {
		vols = append(vols, corev1.Volume{Name: volBootstrap, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: bootstrap}},
		}})
	}
	vols = append(vols,
		emptyDir(volEnvoy, corev1.StorageMediumMemory),
		emptyDir(volData, ""),
		corev1.Volume{Name: volPodInfo, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			},
		}}},
		corev1.Volume{Name: volToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Path: "istio-token", ExpirationSeconds: ptr.To(int64(43200)), Audience: "istio-ca",
			}}},
		}}},
		corev1.Volume{Name: volCACert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"},
		}}},
	)
	if sidecar {
		vols = append(vols, corev1.Volume{Name: volCRL, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-crl"},
			Optional:             ptr.To(true),
		}}})
	}
	vols = append(vols, userVols...)
	return vols[:len(vols):len(vols)], mounts[:len(mounts):len(mounts)]
}

// emptyDir is an emptyDir volume. Istio's template leaves some without a
// source, which the API server defaults to an emptyDir; meshkeeper writes
// the emptyDir out.
func emptyDir(name string, medium corev1.StorageMedium) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: medium}}}
}

// parseUserVolumes reads sidecar.istio.io/userVolume: a JSON object of
// volume name to volume, added in name order.
func parseUserVolumes(value string) ([]corev1.Volume, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		return nil, errors.New("must be a JSON object of volume name to volume")
	}
	vols := make([]corev1.Volume, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		var v corev1.Volume
		if err := json.Unmarshal(m[name], &v); err != nil {
			return nil, errors.New("volume " + name + ": " + err.Error())
		}
		v.Name = name
		vols = append(vols, v)
	}
	return vols, nil
}

// parseUserVolumeMounts reads sidecar.istio.io/userVolumeMount: a JSON object
// of volume name to mount, added to istio-proxy in name order.
func parseUserVolumeMounts(value string) ([]corev1.VolumeMount, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		return nil, errors.New("must be a JSON object of volume name to volume mount")
	}
	mounts := make([]corev1.VolumeMount, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		var vm corev1.VolumeMount
		if err := json.Unmarshal(m[name], &vm); err != nil {
			return nil, errors.New("volume mount " + name + ": " + err.Error())
		}
		vm.Name = name
		mounts = append(mounts, vm)
	}
	return mounts, nil
}
