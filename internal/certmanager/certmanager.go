// Package certmanager reads what meshkeeper needs to know of cert-manager,
// for the mesh CA and for the webhook serving certificate alike: whether
// the API server serves cert-manager's kinds, and whether an issuer can sign.
package certmanager

import (
	"context"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certificateGroupKind is cert-manager's Certificate, whose CRD says
// whether cert-manager is installed.
var certificateGroupKind = schema.GroupKind{Group: cmapi.SchemeGroupVersion.Group, Kind: cmapi.CertificateKind}

// Served asks the API server, through mapper, whether it serves
// cert-manager's Certificate kind, i.e. whether cert-manager is installed.
// The manager's mapper looks again for a group it does not know, so a
// cert-manager installed after the operator started is found.
func Served(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(certificateGroupKind, cmapi.SchemeGroupVersion.Version)
	if NotServed(err) {
		return false, nil
	}
	return err == nil, err
}

// NotServed says err is the API server not serving the kind asked for: a
// read or write of cert-manager's kinds while cert-manager (or part of its
// CRDs) is not installed.
func NotServed(err error) bool { return meta.IsNoMatchError(err) }

// Issuer is the state of a cert-manager Issuer or ClusterIssuer.
type Issuer struct {
	Ready bool
	// HasReadyCondition is false while cert-manager has not judged the
	// issuer yet.
	HasReadyCondition bool
	// Reason and Message are the issuer's Ready condition's; Message says
	// when there is none yet.
	Reason, Message string
}

// IssuerOf reads an issuer's readiness from its status.
func IssuerOf(st cmapi.IssuerStatus) *Issuer {
	for _, c := range st.Conditions {
		if c.Type == cmapi.IssuerConditionReady {
			return &Issuer{Ready: c.Status == cmmeta.ConditionTrue, HasReadyCondition: true, Reason: c.Reason, Message: c.Message}
		}
	}
	return &Issuer{Message: "it has no Ready condition yet"}
}

// ReadIssuer reads the ClusterIssuer name, or, when namespace is set, the
// Issuer namespace/name. It returns nil when it does not exist, and an
// error NotServed recognises when cert-manager's kinds are not served.
func ReadIssuer(ctx context.Context, reader client.Reader, namespace, name string) (*Issuer, error) {
	var issuer cmapi.GenericIssuer = &cmapi.ClusterIssuer{}
	if namespace != "" {
		issuer = &cmapi.Issuer{}
	}
	switch err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, issuer); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return IssuerOf(*issuer.GetStatus()), nil
}

// CAInjectorFieldOwner is the field manager cert-manager's cainjector
// writes caBundles with: it co-owns every webhook entry it filled, which is
// why meshkeeper removes entries by name before applying without them.
const CAInjectorFieldOwner = client.FieldOwner("cert-manager-cainjector")
