package render

import (
	"cmp"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Verb sets of the istiod chart's rules.
var (
	read           = []string{"get", "list", "watch"}
	readWrite      = []string{"get", "watch", "list", "update", "patch", "create", "delete"}
	statusPut      = []string{"update", "patch"}
	istioAPIGroups = []string{"config.istio.io", "security.istio.io", "networking.istio.io",
		"authentication.istio.io", "rbac.istio.io", "telemetry.istio.io", "extensions.istio.io"}
)

// readerServiceAccountName is the cluster's single Istio reader identity
// (Istio's base chart), used for multi-cluster remote secrets. Shared
// renders it; every revision's reader ClusterRoleBinding binds it.
const readerServiceAccountName = "istio-reader-service-account"

func rule(groups, resources, verbs []string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs}
}

func strs(s ...string) []string { return s }

// istiodClusterRules are istiod's cluster permissions, exactly the istiod
// chart's for the default values (pilotCertProvider istiod, analysis and
// node untainting off). spec.pilot.env MCS_API_GROUP and
// ENABLE_CLUSTER_TRUST_BUNDLE_API change them as they change the chart's.
func istiodClusterRules(env map[string]string) []rbacv1.PolicyRule {
	mcs := cmp.Or(env["MCS_API_GROUP"], "multicluster.x-k8s.io")
	rules := []rbacv1.PolicyRule{
		// sidecar injection and config validation webhook controllers
		rule(strs("admissionregistration.k8s.io"), strs("mutatingwebhookconfigurations"), strs("get", "list", "watch", "update", "patch")),
		rule(strs("admissionregistration.k8s.io"), strs("validatingwebhookconfigurations"), strs("get", "list", "watch", "update")),
		// Istio configuration
		rule(istioAPIGroups, strs("*"), strs("get", "watch", "list")),
		rule(strs("networking.istio.io"), strs("workloadentries"), readWrite),
		rule(strs("networking.istio.io"), strs("workloadentries/status", "serviceentries/status"), readWrite),
		rule(strs("security.istio.io"), strs("authorizationpolicies/status"), readWrite),
		rule(strs(""), strs("services/status"), readWrite),
		// auto-detection of installed CRDs
		rule(strs("apiextensions.k8s.io"), strs("customresourcedefinitions"), read),
		// discovery and routing
		rule(strs(""), strs("pods", "nodes", "services", "namespaces", "endpoints"), read),
		rule(strs("discovery.k8s.io"), strs("endpointslices"), read),
		// ingress controller
		rule(strs("networking.k8s.io"), strs("ingresses", "ingressclasses"), read),
		rule(strs("networking.k8s.io"), strs("ingresses/status"), strs("*")),
		// the CA's namespace controller (istio-ca-root-cert in every namespace)
		rule(strs(""), strs("configmaps"), strs("create", "get", "list", "watch", "update")),
	}
	if env["ENABLE_CLUSTER_TRUST_BUNDLE_API"] == "true" {
		rules = append(rules,
			rule(strs("certificates.k8s.io"), strs("clustertrustbundles"), strs("update", "create", "delete", "list", "watch", "get")),
			rbacv1.PolicyRule{APIGroups: strs("certificates.k8s.io"), Resources: strs("signers"),
				ResourceNames: strs("istio.io/istiod-ca"), Verbs: strs("attest")})
	}
	return append(rules,
		// JWT verification and gateway SDS authorization
		rule(strs("authentication.k8s.io"), strs("tokenreviews"), strs("create")),
		rule(strs("authorization.k8s.io"), strs("subjectaccessreviews"), strs("create")),
		// Kubernetes Gateway API and Inference Extension
		rule(strs("gateway.networking.k8s.io", "gateway.networking.x-k8s.io"), strs("*"), strs("get", "watch", "list")),
		rule(strs("gateway.networking.x-k8s.io"), strs("xbackendtrafficpolicies/status"), statusPut),
		rule(strs("gateway.networking.k8s.io"), strs("backendtlspolicies/status", "gatewayclasses/status",
			"gateways/status", "grpcroutes/status", "httproutes/status", "referencegrants/status",
			"tcproutes/status", "tlsroutes/status", "udproutes/status", "listenersets/status"), statusPut),
		rule(strs("gateway.networking.k8s.io"), strs("gatewayclasses"), strs("create", "update", "patch", "delete")),
		rule(strs("inference.networking.k8s.io"), strs("inferencepools"), strs("get", "watch", "list")),
		rule(strs("inference.networking.k8s.io"), strs("inferencepools/status"), statusPut),
		// multi-cluster secrets
		rule(strs(""), strs("secrets"), strs("get", "watch", "list")),
		// multi-cluster services
		rule(strs(mcs), strs("serviceexports"), strs("get", "watch", "list", "create", "delete")),
		rule(strs(mcs), strs("serviceimports"), strs("get", "watch", "list")),
	)
}

