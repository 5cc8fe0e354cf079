package chartgen

import (
	"strings"
	"testing"
)

func TestObjectTemplate(t *testing.T) {
	p, err := MakePlan(builds(nil))
	if err != nil {
		t.Fatal(err)
	}
	binding := object("rbac.authorization.k8s.io/v1", "RoleBinding", "mk-system", "mk-rolebinding")
	binding.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "kustomize", "app.kubernetes.io/name": "mk", "team": "mesh"})
	binding.Object["subjects"] = []any{map[string]any{"kind": "ServiceAccount", "name": "mk", "namespace": "mk-system"}}

	got, err := objectTemplate(p, ChartObject{Object: binding, Conditions: []string{".Values.a", ".Values.b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := templateHeader + `{{- if and (.Values.a) (.Values.b) }}
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  labels:
    team: mesh
    {{- include "meshkeeper.labels" . | nindent 4 }}
  name: mk-rolebinding
  namespace: '{{ .Release.Namespace }}'
subjects:
- kind: ServiceAccount
  name: mk
  namespace: '{{ .Release.Namespace }}'
{{- end }}
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestObjectTemplateKeepsConfigsText: template delimiters in config/'s
// text are escaped (Helm renders them as they are), and config/'s
// namespace becomes the release's inside longer strings too.
func TestObjectTemplateKeepsConfigsText(t *testing.T) {
	p, err := MakePlan(builds(nil))
	if err != nil {
		t.Fatal(err)
	}
	rule := object("monitoring.coreos.com/v1", "PrometheusRule", "mk-system", "mk-alerts")
	rule.Object["spec"] = map[string]any{"description": "{{ $labels.meshinstall }} stalled", "url": "https://svc.mk-system.svc"}
	got, err := objectTemplate(p, ChartObject{Object: rule})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"description: '{{`{{`}} $labels.meshinstall {{`}}`}} stalled'",
		"url: https://svc.{{ .Release.Namespace }}.svc",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
}

func TestManagerTemplate(t *testing.T) {
	p, err := MakePlan(builds(nil))
	if err != nil {
		t.Fatal(err)
	}
	p.ExtraArgs = []ConditionalArgs{{Condition: ".Values.x", Args: []string{"--x"}}}
	got, err := objectTemplate(p, ChartObject{Object: p.Manager})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  replicas: {{ .Values.replicaCount }}\n",
		`        image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"` + "\n",
		`        - "{{ if .Values.leaderElection.enabled }}--leader-elect{{ else }}--leader-elect=false{{ end }}"` + "\n",
		`        - "{{ if .Values.metrics.enabled }}--metrics-bind-address=:8443{{ else }}--metrics-bind-address=0{{ end }}"` + "\n",
		"        {{- if .Values.x }}\n        - \"--x\"\n        {{- end }}\n",
		"        resources:\n          {{- toYaml .Values.resources | nindent 10 }}\n",
		"      {{- with .Values.tolerations }}\n      tolerations:\n        {{- toYaml . | nindent 8 }}\n      {{- end }}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the manager's template lacks\n%s\nin\n%s", want, got)
		}
	}
}

func TestTemplateRefusals(t *testing.T) {
	noLeaderElection := manager("--metrics-bind-address=:8443")
	scheduled := manager(baseArgs...)
	scheduled.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["nodeSelector"] = map[string]any{"a": "b"}
	for _, c := range []struct {
		name string
		plan Plan
		obj  ChartObject
		want string
	}{
		{"a value-set argument the manager lacks", Plan{Namespace: "mk-system", Manager: noLeaderElection}, ChartObject{Object: noLeaderElection}, "--leader-elect"},
		{"a pod field config/ sets that a value would replace", Plan{Namespace: "mk-system", Manager: scheduled}, ChartObject{Object: scheduled}, "nodeSelector"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := objectTemplate(c.plan, c.obj)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error naming %q", err, c.want)
			}
		})
	}
}
