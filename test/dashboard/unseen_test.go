package dashboard

// unseen is a metric, or labels of one, that the recorded upgrade (a
// healthy canary upgrade, the end-to-end one) cannot show.
type unseen struct {
	why string
	// labels the operator gives the metric beyond those the recording
	// shows (a label whose value is empty is not served).
	labels []string
	// values are label values it serves beyond those the recording shows.
	values map[string][]string
}

// unseenInAnUpgrade lists them. A dashboard query that reads only these may
// return nothing while the samples hold none of them; the alerts and
// their tests may use these labels.
var unseenInAnUpgrade = map[string]unseen{
	"meshkeeper_mesh_ca_expiry_timestamp_seconds": {why: "the mesh CA is istiod's own unless spec.security.certificateAuthority is CertManager", labels: []string{"meshinstall"}},
	"meshkeeper_reconcile_errors_total":           {why: "no pass fails in a healthy upgrade", labels: []string{"meshinstall", "reason"}},
	"meshkeeper_webhook_requests_shed_total":      {why: "no request is shed", labels: []string{"webhook"}},
	"meshkeeper_meshinstall_stalled":              {why: "it never stalls: its reason is empty", labels: []string{"reason"}},
	"meshkeeper_injection_requests_total": {why: "no pod is skipped, refused or failed: no reason, and no result but injected", labels: []string{"reason"},
		values: map[string][]string{"result": {"skipped", "refused", "error"}}}, // webhooks/inject_metrics.go
}
