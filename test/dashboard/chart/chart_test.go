// Package chart draws the README's chart of an end-to-end canary upgrade
// from the recorded scrapes, with two of the dashboard's queries: pods per
// revision and the canary's weight. It is a package of its own so that the
// end-to-end test, which runs test/dashboard's tests, does not compile a
// plotting library.
package chart

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/meshkeeper/meshkeeper/test/dashboard"
)

var update = flag.Bool("update", false, "rewrite the chart")

var chartFile = filepath.Join("..", "..", "..", "config", "grafana", "canary-upgrade.png")

// The queries drawn, as the dashboard's panels "Pods per revision" and
// "Canary weight" have them.
const (
	podsPerRevision = `sum by (revision) (meshkeeper_revision_pods{state="running"})`
	canaryWeight    = `max(meshkeeper_canary_weight_percent)`
)

// TestUpgradeChart draws the chart and compares it with the one checked
// in; -update rewrites it.
func TestUpgradeChart(t *testing.T) {
	png := drawChart(t)
	if *update {
		if err := os.WriteFile(chartFile, png, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(chartFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, png) {
		t.Errorf("%s is stale: go test ./chart -update (in test/dashboard)", chartFile)
	}
}

func drawChart(t *testing.T) []byte {
	t.Helper()
	scrapes, err := dashboard.ReadScrapes(filepath.Join("..", dashboard.RecordedSamples))
	if err != nil {
		t.Fatal(err)
	}
	st := teststorage.New(t)
	if err := dashboard.Load(context.Background(), st, scrapes); err != nil {
		t.Fatal(err)
	}
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	start, end := time.UnixMilli(scrapes[0].UnixMilli), time.UnixMilli(scrapes[len(scrapes)-1].UnixMilli)
	eval := func(expr string) promql.Matrix {
		q, err := engine.NewRangeQuery(context.Background(), st, nil, expr, start, end, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		m, err := q.Exec(context.Background()).Matrix()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	pods := linePlot(t, "Running pods per revision", "pods", eval(podsPerRevision), start, "revision")
	weight := linePlot(t, "Canary weight", "% of workloads", eval(canaryWeight), start, "")
	return render(t, pods, weight)
}

// linePlot draws one line per series, named by its label, over seconds
// since start.
func linePlot(t *testing.T, title, yLabel string, m promql.Matrix, start time.Time, label string) *plot.Plot {
	t.Helper()
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds into the upgrade"
	p.Y.Label.Text = yLabel
	p.Y.Min = 0
	p.Legend.Top = true
	sort.Slice(m, func(i, j int) bool { return m[i].Metric.Get(label) < m[j].Metric.Get(label) })
	palette := []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}}
	for i, s := range m {
		xys := make(plotter.XYs, len(s.Floats))
		for j, f := range s.Floats {
			xys[j] = plotter.XY{X: float64(f.T-start.UnixMilli()) / 1000, Y: f.F}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			t.Fatal(err)
		}
		line.Color = palette[i%len(palette)]
		line.Width = vg.Points(2)
		p.Add(line)
		if label != "" {
			p.Legend.Add(fmt.Sprintf("%s %s", label, s.Metric.Get(label)), line)
		}
	}
	if len(m) == 0 {
		t.Fatalf("%s: no data", title)
	}
	p.Y.Max *= 1.3 // room for the legend above the lines
	return p
}

// render stacks the plots into one PNG.
func render(t *testing.T, plots ...*plot.Plot) []byte {
	t.Helper()
	img := vgimg.New(8*vg.Inch, 6*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{plots[0]}, {plots[1]}}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
