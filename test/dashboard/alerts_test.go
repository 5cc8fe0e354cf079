package dashboard

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/teststorage"
	"go.yaml.in/yaml/v3"
)

var (
	alertsFile     = filepath.Join("..", "..", "config", "prometheus", "alerts.yaml")
	alertTestsFile = filepath.Join("..", "..", "config", "prometheus", "tests", "alerts_test.yaml")
)

// TestAlertsReadMetricsTheOperatorServes holds the alerts
// (config/prometheus) and the series of their promtool tests to the
// metrics as the operator served them in the end-to-end upgrade: promtool
// tests check the rules only against the series they are given, so a name
// or label wrong in both would pass there.
func TestAlertsReadMetricsTheOperatorServes(t *testing.T) {
	served := servedLabels(t)
	t.Run("the alerts' selectors", func(t *testing.T) {
		for _, r := range alertRules(t) {
			e, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("%s: %v", r.Alert, err)
			}
			for _, matchers := range parser.ExtractSelectors(e) {
				name := metricName(matchers)
				for _, m := range matchers {
					switch {
					case !knownLabel(served, name, m.Name):
						t.Errorf("%s reads %s{%s}, which the operator does not serve", r.Alert, name, m.Name)
					case !knownValue(served, name, m):
						t.Errorf("%s reads %s{%s}, a value the operator served none of in the upgrade (it served %q)", r.Alert, name, m, served[name][m.Name])
					}
				}
			}
		}
	})
	t.Run("the promtool tests' series", func(t *testing.T) {
		for _, series := range alertTestSeries(t) {
			ls, err := parser.NewParser(parser.Options{}).ParseMetric(series)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			name := ls.Get(labels.MetricName)
			ls.Range(func(l labels.Label) {
				if !knownLabel(served, name, l.Name) {
					t.Errorf("a test series %s has %s, which the operator does not serve", name, l.Name)
				}
			})
		}
	})
}

// knownLabel reports whether the operator serves metric name with label
// (or __name__): in the recording, with the target's labels Prometheus
// adds, or as unseenInAnUpgrade says.
func knownLabel(served map[string]map[string][]string, name, label string) bool {
	have, seen := served[name]
	unseen, expected := unseenInAnUpgrade[name]
	if !seen && !expected {
		return false
	}
	_, recorded := have[label]
	return label == labels.MetricName || Target.Has(label) || recorded || slices.Contains(unseen.labels, label)
}

// knownValue reports whether an equality matcher names a value the
// operator served in the recording (a misspelt state or reason would never
// match): target labels, and labels unseenInAnUpgrade lists, are not held
// to it.
func knownValue(served map[string]map[string][]string, name string, m *labels.Matcher) bool {
	if m.Type != labels.MatchEqual || m.Value == "" || m.Name == labels.MetricName || Target.Has(m.Name) ||
		slices.Contains(unseenInAnUpgrade[name].labels, m.Name) {
		return true
	}
	return slices.Contains(served[name][m.Name], m.Value) || slices.Contains(unseenInAnUpgrade[name].values[m.Name], m.Value)
}

// servedLabels lists, for each metric of the recorded upgrade, its labels
// (the target's left out) with the values each took.
func servedLabels(t *testing.T) map[string]map[string][]string {
	t.Helper()
	scrapes := readSamples(t)
	st := teststorage.New(t)
	if err := Load(context.Background(), st, scrapes); err != nil {
		t.Fatal(err)
	}
	q, err := st.Querier(0, scrapes[len(scrapes)-1].UnixMilli+1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]map[string][]string{}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	for set.Next() {
		ls := set.At().Labels()
		name := ls.Get(labels.MetricName)
		if out[name] == nil {
			out[name] = map[string][]string{}
		}
		ls.Range(func(l labels.Label) {
			if !slices.Contains(out[name][l.Name], l.Value) {
				out[name][l.Name] = append(out[name][l.Name], l.Value)
			}
		})
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// alertRules reads the PrometheusRule's rules with Prometheus's own rule
// file format.
func alertRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec rulefmt.RuleGroups `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		t.Fatal(err)
	}
	var out []rulefmt.Rule
	for _, g := range rule.Spec.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("no rule in %s", alertsFile)
	}
	return out
}

// alertTestSeries reads the input series of the promtool tests.
func alertTestSeries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tests []struct {
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
		} `yaml:"tests"`
	}
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&file); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tc := range file.Tests {
		for _, s := range tc.InputSeries {
			out = append(out, s.Series)
		}
	}
	return out
}
