package inject

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Proxyless gRPC: Istio's grpc-agent and grpc-simple templates, for
// applications whose gRPC library speaks xDS itself, so no Envoy carries
// their traffic.

// Volumes and paths of the gRPC templates.
const (
	volXDS           = "istio-xds"
	volGRPCBootstrap = "grpc-io-proxyless-bootstrap"
	grpcBootstrapDir = "/var/lib/grpc/data/"
	// agentStatusPort is the agent's port in the grpc-agent template, which
	// ignores status.sidecar.istio.io/port except to drop the probe.
	agentStatusPort = 15020
)

// renderGRPCAgent is the grpc-agent template: pilot-agent without Envoy
// (DISABLE_ENVOY) in istio-proxy, serving the application's gRPC library xDS
// on a socket in a shared volume and writing its certificates there; each
// application container gets the volumes and the gRPC bootstrap's
// environment. There is no traffic capture and no probe rewriting.
func (in *injection) renderGRPCAgent() (*rendered, error) {
	ann := in.pod.Annotations
	vols, mounts := sharedGRPCAgentVolumes, sharedGRPCAgentMounts
	_, hasBootstrap := ann[annBootstrapOverride]
	_, hasUserVolumes := ann[annUserVolume]
	_, hasUserMounts := ann[annUserVolumeMount]
	if hasBootstrap || hasUserVolumes || hasUserMounts {
		var userVols []corev1.Volume
		var userMounts []corev1.VolumeMount
		var err error
		if v, ok := ann[annUserVolume]; ok {
			if userVols, err = parseUserVolumes(v); err != nil {
				return nil, invalidAnnotation(annUserVolume, v, err)
			}
		}
		if v, ok := ann[annUserVolumeMount]; ok {
			if userMounts, err = parseUserVolumeMounts(v); err != nil {
				return nil, invalidAnnotation(annUserVolumeMount, v, err)
			}
		}
		vols, mounts = buildGRPCAgentVolumes(ann[annBootstrapOverride], hasBootstrap, userVols, userMounts)
	}

	proxy := corev1.Container{
		Name:            ProxyContainerName,
		Image:           in.proxyImage(),
		Ports:           sharedAgentPorts,
		Args:            in.proxyArgs("sidecar"),
		Lifecycle:       sharedAgentLifecycle,
		Env:             in.grpcAgentEnv(),
		ImagePullPolicy: in.cfg.ImagePullPolicy,
	}
	// The template leaves out the probe, the resources and the mounts
	// together when the status port is 0.
	if in.statusPort != "0" {
		proxy.ReadinessProbe = &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: readinessPath, Port: intstr.FromInt32(agentStatusPort)}},
			InitialDelaySeconds: annotationInt32(ann, annReadinessDelay, 0),
			PeriodSeconds:       annotationInt32(ann, annReadinessPeriod, 15),
			TimeoutSeconds:      3,
			FailureThreshold:    annotationInt32(ann, annReadinessFailures, 4),
		}
		proxy.Resources = in.resources()
		proxy.VolumeMounts = mounts
	}
	t := &rendered{
		labels: []keyValue{
			{labelCanonicalName, in.canonicalName(false)},
			{labelCanonicalRevision, in.canonicalRevision()},
		},
		annotations: append(in.templateAnnotations(), keyValue{annRewriteProbes, "false"}),
		containers:  make([]corev1.Container, 0, 1+2*len(in.pod.Spec.Containers)),
		volumes:     vols,
	}
	t.containers = append(t.containers, proxy)
	for i := range in.pod.Spec.Containers {
		if name := in.pod.Spec.Containers[i].Name; name != ProxyContainerName {
			t.containers = append(t.containers, corev1.Container{Name: name, Env: sharedGRPCAgentAppEnv, VolumeMounts: sharedGRPCAgentAppMounts})
		}
	}
	t.status = statusJSON(t, in.d.revision)
	return t, nil
}

