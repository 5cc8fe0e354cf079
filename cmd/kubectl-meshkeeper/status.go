package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"
	"istio.io/api/annotation"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// statusView is what status shows: the MeshInstall as the operator
// reported it, and the few facts its status does not hold, read from the
// cluster.
type statusView struct {
	MI *meshv1alpha1.MeshInstall
	// Istiods are the replicas of each revision's istiod Deployment (those
	// the MeshInstall controls), by revision; status says only whether it is available.
	Istiods map[string]replicas
	// Namespace is, with -n, its pods by the revision stamped on them.
	Namespace *namespacePods
	// Now is when the view was read: the canary's step clock counts from it.
	Now time.Time
}

type replicas struct{ Available, Desired int32 }

// namespacePods counts one namespace's running pods by the revision that
// injected them (meshkeeper's stamp): status counts only the whole mesh.
type namespacePods struct {
	Name       string
	ByRevision map[string]int32
	// WithoutSidecar are running pods with no sidecar, wanted or not.
	WithoutSidecar int32
}

func statusFlags(fs *pflag.FlagSet) func(context.Context, connection, []string, io.Writer) error {
	watchIt := fs.BoolP("watch", "w", false, "Redraw the status on every change of the MeshInstall (and every few seconds, for the canary's clock) until interrupted.")
	return func(ctx context.Context, conn connection, args []string, stdout io.Writer) error {
		if len(args) > 1 {
			return fmt.Errorf("status takes at most one MeshInstall name, got %q", args)
		}
		name := ""
		if len(args) == 1 {
			name = args[0]
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		colour := isTerminal(stdout)
		if *watchIt {
			return watchStatus(ctx, c, name, conn.namespace, stdout, colour)
		}
		v, err := readStatus(ctx, c, name, conn.namespace)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, renderStatus(v, colour))
		return err
	}
}

// isTerminal says whether out is a terminal: colour and redraws only then,
// so that pipes, files and tests get stable plain text.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readStatus reads the MeshInstall named (or the only one), its istiod
// Deployments and, when namespace is set, that namespace's pods.
func readStatus(ctx context.Context, c client.Reader, name, namespace string) (statusView, error) {
	mi, err := findMeshInstall(ctx, c, name)
	if err != nil {
		return statusView{}, err
	}
	v := statusView{MI: mi, Now: time.Now()}
	if v.Istiods, err = istiodReplicas(ctx, c, mi); err != nil {
		return v, err
	}
	if namespace != "" {
		v.Namespace, err = podsByRevision(ctx, c, namespace)
	}
	return v, err
}

// findMeshInstall is the MeshInstall named, or with no name the only one
// (meshkeeper allows one per cluster).
func findMeshInstall(ctx context.Context, c client.Reader, name string) (*meshv1alpha1.MeshInstall, error) {
	if name != "" {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return nil, fmt.Errorf("reading MeshInstall %s: %w", name, err)
		}
		return mi, nil
	}
	var list meshv1alpha1.MeshInstallList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing MeshInstalls: %w", err)
	}
	switch len(list.Items) {
	case 0:
		return nil, fmt.Errorf("no MeshInstall in the cluster")
	case 1:
		return &list.Items[0], nil
	}
	return nil, fmt.Errorf("%d MeshInstalls in the cluster: name one", len(list.Items))
}

// istiodReplicas reads the istiod Deployments of mi's revisions: only
// those in its control plane namespace that it controls (a Deployment of
// the same name someone else made is not its istiod).
func istiodReplicas(ctx context.Context, c client.Reader, mi *meshv1alpha1.MeshInstall) (map[string]replicas, error) {
	out := map[string]replicas{}
	for _, r := range mi.Status.Revisions {
		d := &appsv1.Deployment{}
		err := c.Get(ctx, client.ObjectKey{Namespace: render.ControlPlaneNamespace(mi), Name: render.IstiodName(r.Name)}, d)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading istiod of revision %s: %w", r.Name, err)
		}
		if err == nil && ownership.ControlledBy(d, mi.UID) {
			out[r.Name] = replicas{Available: d.Status.AvailableReplicas, Desired: ptr.Deref(d.Spec.Replicas, 1)}
		}
	}
	return out, nil
}

// podsByRevision counts a namespace's running pods by the revision stamped
// on them. The stamps are reports, counted and shown, nothing more.
func podsByRevision(ctx context.Context, c client.Reader, namespace string) (*namespacePods, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	out := &namespacePods{Name: namespace, ByRevision: map[string]int32{}}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		if _, injected := p.Annotations[annotation.SidecarStatus.Name]; !injected {
			out.WithoutSidecar++
			continue
		}
		rev := p.Annotations[inject.AnnotationRevision]
		if rev == "" {
			rev = "(not meshkeeper's)"
		}
		out.ByRevision[rev]++
	}
	return out, nil
}

// watchInterval redraws a watched status even when nothing changes, so
// that the canary's step clock moves.
const watchInterval = 5 * time.Second

// readWatcher reads and watches; nothing of the plugin writes.
type readWatcher interface {
	client.Reader
	Watch(ctx context.Context, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error)
}

// watchStatus redraws the status on every change of MeshInstalls and every
// watchInterval until ctx ends. On a terminal it redraws in place; into a
// pipe it prints each new view after a separator, and only when it changed.
// A watch the API server ends (it does after some minutes, or with an error
// such as an expired resourceVersion) is opened again: an upgrade outlasts it.
func watchStatus(ctx context.Context, c readWatcher, name, namespace string, out io.Writer, colour bool) error {
	w, err := c.Watch(ctx, &meshv1alpha1.MeshInstallList{})
	if err != nil {
		return fmt.Errorf("watching MeshInstalls: %w", err)
	}
	defer func() { w.Stop() }()
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	last := ""
	for {
		v, err := readStatus(ctx, c, name, namespace)
		if err != nil {
			return err
		}
		text := renderStatus(v, colour)
		switch {
		case colour:
			fmt.Fprint(out, "\x1b[H\x1b[2J", text) // home, clear screen
		case text != last:
			if last != "" {
				fmt.Fprintln(out, "---")
			}
			fmt.Fprint(out, text)
		}
		last = text
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if ok && ev.Type != watch.Error {
				continue
			}
			w.Stop()
			again, err := c.Watch(ctx, &meshv1alpha1.MeshInstallList{})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watching MeshInstalls again after the API server ended the watch: %w", err)
			}
			w = again
		case <-tick.C:
		}
	}
}
