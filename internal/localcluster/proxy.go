package localcluster

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// defaultDiscoveryAddress is the discoveryAddress of Istio's default
// ProxyConfig, which a proxy dials when neither its mesh config nor
// PROXY_CONFIG names another.
const defaultDiscoveryAddress = "istiod.istio-system.svc:15012"

// Proxy is Istio's agent (pilot-agent) run on the host for one injected pod,
// from that pod's own istio-proxy container (its args, env and volumes), in
// proxyless mode (DISABLE_ENVOY): no Envoy, but the agent still gets the
// workload certificate from istiod's CA and serves its XDS proxy on a unix
// socket, through which the Envoy a real pod runs would get its config.
type Proxy struct {
	Pod *corev1.Pod
	// Istiod is the istiod the pod's injected env dials (CA_ADDR and
	// discoveryAddress name its Service).
	Istiod *Istiod
	// Certificate is the workload certificate istiod's CA issued.
	Certificate *x509.Certificate
	root        string
	proc        *process
}

// StartProxy runs the agent of pod (which must be injected, scheduled and
// given an IP) in a scratch directory laid out as the pod's volumes would
// be, and waits for its workload certificate. The Service hosts the pod's
// env names resolve to 127.0.0.1, for the agent alone (a mount namespace
// with its own /etc/hosts; this needs root), and their port is the one of
// the running istiod of that host: a pod that names a host no istiod among
// istiods serves fails here, as it would in a cluster.
func StartProxy(ctx context.Context, cs kubernetes.Interface, binDir string, pod *corev1.Pod, istiods []*Istiod, logDir string) (*Proxy, error) {
	d, err := dialed(pod, istiods)
	if err != nil {
		return nil, err
	}
	if pod.Status.PodIP == "" {
		return nil, fmt.Errorf("pod %s/%s has no IP yet", pod.Namespace, pod.Name)
	}
	env, proxyConfig := d.env, d.proxyConfig
	_, port, _ := net.SplitHostPort(d.istiod.XDSAddr)
	env["CA_ADDR"] = net.JoinHostPort(d.caHost, port)
	xdsAddr := net.JoinHostPort(d.discoveryHost, port)
	istiod, container := d.istiod, d.container
	hostNames := slices.Sorted(maps.Keys(d.byHost))
	// The agents share the host's network: ports that are fixed in every pod
	// are picked free here.
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	proxyConfig["discoveryAddress"] = xdsAddr
	proxyConfig["statusPort"] = ports[0]                          // 15020 in a pod
	env["DNS_PROXY_ADDR"] = "127.0.0.1:" + strconv.Itoa(ports[1]) // 15053 in a pod, with DNS capture
	pc, _ := json.Marshal(proxyConfig)
	env["PROXY_CONFIG"] = string(pc)
	// Proxyless: the agent runs no Envoy, writes the gRPC bootstrap (holding
	// the node it derived from this env) and the workload certificate.
	env["DISABLE_ENVOY"] = "true"
	env["GRPC_XDS_BOOTSTRAP"] = "./etc/istio/proxy/grpc-bootstrap.json"
	env["OUTPUT_CERTS"] = "./var/run/secrets/workload-certs-out"

	// A short root keeps the agent's unix sockets within the length limit.
	root, err := os.MkdirTemp("", "mkproxy-")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Pod: pod, Istiod: istiod, root: root}
	if err := p.mountVolumes(ctx, cs, container); err != nil {
		p.Stop()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, env["OUTPUT_CERTS"]), 0o755); err != nil {
		p.Stop()
		return nil, err
	}
	hosts := filepath.Join(root, "hosts")
	line := "127.0.0.1 localhost " + strings.Join(hostNames, " ") + "\n"
	if err := os.WriteFile(hosts, []byte(line), 0o644); err != nil {
		p.Stop()
		return nil, err
	}
	args := expandArgs(container.Args, env)
	// exec: the process the harness holds (and stops) is the agent itself.
	script := `mount --bind "$0" /etc/hosts && exec "$@"`
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		p.Stop()
		return nil, err
	}
	logPath := filepath.Join(logDir, "proxy-"+pod.Namespace+"-"+pod.Name+".log")
	p.proc, err = startProcessIn(root, "unshare", logPath, envList(env),
		append([]string{"-m", "sh", "-c", script, hosts, filepath.Join(binDir, "pilot-agent")}, args...)...)
	if err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.waitCertificate(ctx, 30*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// dialing is what a pod's injected istio-proxy env says the agent dials.
type dialing struct {
	container             *corev1.Container
	env                   map[string]string
	proxyConfig           map[string]any
	discoveryHost, caHost string
	istiod                *Istiod
	byHost                map[string]*Istiod
}

// IstiodOf returns the istiod among istiods that pod's injected proxy
// dials (the Service its discoveryAddress and CA_ADDR name), or an error
// naming the address no running istiod serves: a pod left pointing at a
// removed revision, or at two different ones.
func IstiodOf(pod *corev1.Pod, istiods []*Istiod) (*Istiod, error) {
	d, err := dialed(pod, istiods)
	if err != nil {
		return nil, err
	}
	return d.istiod, nil
}

func dialed(pod *corev1.Pod, istiods []*Istiod) (*dialing, error) {
	container := istioProxy(pod)
	if container == nil {
		return nil, fmt.Errorf("pod %s/%s has no istio-proxy container", pod.Namespace, pod.Name)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	env, err := containerEnv(container.Env, map[string]string{
		"metadata.name":           pod.Name,
		"metadata.namespace":      pod.Namespace,
		"spec.serviceAccountName": sa,
		"spec.nodeName":           pod.Spec.NodeName,
		"status.podIP":            pod.Status.PodIP,
		"status.hostIP":           pod.Status.HostIP,
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	d := &dialing{container: container, env: env, proxyConfig: map[string]any{}, byHost: map[string]*Istiod{}}
	if s := strings.TrimSpace(env["PROXY_CONFIG"]); s != "" {
		if err := json.Unmarshal([]byte(s), &d.proxyConfig); err != nil {
			return nil, fmt.Errorf("pod %s/%s: PROXY_CONFIG is not JSON: %w", pod.Namespace, pod.Name, err)
		}
	}
	discovery, _ := d.proxyConfig["discoveryAddress"].(string)
	if discovery == "" {
		discovery = defaultDiscoveryAddress
	}
	caAddr := env["CA_ADDR"]
	if caAddr == "" {
		caAddr = discovery // the agent's own default
	}
	for _, i := range istiods {
		d.byHost[i.Host] = i
	}
	lookup := func(what, addr string) (string, *Istiod, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return "", nil, fmt.Errorf("pod %s/%s %s %q: %w", pod.Namespace, pod.Name, what, addr, err)
		}
		i, ok := d.byHost[host]
		if !ok {
			return "", nil, fmt.Errorf("pod %s/%s: no running istiod serves its %s %s (running: %v)", pod.Namespace, pod.Name, what, addr, slices.Sorted(maps.Keys(d.byHost)))
		}
		return host, i, nil
	}
	var viaCA *Istiod
	if d.discoveryHost, d.istiod, err = lookup("discoveryAddress", discovery); err != nil {
		return nil, err
	}
	if d.caHost, viaCA, err = lookup("CA_ADDR", caAddr); err != nil {
		return nil, err
	}
	if viaCA != d.istiod {
		return nil, fmt.Errorf("pod %s/%s gets its certificate from %s but its config from %s", pod.Namespace, pod.Name, caAddr, discovery)
	}
	return d, nil
}

func istioProxy(pod *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == "istio-proxy" {
				return &cs[i]
			}
		}
	}
	return nil
}

// mountVolumes lays out the istio-proxy container's volume mounts under the
// scratch root as the kubelet would: ConfigMaps (the mesh's root
// certificate), projected service account tokens (with the pod's own
// audience and lifetime, bound to the pod), the downward API's labels and
// annotations, and empty directories.
func (p *Proxy) mountVolumes(ctx context.Context, cs kubernetes.Interface, container *corev1.Container) error {
	pod := p.Pod
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range container.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			return fmt.Errorf("pod %s/%s: istio-proxy mounts volume %s, which the pod does not have", pod.Namespace, pod.Name, m.Name)
		}
		dir := filepath.Join(p.root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		files := map[string][]byte{}
		switch {
		case v.ConfigMap != nil:
			cm, err := configMap(ctx, cs, pod.Namespace, v.ConfigMap)
			if err != nil {
				return fmt.Errorf("pod %s/%s volume %s: %w", pod.Namespace, pod.Name, m.Name, err)
			}
			if cm == nil {
				continue
			}
			for k, data := range cm.Data {
				files[k] = []byte(data)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if t := src.ServiceAccountToken; t != nil {
					token, err := podToken(ctx, cs, pod, t)
					if err != nil {
						return err
					}
					files[t.Path] = []byte(token)
				}
			}
		case v.DownwardAPI != nil:
			for _, item := range v.DownwardAPI.Items {
				if item.FieldRef == nil {
					continue
				}
				switch item.FieldRef.FieldPath {
				case "metadata.labels":
					files[item.Path] = downwardMap(pod.Labels)
				case "metadata.annotations":
					files[item.Path] = downwardMap(pod.Annotations)
				}
			}
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// configMap reads the ConfigMap a volume names; the kubelet waits for a
// missing one (istiod publishes istio-ca-root-cert into each namespace soon
// after it starts), here for up to 30s. An optional one that is missing is nil.
func configMap(ctx context.Context, cs kubernetes.Interface, namespace string, src *corev1.ConfigMapVolumeSource) (*corev1.ConfigMap, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, src.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			return cm, nil
		case apierrors.IsNotFound(err) && ptr.Deref(src.Optional, false):
			return nil, nil
		case !apierrors.IsNotFound(err) || time.Now().After(deadline):
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// podToken is the token the kubelet would project: the pod's service
// account's, for the volume's audience and lifetime, bound to the pod.
func podToken(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	got, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("pod %s/%s: a token of ServiceAccount %s: %w", pod.Namespace, pod.Name, sa, err)
	}
	return got.Status.Token, nil
}

// downwardMap is the downward API's file format for labels and annotations.
func downwardMap(m map[string]string) []byte {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k + "=" + strconv.Quote(m[k]) + "\n")
	}
	return []byte(b.String())
}

// waitCertificate waits until the agent has written the workload
// certificate istiod's CA signed.
func (p *Proxy) waitCertificate(ctx context.Context, timeout time.Duration) error {
	path := filepath.Join(p.root, "var/run/secrets/workload-certs-out/cert-chain.pem")
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			if block, _ := pem.Decode(data); block != nil {
				cert, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					return fmt.Errorf("the workload certificate of %s/%s: %w", p.Pod.Namespace, p.Pod.Name, err)
				}
				p.Certificate = cert
				return nil
			}
		}
		if p.proc.exited() {
			return fmt.Errorf("the agent of %s/%s exited without a certificate:\n%s", p.Pod.Namespace, p.Pod.Name, p.Logs(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent of %s/%s got no workload certificate from %s in %s:\n%s", p.Pod.Namespace, p.Pod.Name, p.Istiod.Host, timeout, p.Logs(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Identity is the SPIFFE id of the workload certificate.
func (p *Proxy) Identity() (string, error) {
	if p.Certificate == nil || len(p.Certificate.URIs) != 1 {
		return "", errors.New("the workload certificate carries no single URI SAN")
	}
	return p.Certificate.URIs[0].String(), nil
}

// NodeID is the proxy's id as istiod knows it (<pod>.<namespace>).
func (p *Proxy) NodeID() string { return p.Pod.Name + "." + p.Pod.Namespace }

// Logs are the last lines of the agent's log.
func (p *Proxy) Logs(lines int) string {
	if p.proc == nil {
		return ""
	}
	return tail(p.proc.log, lines)
}

// Stop stops the agent and removes its scratch directory.
func (p *Proxy) Stop() {
	if p.proc != nil {
		p.proc.stop()
	}
	_ = os.RemoveAll(p.root)
}
