package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// These tests play cert-manager (envtest runs none of its controllers):
// they install its CRDs, mark issuers Ready and Certificates issued through
// the status subresource, as cert-manager's controllers would.

func certManagerCRDOptions(t *testing.T) envtest.CRDInstallOptions {
	t.Helper()
	dir, err := testenv.CertManagerCRDDir(testenv.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	return envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}
}

const certificatesCRD = "certificates.cert-manager.io"

// withoutCertManager removes cert-manager's CRDs, if a test installed them.
func withoutCertManager(t *testing.T) {
	t.Helper()
	if err := envtest.UninstallCRDs(env.Config, certManagerCRDOptions(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "cert-manager's CRDs gone", func() error {
		err := env.Client.Get(context.Background(), client.ObjectKey{Name: certificatesCRD}, &apiextensionsv1.CustomResourceDefinition{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// installCertManager installs cert-manager's CRDs (envtest waits until they are served).
func installCertManager(t *testing.T) {
	t.Helper()
	if _, err := envtest.InstallCRDs(env.Config, certManagerCRDOptions(t)); err != nil {
		t.Fatal(err)
	}
}

// createClusterIssuer creates a ClusterIssuer, Ready or not, and deletes it when the test ends.
func createClusterIssuer(t *testing.T, name string, ready bool) {
	t.Helper()
	ctx := context.Background()
	ci := &cmapi.ClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: name}}},
	}
	if err := env.Client.Create(ctx, ci); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ci) })
	if ready {
		setIssuerReady(t, name)
	}
}

func setIssuerReady(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	ci := &cmapi.ClusterIssuer{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, ci); err != nil {
		t.Fatal(err)
	}
	ci.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue,
		Reason: "KeyPairVerified", Message: "Signing CA verified", ObservedGeneration: ci.Generation}}
	if err := env.Client.Status().Update(ctx, ci); err != nil {
		t.Fatal(err)
	}
}

// meshCA reads the mesh CA Certificate of a control plane namespace.
func meshCA(namespace string) (*cmapi.Certificate, error) {
	c := &cmapi.Certificate{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: render.CACertificateName}, c)
	return c, err
}

// issue plays cert-manager issuing the mesh CA for the Certificate's current
// spec: Ready at its generation, with the given revision and expiry.
func issue(t *testing.T, namespace string, revision int, notAfter time.Time) {
	t.Helper()
	eventually(t, timeout, "mesh CA issued", func() error {
		c, err := meshCA(namespace)
		if err != nil {
			return err
		}
		c.Status = cmapi.CertificateStatus{
			Conditions: []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue,
				Reason: "Ready", Message: "Certificate is up to date and has not expired", ObservedGeneration: c.Generation}},
			NotBefore:   &metav1.Time{Time: notAfter.Add(-90 * 24 * time.Hour)},
			NotAfter:    &metav1.Time{Time: notAfter},
			RenewalTime: &metav1.Time{Time: notAfter.Add(-30 * 24 * time.Hour)},
			Revision:    ptr.To(revision),
		}
		return env.Client.Status().Update(context.Background(), c)
	})
}

func istiodOf(t *testing.T, namespace string) (*appsv1.Deployment, error) {
	t.Helper()
	d := &appsv1.Deployment{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: render.IstiodName(render.DefaultRevision)}, d)
	return d, err
}

func certManagerCA(issuer string) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{
			Type:      meshv1alpha1.CertificateAuthorityCertManager,
			IssuerRef: &meshv1alpha1.CertificateAuthorityIssuerRef{Kind: meshv1alpha1.IssuerKindClusterIssuer, Name: issuer},
		}
	}
}

func caCondition(t *testing.T, name string) string {
	t.Helper()
	c := condition(t, name, meshv1alpha1.ConditionCertificateAuthorityReady)
	if c == nil {
		return "none"
	}
	return fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
}

