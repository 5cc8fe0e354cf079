// Package rbac checks the permissions config/rbac grants the operator's
// ServiceAccount against a list that says why each one is needed: a
// permission nobody explained, or an explained one that is gone, fails.
package rbac

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// rbacDir holds role.yaml (generated from the +kubebuilder:rbac markers) and
// the hand-written roles and bindings.
var rbacDir = filepath.Join("..", "..", "config", "rbac")

// The operator's ServiceAccount, as config/rbac names it (kustomize prefixes
// it and moves "system" to the operator's namespace).
const (
	serviceAccount    = "controller-manager"
	operatorNamespace = "system"
)

// Scopes of a permission.
const (
	cluster = "cluster"
	// own is the operator's namespace.
	own = "namespace " + operatorNamespace
)

// Verb sets: reading through the manager's cache, and what server-side
// apply (create, patch) and pruning (delete) take.
const (
	read  = "get list watch"
	apply = "create patch"
	owned = read + " " + apply + " delete"
)

// permission is one resource the operator may act on, and why.
type permission struct {
	group, resource string
	verbs           string
	scope           string
	why             string
}

// permissions are everything the operator's ServiceAccount holds.
var permissions = []permission{
	// The MeshInstall reconciler (controllers/meshinstall/controller.go).
	{"mesh.meshkeeper.dev", "meshinstalls", read + " update", cluster,
		"the reconciler and the validating webhook read MeshInstalls; the finalizer is added and removed with update"},
	{"mesh.meshkeeper.dev", "meshinstalls/status", "patch", cluster, "status is written as a merge patch"},
	{"mesh.meshkeeper.dev", "meshinstalls/finalizers", "update", cluster,
		"owner references with blockOwnerDeletion, where OwnerReferencesPermissionEnforcement runs (OpenShift)"},
	{"", "namespaces", read + " " + apply, cluster,
		"the control plane's and gateways' namespaces are created and labelled, never deleted (they may hold users' objects); every namespace's labels select injection"},
	{"", "configmaps", owned, cluster, "istiod's mesh config, the injection templates and the routing the injector serves"},
	{"", "services", owned, cluster, "istiod's and the gateways' Services"},
	{"", "serviceaccounts", owned, cluster, "istiod's, the gateways' and the Istio reader's identities"},
	{"apps", "deployments", owned, cluster, "istiod and the gateways; patch also restarts users' Deployments in a data plane rollout; an istiod meshkeeper did not make is read (get) for its version and installer (ForeignIstioInstallation)"},
	{"apps", "statefulsets", read + " patch", cluster, "a data plane rollout reads users' StatefulSets and restarts them"},
	{"apps", "daemonsets", owned, cluster, "the istio-cni node agent (spec.cni) in kube-system or the control plane's namespace, applied and pruned; " +
		"a data plane rollout reads users' DaemonSets and restarts them (patch). The agent's ClusterRoles need nothing more: " +
		"escalate and bind on roles (above) let the operator grant its rules (reading pods, nodes, namespaces; the repair role's events, " +
		"pod deletion or pods/status; with Multus the privileged SecurityContextConstraints) without holding them"},
	{"k8s.cni.cncf.io", "network-attachment-definitions named istio-cni", "get", cluster,
		"with spec.cni.provider multus, routing waits for the NetworkAttachmentDefinition default/istio-cni injected pods ask Multus for; that one object is read, nothing in namespace default is written"},
	{"batch", "cronjobs", read, cluster, "a revision is not pruned while a CronJob's pod template names it (its next run would be injected by it)"},
	{"batch", "jobs", read, cluster, "a revision is not pruned while an unfinished Job's pod template names it"},
	{"policy", "poddisruptionbudgets", owned, cluster, "istiod's and the gateways' PodDisruptionBudgets; users' are read so that no restart takes a workload below its budget"},
	{"autoscaling", "horizontalpodautoscalers", owned, cluster, "istiod's and the gateways' autoscalers"},
	{"", "pods", read, cluster, "the data plane inventory counts every pod; a revision is pruned only when no running pod uses it"},
	{"", "nodes", read, cluster,
		"spec.injection.nativeSidecars Auto is decided from the nodes' kubelet versions, as Istio's injector decides it (cached trimmed to that field)"},
	{"events.k8s.io", "events", "create patch", cluster, "Events on MeshInstalls"},
	{"rbac.authorization.k8s.io", "clusterroles", owned + " escalate bind", cluster,
		"istiod's and the reader's ClusterRoles; escalate and bind because their rules (Istio's chart) hold wildcards the operator must not hold"},
	{"rbac.authorization.k8s.io", "roles", owned + " escalate bind", cluster,
		"istiod's Role (its CA Secret) and the gateways' (their certificates); escalate and bind as for ClusterRoles"},
	{"rbac.authorization.k8s.io", "clusterrolebindings", owned, cluster, "bind istiod's and the reader's ClusterRoles"},
	{"rbac.authorization.k8s.io", "rolebindings", owned, cluster, "bind istiod's and the gateways' Roles"},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", owned, cluster,
		"the sidecar injector's configuration; the certificate controller reads it to know where its CA is trusted; every one is read (cached trimmed) to find Istio injectors meshkeeper did not make"},
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", owned, cluster,
		"the MeshInstall validator's (with the CA bundle) and istiod's config validator, created failing open; every one is read (cached trimmed) to find Istio validators meshkeeper did not make"},
	{"apiextensions.k8s.io", "customresourcedefinitions", read + " " + apply, cluster,
		"Istio's CRDs are installed and upgraded, never deleted"},
	{"security.istio.io", "peerauthentications", owned, cluster, "the mesh-wide mTLS policy (spec.security.mtls)"},
	{"cert-manager.io", "certificates", owned, cluster,
		"the mesh CA's Certificate (spec.security.certificateAuthority CertManager): applied, watched for its readiness and expiry, deleted when istiod goes back to its own CA; with --webhook-cert-provider=cert-manager, the webhook serving certificate's too"},
	{"cert-manager.io", "issuers", "get", cluster, "the mesh CA's Issuer is read once per pass to report whether it exists and is Ready, and the webhook certificate's (--webhook-cert-issuer-*)"},
	{"cert-manager.io", "clusterissuers", "get", cluster, "the mesh CA's ClusterIssuer is read once per pass to report whether it exists and is Ready, and the webhook certificate's (--webhook-cert-issuer-*)"},
	// The webhook certificate controller (controllers/webhookcert).
	{"", "secrets", read + " create update", own,
		"the webhook certificate Secret, updated with optimistic concurrency; no Secret outside the operator's namespace"},
	// Leader election (leader_election_role.yaml).
	{"coordination.k8s.io", "leases", "get create update", own, "the leader election Lease"},
	{"", "events", "create patch", own, "leader election Events"},
	// The metrics endpoint's authentication and authorization (metrics_auth_role.yaml).
	{"authentication.k8s.io", "tokenreviews", "create", cluster, "authenticate the bearer tokens of metrics scrapers"},
	{"authorization.k8s.io", "subjectaccessreviews", "create", cluster, "authorize metrics scrapers for GET /metrics"},
}

