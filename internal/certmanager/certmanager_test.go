package certmanager

import (
	"context"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestServed(t *testing.T) {
	without := meta.NewDefaultRESTMapper(nil)
	with := meta.NewDefaultRESTMapper(nil)
	with.Add(cmapi.SchemeGroupVersion.WithKind(cmapi.CertificateKind), meta.RESTScopeNamespace)
	if served, err := Served(without); served || err != nil {
		t.Errorf("without cert-manager's CRDs: served %t, %v; want false, no error", served, err)
	}
	if served, err := Served(with); !served || err != nil {
		t.Errorf("with cert-manager's CRDs: served %t, %v; want true, no error", served, err)
	}
}

func ready(status cmmeta.ConditionStatus, reason, message string) cmapi.IssuerStatus {
	return cmapi.IssuerStatus{Conditions: []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: status, Reason: reason, Message: message}}}
}

func TestIssuerOf(t *testing.T) {
	cases := []struct {
		name   string
		status cmapi.IssuerStatus
		want   Issuer
	}{
		{name: "ready", status: ready(cmmeta.ConditionTrue, "KeyPairVerified", "signing"), want: Issuer{Ready: true, HasReadyCondition: true, Reason: "KeyPairVerified", Message: "signing"}},
		{name: "not ready", status: ready(cmmeta.ConditionFalse, "ErrGetKeyPair", "secret root-ca not found"), want: Issuer{HasReadyCondition: true, Reason: "ErrGetKeyPair", Message: "secret root-ca not found"}},
		{name: "not judged yet", want: Issuer{Message: "it has no Ready condition yet"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := *IssuerOf(tc.status); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReadIssuer(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := cmapi.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "mesh-ca"}, Status: ready(cmmeta.ConditionTrue, "", "")},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "mesh-ca"}, Status: ready(cmmeta.ConditionFalse, "Pending", "")},
	).Build()
	ctx := context.Background()
	if got, err := ReadIssuer(ctx, c, "", "mesh-ca"); err != nil || got == nil || !got.Ready {
		t.Errorf("ClusterIssuer: got %+v, %v; want the ready ClusterIssuer", got, err)
	}
	if got, err := ReadIssuer(ctx, c, "istio-system", "mesh-ca"); err != nil || got == nil || got.Ready {
		t.Errorf("Issuer: got %+v, %v; want the Issuer of the namespace, not ready", got, err)
	}
	if got, err := ReadIssuer(ctx, c, "other", "mesh-ca"); err != nil || got != nil {
		t.Errorf("missing Issuer: got %+v, %v; want nil, no error", got, err)
	}
	notServed := interceptor.NewClient(c, interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
		return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: cmapi.SchemeGroupVersion.Group, Kind: cmapi.ClusterIssuerKind}}
	}})
	if _, err := ReadIssuer(ctx, notServed, "", "mesh-ca"); !NotServed(err) {
		t.Errorf("cert-manager not installed: got %v, want an error NotServed recognises", err)
	}
}