// TestMeshCAFromCertManager is a user's story with the mesh CA from
// cert-manager, installed after the operator started; each step builds on
// the previous one.
func TestMeshCAFromCertManager(t *testing.T) {
	withoutCertManager(t)
	startManager(t, managerOpts{})
	ctx := context.Background()
	issuer := fmt.Sprintf("mesh-root-%d", testNamespaceSeq+1)
	mi := createSample(t, certManagerCA(issuer))
	ns := mi.Spec.Namespace
	story := t // issuers live as long as the story, not the step that creates them
	var istiodGeneration int64

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"without cert-manager nothing is applied and the condition names it", func(t *testing.T) {
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionFalse, meshv1alpha1.ReasonCertManagerNotInstalled)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonCertManagerNotInstalled)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonCertManagerNotInstalled)
			if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); !strings.Contains(c.Message, "install it to issue the mesh CA from ClusterIssuer "+issuer) {
				t.Errorf("Ready says %q", c.Message)
			}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
				t.Errorf("the control plane namespace was created (%v): nothing may be applied without the CA", err)
			}
			if got := getMI(t, mi.Name); got.Status.ObservedGeneration != got.Generation || got.Status.CertificateAuthority == nil || got.Status.CertificateAuthority.Ready {
				t.Errorf("status %+v, want the generation judged and the CA not ready", got.Status)
			}
		}},
		{"cert-manager installed later: the missing issuer is named", func(t *testing.T) {
			installCertManager(t)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionFalse, meshv1alpha1.ReasonIssuerNotFound)
			if c := caCondition(t, mi.Name); !strings.Contains(c, "ClusterIssuer "+issuer+" (spec.security.certificateAuthority.issuerRef) does not exist") {
				t.Errorf("CertificateAuthorityReady says %q", c)
			}
		}},
		{"an issuer not Ready is named and still nothing is applied", func(t *testing.T) {
			createClusterIssuer(story, issuer, false)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionFalse, meshv1alpha1.ReasonIssuerNotReady)
			if _, err := meshCA(ns); !apierrors.IsNotFound(err) {
				t.Errorf("the Certificate exists (%v) while its issuer is not Ready", err)
			}
		}},
		{"once the issuer is Ready the Certificate is applied and istiod waits for it", func(t *testing.T) {
			setIssuerReady(t, issuer)
			var c *cmapi.Certificate
			eventually(t, timeout, "the mesh CA Certificate", func() (err error) { c, err = meshCA(ns); return err })
			s := c.Spec
			if !s.IsCA || s.SecretName != render.CASecretName || s.IssuerRef.Name != issuer || s.IssuerRef.Kind != "ClusterIssuer" || !metav1.IsControlledBy(c, mi) {
				t.Errorf("Certificate spec %+v owners %+v", s, c.OwnerReferences)
			}
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionFalse, meshv1alpha1.ReasonCertificateIssuing)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonCertificateIssuing)
			if _, err := istiodOf(t, ns); !apierrors.IsNotFound(err) {
				t.Errorf("istiod exists (%v) before its CA is issued: it would start with its own", err)
			}
		}},
		{"istiod starts with the issued CA, and status shows it", func(t *testing.T) {
			notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
			issue(t, ns, 1, notAfter)
			var d *appsv1.Deployment
			eventually(t, timeout, "istiod", func() (err error) { d, err = istiodOf(t, ns); return err })
			if got := d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]; got != "ClusterIssuer/"+issuer {
				t.Errorf("istiod's %s = %q", render.AnnotationCertificateAuthority, got)
			}
			mounted := false
			for _, v := range d.Spec.Template.Spec.Volumes {
				mounted = mounted || (v.Secret != nil && v.Secret.SecretName == render.CASecretName)
			}
			if !mounted {
				t.Errorf("istiod does not mount %s: %+v", render.CASecretName, d.Spec.Template.Spec.Volumes)
			}
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionTrue, meshv1alpha1.ReasonCertificateIssued)
			makeAvailable(t, ns, d.Name)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
			st := getMI(t, mi.Name).Status.CertificateAuthority
			if st == nil || !st.Ready || st.Issuer != "ClusterIssuer/"+issuer || st.Certificate != ns+"/"+render.CACertificateName ||
				st.NotAfter == nil || !st.NotAfter.Time.Equal(notAfter) || st.Revision == nil || *st.Revision != 1 {
				t.Errorf("status.certificateAuthority = %+v", st)
			}
			d, _ = istiodOf(t, ns)
			istiodGeneration = d.Generation
		}},
		{"a renewal shows in status and restarts nothing", func(t *testing.T) {
			notAfter := time.Now().Add(180 * 24 * time.Hour).Truncate(time.Second)
			issue(t, ns, 2, notAfter)
			eventually(t, timeout, "status shows the renewal", func() error {
				st := getMI(t, mi.Name).Status.CertificateAuthority
				if st == nil || st.Revision == nil || *st.Revision != 2 || !st.NotAfter.Time.Equal(notAfter) {
					return fmt.Errorf("status.certificateAuthority = %+v", st)
				}
				return nil
			})
			if d, err := istiodOf(t, ns); err != nil || d.Generation != istiodGeneration {
				t.Errorf("istiod changed on a renewal (generation %d, was %d; %v): istiod reloads a renewed intermediate itself", d.Generation, istiodGeneration, err)
			}
		}},
		{"a Certificate edited by someone else is put back", func(t *testing.T) {
			c, err := meshCA(ns)
			if err != nil {
				t.Fatal(err)
			}
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"isCA":false}}`))
			if err := env.Client.Patch(ctx, c, patch, client.FieldOwner("someone")); err != nil {
				t.Fatal(err)
			}
			eventually(t, timeout, "isCA restored", func() error {
				c, err := meshCA(ns)
				if err != nil || !c.Spec.IsCA {
					return fmt.Errorf("isCA %v (%v)", c.Spec.IsCA, err)
				}
				return nil
			})
			issue(t, ns, 2, getMI(t, mi.Name).Status.CertificateAuthority.NotAfter.Time)
		}},
		{"the issuer gone: named, the current CA keeps serving", func(t *testing.T) {
			if err := env.Client.Delete(ctx, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: issuer}}); err != nil {
				t.Fatal(err)
			}
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionFalse, meshv1alpha1.ReasonIssuerNotFound)
			if c := caCondition(t, mi.Name); !strings.Contains(c, "cannot be renewed") {
				t.Errorf("CertificateAuthorityReady says %q", c)
			}
			if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
				t.Errorf("Ready = %+v: the CA in cacerts still serves", c)
			}
			if d, err := istiodOf(t, ns); err != nil || d.Generation != istiodGeneration {
				t.Errorf("istiod changed (%v)", err)
			}
			createClusterIssuer(story, issuer, true)
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionTrue, meshv1alpha1.ReasonCertificateIssued)
		}},
		{"another issuer on the running mesh is refused and changes nothing", func(t *testing.T) {
			// envtest runs no admission webhook: this is the reconciler's own check.
			createClusterIssuer(story, issuer+"-new", true)
			updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
				got.Spec.Security.CertificateAuthority.IssuerRef.Name = issuer + "-new"
			})
			waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonCertificateAuthorityChangeRefused)
			if c := condition(t, mi.Name, meshv1alpha1.ConditionStalled); !strings.Contains(c.Message, meshv1alpha1.AnnotationAllowCertificateAuthorityChange) {
				t.Errorf("Stalled says %q, not how to do it safely", c.Message)
			}
			if c, err := meshCA(ns); err != nil || c.Spec.IssuerRef.Name != issuer {
				t.Errorf("the Certificate changed to %+v (%v)", c.Spec.IssuerRef, err)
			}
		}},
		{"with the annotation istiod moves to the new CA once it is issued", func(t *testing.T) {
			updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
				got.Annotations = map[string]string{meshv1alpha1.AnnotationAllowCertificateAuthorityChange: "true"}
			})
			eventually(t, timeout, "the Certificate follows the new issuer", func() error {
				c, err := meshCA(ns)
				if err != nil || c.Spec.IssuerRef.Name != issuer+"-new" {
					return fmt.Errorf("issuerRef %+v (%v)", c.Spec.IssuerRef, err)
				}
				return nil
			})
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionFalse, meshv1alpha1.ReasonCertificateIssuing)
			if d, err := istiodOf(t, ns); err != nil || d.Spec.Template.Annotations[render.AnnotationCertificateAuthority] != "ClusterIssuer/"+issuer {
				t.Errorf("istiod moved before the new CA was issued (%v)", err)
			}
			issue(t, ns, 3, time.Now().Add(90*24*time.Hour))
			eventually(t, timeout, "istiod restarts onto the new CA", func() error {
				d, err := istiodOf(t, ns)
				if err != nil {
					return err
				}
				if got := d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]; got != "ClusterIssuer/"+issuer+"-new" {
					return fmt.Errorf("istiod runs with %q", got)
				}
				return nil
			})
			waitCondition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady, metav1.ConditionTrue, meshv1alpha1.ReasonCertificateIssued)
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %q failed; the rest depend on it", step.name)
		}
	}
}

// TestMeshCABackToSelfSignedBeforeTheMeshRuns: before anything runs, the CA
// may change back to istiod's own: the Certificate goes, istiod is installed
// without it, and the CA's status and condition are dropped.
func TestMeshCABackToSelfSignedBeforeTheMeshRuns(t *testing.T) {
	installCertManager(t)
	startManager(t, managerOpts{})
	issuer := fmt.Sprintf("mesh-root-%d", testNamespaceSeq+1)
	createClusterIssuer(t, issuer, true)
	mi := createSample(t, certManagerCA(issuer))
	ns := mi.Spec.Namespace
	eventually(t, timeout, "the mesh CA Certificate", func() error { _, err := meshCA(ns); return err })

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{Type: meshv1alpha1.CertificateAuthoritySelfSigned}
	})
	eventually(t, timeout, "the Certificate deleted", func() error {
		if _, err := meshCA(ns); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	eventually(t, timeout, "istiod installed with its own CA", func() error {
		d, err := istiodOf(t, ns)
		if err != nil {
			return err
		}
		if ca, ok := d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]; ok {
			return fmt.Errorf("istiod carries %s=%q", render.AnnotationCertificateAuthority, ca)
		}
		return nil
	})
	eventually(t, timeout, "the CA's status and condition dropped", func() error {
		st := getMI(t, mi.Name).Status
		if st.CertificateAuthority != nil || condition(t, mi.Name, meshv1alpha1.ConditionCertificateAuthorityReady) != nil {
			return errors.New(caCondition(t, mi.Name))
		}
		return nil
	})
}

// TestAMeshCAPassThatChangesNothingWritesNothing: with the CA issued, passes
// that find nothing new neither re-apply the Certificate nor touch status.
func TestAMeshCAPassThatChangesNothingWritesNothing(t *testing.T) {
	installCertManager(t)
	w := &writeCounter{}
	startManager(t, managerOpts{funcs: w.funcs()})
	issuer := fmt.Sprintf("mesh-root-%d", testNamespaceSeq+1)
	createClusterIssuer(t, issuer, true)
	mi := createSample(t, certManagerCA(issuer))
	ns := mi.Spec.Namespace
	eventually(t, timeout, "the mesh CA Certificate", func() error { _, err := meshCA(ns); return err })
	issue(t, ns, 1, time.Now().Add(90*24*time.Hour))
	eventually(t, timeout, "istiod", func() error { _, err := istiodOf(t, ns); return err })
	makeAvailable(t, ns, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	settled := w.settle(t, 2*time.Second)

	for i := range 3 {
		updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
			got.Annotations = map[string]string{"example.com/touched": fmt.Sprint(i)}
		})
		time.Sleep(time.Second)
	}
	if n := w.n.Load(); n != settled {
		t.Errorf("%d writes by passes that changed nothing (last: %v)", n-settled, w.last.Load())
	}
}

// updateMI changes a MeshInstall, retrying on conflict: the operator writes
// it too (its finalizer, its status).
func updateMI(t *testing.T, name string, change func(*meshv1alpha1.MeshInstall)) {
	t.Helper()
	eventually(t, timeout, "update MeshInstall "+name, func() error {
		got := getMI(t, name)
		change(got)
		return env.Client.Update(context.Background(), got)
	})
}
