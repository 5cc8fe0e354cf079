package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// IstioBinFromEnv reads MESHKEEPER_ISTIO_BIN, the directory `make istio`
// builds Istio's pilot-discovery, pilot-agent and istioctl into.
func IstioBinFromEnv() (string, error) {
	dir := os.Getenv("MESHKEEPER_ISTIO_BIN")
	if dir == "" {
		return "", fmt.Errorf("MESHKEEPER_ISTIO_BIN is not set: run through `make test-e2e` or `make demo`, which build Istio's binaries first (`make istio`)")
	}
	for _, b := range []string{"pilot-discovery", "pilot-agent"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("missing Istio binary (run `make istio`): %w", err)
		}
	}
	return dir, nil
}

// Istiod is real istiod (Istio's pilot-discovery) for one revision
// meshkeeper rendered, running on the host against the simulated cluster,
// where kwok runs no containers. It runs as the revision's Deployment says
// (its args, env and service account), with host ports instead of the
// container's, and reads its mesh config and injection settings from the
// cluster as it would in a pod.
type Istiod struct {
	// Revision is the REVISION the Deployment gives istiod.
	Revision string
	// Deployment is the istiod Deployment it runs as.
	Deployment client.ObjectKey
	// Host is the Service host the revision's proxies dial
	// (<deployment>.<namespace>.svc), which istiod's serving certificate names.
	Host string
	// PodName is the POD_NAME istiod runs with: its instance id.
	PodName string
	// HTTPAddr serves /ready and /debug; XDSAddr is the secure gRPC port
	// (15012 in a pod): XDS and the CA, what CA_ADDR and discoveryAddress name.
	HTTPAddr, XDSAddr string
	proc              *process
}

// StartIstiod starts istiod from the Deployment key names, logging to dir.
// It does not wait for readiness: see WaitReady.
func StartIstiod(ctx context.Context, c client.Client, kubeconfig, binDir string, key client.ObjectKey, dir string) (*Istiod, error) {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, key, d); err != nil {
		return nil, fmt.Errorf("reading istiod's Deployment: %w", err)
	}
	// The proxies reach istiod through the Service named like the Deployment.
	if err := c.Get(ctx, key, &corev1.Service{}); err != nil {
		return nil, fmt.Errorf("the Service %s the revision's proxies dial: %w", key, err)
	}
	var container *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "discovery" {
			container = &d.Spec.Template.Spec.Containers[i]
		}
	}
	if container == nil {
		return nil, fmt.Errorf("deployment %s has no discovery container", key)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	i := &Istiod{
		Deployment: key,
		Host:       key.Name + "." + key.Namespace + ".svc",
		PodName:    key.Name + "-host",
		HTTPAddr:   addr(0),
		XDSAddr:    addr(2),
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	fields := map[string]string{
		"metadata.name":           i.PodName,
		"metadata.namespace":      key.Namespace,
		"spec.serviceAccountName": sa,
		"status.podIP":            "127.0.0.1",
	}
	env, err := containerEnv(container.Env, fields)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", key, err)
	}
	i.Revision = env["REVISION"]
	// In a pod KUBECONFIG names a remote cluster's Secret when one is mounted,
	// else istiod uses the in-cluster config; here it is the cluster's.
	env["KUBECONFIG"] = kubeconfig
	// Later flags win: the host ports replace the container's.
	args := append(expandArgs(container.Args, env),
		"--kubeconfig", kubeconfig,
		"--httpAddr="+i.HTTPAddr, "--grpcAddr="+addr(1), "--secureGRPCAddr="+i.XDSAddr,
		"--httpsAddr="+addr(3), "--monitoringAddr="+addr(4),
		"--ctrlz_address=127.0.0.1", "--ctrlz_port="+strconv.Itoa(ports[5]))
	// istiod keeps its CA and serving certificates under ./etc and ./var
	// relative to its working directory, as in its container.
	if i.proc, err = startProcessIn(dir, filepath.Join(binDir, "pilot-discovery"), filepath.Join(dir, "istiod.log"), envList(env), args...); err != nil {
		return nil, err
	}
	return i, nil
}

// WaitReady waits until istiod's /ready answers 200: it has read the mesh
// config, started its CA and synced with the API server.
func (i *Istiod) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if i.proc.exited() {
			return fmt.Errorf("istiod of %s exited:\n%s", i.Deployment, tail(i.proc.log, 20))
		}
		_, err := httpGetBody(ctx, "http://"+i.HTTPAddr+"/ready")
		if err == nil {
			return nil
		}
		last = fmt.Sprint(err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("istiod of %s not ready after %s (%s):\n%s", i.Deployment, timeout, last, tail(i.proc.log, 20))
}

// Connections are the node ids of the proxies connected to istiod over XDS
// (its /debug/connections).
func (i *Istiod) Connections(ctx context.Context) ([]string, error) {
	body, err := httpGetBody(ctx, "http://"+i.HTTPAddr+"/debug/connections")
	if err != nil {
		return nil, err
	}
	var got struct {
		Clients []struct {
			ConnectionID string `json:"connectionId"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return nil, fmt.Errorf("istiod's /debug/connections: %w", err)
	}
	var ids []string
	for _, c := range got.Clients {
		// A connection id is the proxy's id and a counter: <pod>.<namespace>-<n>.
		id := c.ConnectionID
		if n := strings.LastIndex(id, "-"); n > 0 {
			id = id[:n]
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// PID is istiod's process id.
func (i *Istiod) PID() int { return i.proc.cmd.Process.Pid }

// Stop stops istiod, as removing its pod would.
func (i *Istiod) Stop() { i.proc.stop() }

// Logs are the last lines of istiod's log.
func (i *Istiod) Logs(lines int) string { return tail(i.proc.log, lines) }

// containerEnv resolves a container's env as the kubelet would for the
// fields given; resource fields (GOMAXPROCS, GOMEMLIMIT) are left unset.
func containerEnv(vars []corev1.EnvVar, fields map[string]string) (map[string]string, error) {
	env := map[string]string{}
	for _, v := range vars {
		switch {
		case v.ValueFrom == nil:
			env[v.Name] = expand(v.Value, env)
		case v.ValueFrom.FieldRef != nil:
			value, ok := fields[v.ValueFrom.FieldRef.FieldPath]
			if !ok {
				return nil, fmt.Errorf("env %s: field %s is not known on the host", v.Name, v.ValueFrom.FieldRef.FieldPath)
			}
			env[v.Name] = value
		case v.ValueFrom.ResourceFieldRef != nil:
		default:
			return nil, fmt.Errorf("env %s: only values, fields and resources are resolved on the host", v.Name)
		}
	}
	return env, nil
}

// expand replaces $(NAME) with NAME's value, as Kubernetes does in env
// values and args; an unknown name is kept.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for {
		start := strings.Index(s, "$(")
		if start < 0 {
			break
		}
		end := strings.Index(s[start:], ")")
		if end < 0 {
			break
		}
		name := s[start+2 : start+end]
		value, ok := env[name]
		if !ok {
			value = s[start : start+end+1]
		}
		b.WriteString(s[:start] + value)
		s = s[start+end+1:]
	}
	b.WriteString(s)
	return b.String()
}

func expandArgs(args []string, env map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, env)
	}
	return out
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func httpGetBody(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}
