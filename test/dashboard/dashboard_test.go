package dashboard

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
)

var dashboardFile = filepath.Join("..", "..", "config", "grafana", "meshkeeper.json")

// SamplesEnv names the samples file the end-to-end upgrade wrote; without
// it the tests read the recording in testdata/.
const SamplesEnv = "MESHKEEPER_DASHBOARD_SAMPLES"

func TestDashboardQueriesParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, q := range dashboardQueries(t) {
		if _, err := p.ParseExpr(q.Expr); err != nil {
			t.Errorf("panel %q: %s: %v", q.Panel, q.Expr, err)
		}
	}
}

// TestDashboardQueriesReturnData evaluates every query over the time the
// samples span, as Grafana draws a panel, and wants at least one value
// that is a number (a histogram_quantile of no traffic is NaN).
func TestDashboardQueriesReturnData(t *testing.T) {
	scrapes := readSamples(t)
	st := teststorage.New(t)
	if err := Load(context.Background(), st, scrapes); err != nil {
		t.Fatal(err)
	}
	present := metricNames(t, st)
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	start, end := time.UnixMilli(scrapes[0].UnixMilli), time.UnixMilli(scrapes[len(scrapes)-1].UnixMilli)
	t.Logf("%d scrapes over %s, %d metric names", len(scrapes), end.Sub(start), len(present))

	for _, q := range dashboardQueries(t) {
		m, err := evaluate(engine, st, q.Expr, start, end)
		if err != nil {
			t.Errorf("panel %q: %s: %v", q.Panel, q.Expr, err)
			continue
		}
		if hasNumbers(m) {
			continue
		}
		if why, ok := expectedEmpty(q.Expr, present); ok {
			t.Logf("panel %q: no data, as expected: %s", q.Panel, why)
			continue
		}
		t.Errorf("panel %q: %s returns no data from the upgrade's metrics", q.Panel, q.Expr)
	}
}

func dashboardQueries(t *testing.T) []Query {
	t.Helper()
	qs, err := Queries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) == 0 {
		t.Fatalf("no query in %s", dashboardFile)
	}
	return qs
}

func readSamples(t *testing.T) []Scrape {
	t.Helper()
	path := os.Getenv(SamplesEnv)
	if path == "" {
		path = RecordedSamples
	}
	scrapes, err := ReadScrapes(path)
	if err != nil {
		t.Fatal(err)
	}
	return scrapes
}

// evaluate runs expr as a range query at a 5s step.
func evaluate(engine *promql.Engine, st storage.Queryable, expr string, start, end time.Time) (promql.Matrix, error) {
	q, err := engine.NewRangeQuery(context.Background(), st, nil, expr, start, end, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Matrix()
}

func hasNumbers(m promql.Matrix) bool {
	for _, s := range m {
		for _, p := range s.Floats {
			if !math.IsNaN(p.F) {
				return true
			}
		}
	}
	return false
}

// expectedEmpty reports why expr may return nothing: every metric it reads
// is one an upgrade does not produce, and none is in the samples.
func expectedEmpty(expr string, present map[string]bool) (string, bool) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return "", false
	}
	var why []string
	for _, matchers := range parser.ExtractSelectors(e) {
		name := metricName(matchers)
		u, ok := unseenInAnUpgrade[name]
		if !ok || present[name] {
			return "", false
		}
		why = append(why, u.why)
	}
	return strings.Join(why, "; "), len(why) > 0
}

func metricName(matchers []*labels.Matcher) string {
	for _, m := range matchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func metricNames(t *testing.T, st storage.Queryable) map[string]bool {
	t.Helper()
	q, err := st.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	names, _, err := q.LabelValues(context.Background(), labels.MetricName, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}