// grpcAgentEnv is the grpc-agent template's istio-proxy environment.
func (in *injection) grpcAgentEnv() []corev1.EnvVar {
	cluster := in.cfg.ClusterID
	if cluster == "" {
		cluster = defaultClusterID
	}
	env := make([]corev1.EnvVar, 0, 24+len(in.proxy.metadata))
	env = append(env,
		corev1.EnvVar{Name: "ISTIO_META_GENERATOR", Value: "grpc"},
		corev1.EnvVar{Name: "OUTPUT_CERTS", Value: "/var/lib/istio/data"},
		corev1.EnvVar{Name: "PILOT_CERT_PROVIDER", Value: "istiod"},
		corev1.EnvVar{Name: "CA_ADDR", Value: in.d.caAddress},
		fromEnv("POD_NAME", srcPodName),
		fromEnv("POD_NAMESPACE", srcPodNamespace),
		fromEnv("INSTANCE_IP", srcPodIP),
		fromEnv("SERVICE_ACCOUNT", srcServiceAccount),
		fromEnv("HOST_IP", srcHostIP),
		corev1.EnvVar{Name: "PROXY_CONFIG", Value: in.proxy.env},
		corev1.EnvVar{Name: "ISTIO_META_POD_PORTS", Value: in.podPorts()},
		corev1.EnvVar{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(appContainerNames(in.pod), ",")},
		corev1.EnvVar{Name: envClusterID, Value: cluster},
		fromEnv("ISTIO_META_NODE_NAME", srcNodeName),
	)
	if in.cfg.Network != "" {
		env = append(env, corev1.EnvVar{Name: envNetwork, Value: in.cfg.Network})
	}
	if in.workload.Name != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_WORKLOAD_NAME", Value: in.workload.Name})
	}
	if owner := in.workload.owner(); owner != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_OWNER", Value: owner})
	}
	if in.d.meshID != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_MESH_ID", Value: in.d.meshID})
	}
	if in.cfg.TrustDomain != "" {
		env = append(env, corev1.EnvVar{Name: "TRUST_DOMAIN", Value: in.cfg.TrustDomain})
	}
	env = append(env, in.proxy.metadata...)
	// gRPC resolves xds:/// names itself: no DNS capture, no Envoy.
	return append(env,
		corev1.EnvVar{Name: "ISTIO_META_DNS_CAPTURE", Value: "false"},
		corev1.EnvVar{Name: "DISABLE_ENVOY", Value: "true"},
	)
}

// Parts of the grpc-agent template shared by every pod: they must not be
// modified.
var (
	sharedAgentPorts     = []corev1.ContainerPort{{ContainerPort: agentStatusPort, Protocol: corev1.ProtocolTCP, Name: "mesh-metrics"}}
	sharedAgentLifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{
		"pilot-agent", "wait", "--url=http://localhost:" + strconv.Itoa(agentStatusPort) + readinessPath,
	}}}}
	sharedGRPCAgentAppEnv = []corev1.EnvVar{
		{Name: "GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT", Value: "true"},
		{Name: "GRPC_XDS_BOOTSTRAP", Value: "/etc/istio/proxy/grpc-bootstrap.json"},
	}
	sharedGRPCAgentAppMounts = []corev1.VolumeMount{
		{Name: volData, MountPath: "/var/lib/istio/data"},
		{Name: volXDS, MountPath: "/etc/istio/proxy"},
		{Name: volWorkloadCerts, MountPath: "/var/run/secrets/workload-spiffe-credentials"},
	}
	sharedGRPCAgentVolumes, sharedGRPCAgentMounts = buildGRPCAgentVolumes("", false, nil, nil)
)

// buildGRPCAgentVolumes builds the grpc-agent template's volumes and
// istio-proxy's mounts.
func buildGRPCAgentVolumes(bootstrap string, hasBootstrap bool, userVols []corev1.Volume, userMounts []corev1.VolumeMount) ([]corev1.Volume, []corev1.VolumeMount) {
	mounts := make([]corev1.VolumeMount, 0, 7+len(userMounts))
	mounts = append(mounts,
		corev1.VolumeMount{Name: volWorkloadSocket, MountPath: "/var/run/secrets/workload-spiffe-uds"},
		corev1.VolumeMount{Name: volWorkloadCerts, MountPath: "/var/run/secrets/workload-spiffe-credentials"},
		corev1.VolumeMount{Name: volCACert, MountPath: "/var/run/secrets/istio"},
		corev1.VolumeMount{Name: volData, MountPath: "/var/lib/istio/data"},
		corev1.VolumeMount{Name: volXDS, MountPath: "/etc/istio/proxy"},
		corev1.VolumeMount{Name: volToken, MountPath: "/var/run/secrets/tokens"},
		corev1.VolumeMount{Name: volPodInfo, MountPath: "/etc/istio/pod"},
	)
	mounts = append(mounts, userMounts...)

	// The sidecar's volumes, in the grpc-agent template's order, with the
	// xDS socket's volume instead of Envoy's and without the CRL.
	sidecar := sharedSidecarVolumes
	vol := func(name string) corev1.Volume {
		for i := range sidecar {
			if sidecar[i].Name == name {
				return sidecar[i]
			}
		}
		panic("no sidecar volume " + name)
	}
	vols := make([]corev1.Volume, 0, 8+len(userVols))
	vols = append(vols, vol(volWorkloadSocket), vol(volWorkloadCerts))
	if hasBootstrap {
		vols = append(vols, corev1.Volume{Name: volBootstrap, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: bootstrap}},
		}})
	}
	vols = append(vols, emptyDir(volXDS, corev1.StorageMediumMemory), vol(volData), vol(volPodInfo), vol(volToken), vol(volCACert))
	vols = append(vols, userVols...)
	return vols[:len(vols):len(vols)], mounts[:len(mounts):len(mounts)]
}