func TestOperatorPermissionsAreExplained(t *testing.T) {
	objs, err := readDir(rbacDir)
	if err != nil {
		t.Fatal(err)
	}
	generated, err := readFile(filepath.Join(rbacDir, "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	granted, err := grantedRules(objs, generated)
	if err != nil {
		t.Error(err)
	}

	have := map[key][]string{}
	for _, g := range granted {
		r := g.rule
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("%s: a rule with nonResourceURLs (%v): extend this test to list it", g.source, r.NonResourceURLs)
		}
		// A rule limited to named objects is listed as "<resource> named <names>".
		named := ""
		if len(r.ResourceNames) > 0 {
			named = " named " + strings.Join(r.ResourceNames, ",")
		}
		for _, s := range slices.Concat(r.APIGroups, r.Resources, r.Verbs) {
			if strings.Contains(s, "*") {
				t.Errorf("%s: wildcard %q in a rule for %v %v", g.source, s, r.APIGroups, r.Resources)
			}
		}
		for _, group := range r.APIGroups {
			for _, resource := range r.Resources {
				k := key{group, resource + named, g.scope}
				have[k] = sortedUnique(append(have[k], r.Verbs...))
			}
		}
	}

	want := map[key][]string{}
	for _, p := range permissions {
		k := key{p.group, p.resource, p.scope}
		if _, dup := want[k]; dup {
			t.Errorf("%s is listed twice", k)
		}
		if strings.TrimSpace(p.why) == "" {
			t.Errorf("%s is not explained", k)
		}
		want[k] = sortedUnique(strings.Fields(p.verbs))
	}

	for _, k := range sortedKeys(have) {
		w, listed := want[k]
		switch {
		case !listed:
			t.Errorf("%s %v is granted but not listed here with a reason", k, have[k])
		case !slices.Equal(have[k], w):
			t.Errorf("%s: granted %v, listed %v (granted and not listed: %v; listed and not granted: %v)",
				k, have[k], w, minus(have[k], w), minus(w, have[k]))
		}
	}
	for _, k := range sortedKeys(want) {
		if _, ok := have[k]; !ok {
			t.Errorf("%s %v is listed but not granted", k, want[k])
		}
	}
}

// key is a resource in a scope.
type key struct{ group, resource, scope string }

func (k key) String() string {
	group := k.group
	if group == "" {
		group = "core"
	}
	return fmt.Sprintf("%s/%s (%s)", group, k.resource, k.scope)
}

func (k key) compare(o key) int {
	return strings.Compare(k.scope+" "+k.group+" "+k.resource, o.scope+" "+o.group+" "+o.resource)
}

// grantedRule is a rule the operator holds, the scope it holds it in and the role it comes from.
type grantedRule struct {
	rule   rbacv1.PolicyRule
	scope  string
	source string
}

// grantedRules returns the rules of every role bound to the operator's
// ServiceAccount and of every role in role.yaml, each of which must be bound
// to it (a Role there without a RoleBinding grants nothing).
func grantedRules(objs, generated []any) ([]grantedRule, error) {
	clusterRoles := map[string]*rbacv1.ClusterRole{}
	roles := map[string]*rbacv1.Role{} // by namespace/name
	for _, o := range objs {
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			clusterRoles[r.Name] = r
		case *rbacv1.Role:
			roles[r.Namespace+"/"+r.Name] = r
		}
	}
	bound := map[string]bool{} // "Kind namespace/name" of the roles bound
	var out []grantedRule
	var errs []error
	grant := func(ref rbacv1.RoleRef, bindingNamespace string) {
		scope := cluster
		if bindingNamespace != "" {
			scope = "namespace " + bindingNamespace
		}
		switch ref.Kind {
		case "ClusterRole":
			r, ok := clusterRoles[ref.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("a binding refers to ClusterRole %s, which config/rbac lacks", ref.Name))
				return
			}
			bound["ClusterRole /"+ref.Name] = true
			for _, rule := range r.Rules {
				out = append(out, grantedRule{rule, scope, "ClusterRole " + ref.Name})
			}
		case "Role":
			r, ok := roles[bindingNamespace+"/"+ref.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("a binding refers to Role %s/%s, which config/rbac lacks", bindingNamespace, ref.Name))
				return
			}
			bound["Role "+bindingNamespace+"/"+ref.Name] = true
			for _, rule := range r.Rules {
				out = append(out, grantedRule{rule, scope, "Role " + bindingNamespace + "/" + ref.Name})
			}
		}
	}
	for _, o := range objs {
		switch b := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			if bindsOperator(b.Subjects) {
				grant(b.RoleRef, "")
			}
		case *rbacv1.RoleBinding:
			if bindsOperator(b.Subjects) {
				grant(b.RoleRef, b.Namespace)
			}
		}
	}
	for _, o := range generated {
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			if !bound["ClusterRole /"+r.Name] {
				errs = append(errs, fmt.Errorf("role.yaml: ClusterRole %s is not bound to the operator's ServiceAccount", r.Name))
			}
		case *rbacv1.Role:
			if !bound["Role "+r.Namespace+"/"+r.Name] {
				errs = append(errs, fmt.Errorf("role.yaml: Role %s/%s is not bound to the operator's ServiceAccount", r.Namespace, r.Name))
			}
		}
	}
	return out, errors.Join(errs...)
}

