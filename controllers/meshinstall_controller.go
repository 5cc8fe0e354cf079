// Package controllers holds meshkeeper's reconcilers: thin shells that observe
// the cluster, call the pure packages under internal/ and apply their result.
package controllers

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// MeshInstallReconciler reconciles a MeshInstall object.
type MeshInstallReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=mesh.meshkeeper.dev,resources=meshinstalls,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.meshkeeper.dev,resources=meshinstalls/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mesh.meshkeeper.dev,resources=meshinstalls/finalizers,verbs=update

// Reconcile observes a MeshInstall.
func (r *MeshInstallReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var mi meshv1alpha1.MeshInstall
	if err := r.Get(ctx, req.NamespacedName, &mi); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	log.FromContext(ctx).V(1).Info("observed", "version", mi.Spec.Version, "generation", mi.Generation)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler with the manager.
func (r *MeshInstallReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&meshv1alpha1.MeshInstall{}).
		Named("meshinstall").
		Complete(r)
}