// gatewayControllerRules let istiod deploy Gateway API gateways.
var gatewayControllerRules = []rbacv1.PolicyRule{
	rule(strs("apps"), strs("deployments"), readWrite),
	rule(strs("autoscaling"), strs("horizontalpodautoscalers"), readWrite),
	rule(strs("policy"), strs("poddisruptionbudgets"), readWrite),
	rule(strs(""), strs("services"), readWrite),
	rule(strs(""), strs("serviceaccounts"), readWrite),
}

// istiodNamespaceRules are istiod's permissions in its own namespace.
var istiodNamespaceRules = []rbacv1.PolicyRule{
	// dry-run of an invalid Gateway, to prove validation works before failing closed
	rule(strs("networking.istio.io"), strs("gateways"), strs("create")),
	// the CA secret (istio-ca-secret)
	rule(strs(""), strs("secrets"), strs("create", "get", "watch", "list", "update", "delete")),
	// the status controller deletes its distribution report ConfigMap
	rule(strs(""), strs("configmaps"), strs("delete")),
	// leader election
	rule(strs("coordination.k8s.io"), strs("leases"), strs("get", "update", "patch", "create")),
}

// readerClusterRules are the reader role's, for multi-cluster remote secrets.
func readerClusterRules(env map[string]string) []rbacv1.PolicyRule {
	mcs := cmp.Or(env["MCS_API_GROUP"], "multicluster.x-k8s.io")
	return []rbacv1.PolicyRule{
		rule(istioAPIGroups, strs("*"), read),
		rule(strs(""), strs("endpoints", "pods", "services", "nodes", "replicationcontrollers", "namespaces", "secrets", "configmaps"), read),
		rule(strs("networking.istio.io"), strs("workloadentries"), strs("get", "watch", "list")),
		rule(strs("networking.x-k8s.io", "gateway.networking.k8s.io"), strs("gateways"), strs("get", "watch", "list")),
		rule(strs("apiextensions.k8s.io"), strs("customresourcedefinitions"), read),
		rule(strs("discovery.k8s.io"), strs("endpointslices"), read),
		rule(strs(mcs), strs("serviceexports"), strs("get", "list", "watch", "create", "delete")),
		rule(strs(mcs), strs("serviceimports"), read),
		rule(strs("apps"), strs("replicasets"), read),
		rule(strs("authentication.k8s.io"), strs("tokenreviews"), strs("create")),
		rule(strs("authorization.k8s.io"), strs("subjectaccessreviews"), strs("create")),
	}
}

// gatewayDeploymentControllerEnabled follows the chart: the gateway
// controller's role exists unless PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER=false.
func gatewayDeploymentControllerEnabled(env map[string]string) bool {
	return env["PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER"] != "false"
}

// istiodRBAC returns istiod's ServiceAccount and its roles and bindings.
func istiodRBAC(mi *meshv1alpha1.MeshInstall, rev Revision) []client.Object {
	ns := namespace(mi)
	env := mi.Spec.Pilot.Env
	sa := IstiodName(rev.Name)
	labels := func() map[string]string { return istiodLabels(mi, rev) }
	istiodSubject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}

	objs := []client.Object{
		&corev1.ServiceAccount{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ServiceAccount"),
			ObjectMeta: objectMeta(sa, ns, labels()),
		},
	}
	clusterRole := func(prefix string, rules []rbacv1.PolicyRule, l map[string]string, subject rbacv1.Subject) {
		name := prefix + rev.suffix() + "-" + ns
		objs = append(objs,
			&rbacv1.ClusterRole{
				TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "ClusterRole"),
				ObjectMeta: objectMeta(name, "", l),
				Rules:      rules,
			},
			&rbacv1.ClusterRoleBinding{
				TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "ClusterRoleBinding"),
				ObjectMeta: objectMeta(name, "", l),
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
				Subjects:   []rbacv1.Subject{subject},
			})
	}
	clusterRole("istiod-clusterrole", istiodClusterRules(env), labels(), istiodSubject)
	if gatewayDeploymentControllerEnabled(env) {
		clusterRole("istiod-gateway-controller", gatewayControllerRules, labels(), istiodSubject)
	}
	reader := with(labels(), labelApp, "istio-reader", labelName, "istio-reader")
	clusterRole("istio-reader-clusterrole", readerClusterRules(env), reader,
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: readerServiceAccountName, Namespace: ns})

	objs = append(objs,
		&rbacv1.Role{
			TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "Role"),
			ObjectMeta: objectMeta(sa, ns, labels()),
			Rules:      istiodNamespaceRules,
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "RoleBinding"),
			ObjectMeta: objectMeta(sa, ns, labels()),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
			Subjects:   []rbacv1.Subject{istiodSubject},
		})
	return objs
}