func bindsOperator(subjects []rbacv1.Subject) bool {
	return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == serviceAccount && s.Namespace == operatorNamespace
	})
}

// readDir decodes the RBAC objects of every YAML file in dir.
func readDir(dir string) ([]any, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []any
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		objs, err := readFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// readFile decodes the roles and bindings of a multi-document YAML file.
func readFile(path string) ([]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []any
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var obj any
		switch meta.Kind {
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "Role":
			obj = &rbacv1.Role{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, obj)
	}
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// minus is what a holds and b does not.
func minus(a, b []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(s string) bool { return slices.Contains(b, s) })
}

func sortedKeys(m map[key][]string) []key {
	keys := make([]key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, key.compare)
	return keys
}

// TestMeshInstallWritersAreChosen checks that no role config/rbac ships
// lets anyone write MeshInstalls by aggregation into the cluster's admin,
// edit or view roles: writing one is cluster-admin-equivalent (it chooses
// the images istiod and the proxies run), so it is granted on purpose.
func TestMeshInstallWritersAreChosen(t *testing.T) {
	objs, err := readDir(rbacDir)
	if err != nil {
		t.Fatal(err)
	}
	writes := []string{"create", "update", "patch", "delete", "deletecollection", "*"}
	for _, o := range objs {
		r, ok := o.(*rbacv1.ClusterRole)
		if !ok {
			continue
		}
		var aggregated []string
		for l, v := range r.Labels {
			if strings.HasPrefix(l, "rbac.authorization.k8s.io/aggregate-to-") && v == "true" {
				aggregated = append(aggregated, strings.TrimPrefix(l, "rbac.authorization.k8s.io/aggregate-to-"))
			}
		}
		if len(aggregated) == 0 {
			continue
		}
		for _, rule := range r.Rules {
			if (slices.Contains(rule.APIGroups, "mesh.meshkeeper.dev") || slices.Contains(rule.APIGroups, "*")) &&
				(slices.Contains(rule.Resources, "meshinstalls") || slices.Contains(rule.Resources, "*")) &&
				slices.ContainsFunc(rule.Verbs, func(v string) bool { return slices.Contains(writes, v) }) {
				t.Errorf("ClusterRole %s grants %v on MeshInstalls and is aggregated into %v: whoever holds those roles could run any image as istiod", r.Name, rule.Verbs, aggregated)
			}
		}
	}
}
