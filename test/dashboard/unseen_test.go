package dashboard

// unseen is a metric, or labels of one, that the recorded upgrade (a
// healthy canary upgrade, the end-to-end one) cannot show.
type unseen struct {
	why string
	// labels the operator gives the metric beyond those the recording
	// shows (a label whose value is empty is not served).
	labels []string
}

// unseenInAnUpgrade lists them. A dashboard query that reads only these may
// return nothing while the samples hold none of them; the alerts and
// their tests may use these labels.
var unseenInAnUpgrade = map[string]unseen{
	"meshkeeper_mesh_ca_expiry_timestamp_seconds": {"the mesh CA is istiod's own unless spec.security.certificateAuthority is CertManager", []string{"meshinstall"}},
	"meshkeeper_reconcile_errors_total":           {"no pass fails in a healthy upgrade", []string{"meshinstall", "reason"}},
	"meshkeeper_webhook_requests_shed_total":      {"no request is shed", []string{"webhook"}},
	"meshkeeper_meshinstall_stalled":              {"it never stalls: its reason is empty", []string{"reason"}},
	"meshkeeper_injection_requests_total":         {"no pod is skipped, refused or failed: no reason", []string{"reason"}},
}