// renderGRPCSimple is the grpc-simple template: no agent at all. An init
// container writes a gRPC xDS bootstrap pointing at istiod's plain-text
// port into a shared volume, and every container gets its path.
func (in *injection) renderGRPCSimple() *rendered {
	ns := in.cfg.Namespace
	if ns == "" {
		ns = "istio-system"
	}
	init := corev1.Container{
		Name:         "grpc-bootstrap-init",
		Image:        "busybox:1.28",
		VolumeMounts: sharedGRPCBootstrapMounts,
		Env: []corev1.EnvVar{
			fromEnv("INSTANCE_IP", srcPodIP),
			fromEnv("POD_NAME", srcPodName),
			fromEnv("POD_NAMESPACE", srcPodNamespace),
			{Name: "ISTIO_NAMESPACE", Value: ns + "\n"},
		},
		Command: sharedGRPCBootstrapCommand,
	}
	t := &rendered{
		annotations:    []keyValue{{annRewriteProbes, "false"}},
		initContainers: make([]corev1.Container, 0, 1+len(in.pod.Spec.InitContainers)),
		containers:     make([]corev1.Container, 0, 2*len(in.pod.Spec.Containers)),
		volumes:        sharedGRPCBootstrapVolumes,
	}
	t.initContainers = append(t.initContainers, init)
	// Every container, istio-proxy included, as the template has it.
	for i := range in.pod.Spec.Containers {
		t.containers = append(t.containers, corev1.Container{
			Name: in.pod.Spec.Containers[i].Name, Env: sharedGRPCBootstrapEnv, VolumeMounts: sharedGRPCBootstrapMounts,
		})
	}
	t.status = statusJSON(t, in.d.revision)
	return t
}

// Parts of the grpc-simple template shared by every pod: they must not be
// modified.
var (
	sharedGRPCBootstrapMounts  = []corev1.VolumeMount{{Name: volGRPCBootstrap, MountPath: grpcBootstrapDir}}
	sharedGRPCBootstrapVolumes = []corev1.Volume{{Name: volGRPCBootstrap, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	sharedGRPCBootstrapEnv     = []corev1.EnvVar{
		{Name: "GRPC_XDS_BOOTSTRAP", Value: grpcBootstrapDir + "bootstrap.json"},
		{Name: "GRPC_GO_LOG_VERBOSITY_LEVEL", Value: "99"},
		{Name: "GRPC_GO_LOG_SEVERITY_LEVEL", Value: "info"},
	}
	// sharedGRPCBootstrapCommand writes the bootstrap: the node's identity
	// and istiod's plain-text xDS port, as the template writes them.
	sharedGRPCBootstrapCommand = []string{"sh", "-c", `NODE_ID="sidecar~${INSTANCE_IP}~${POD_NAME}.${POD_NAMESPACE}~cluster.local"
SERVER_URI="dns:///istiod.${ISTIO_NAMESPACE}.svc:15010"
echo '
{
  "xds_servers": [
    {
      "server_uri": "'${SERVER_URI}'",
      "channel_creds": [{"type": "insecure"}],
      "server_features" : ["xds_v3"]
    }
  ],
  "node": {
    "id": "'${NODE_ID}'",
    "metadata": {
      "GENERATOR": "grpc"
    }
  }
}' > ` + grpcBootstrapDir + `bootstrap.json`}
)
