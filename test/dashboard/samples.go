package dashboard

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"
)

// RecordedSamples is the recording of an end-to-end upgrade's scrapes, in
// this module (test/e2e's keepRecording writes it).
const RecordedSamples = "testdata/canary-upgrade.metrics.gz"

// ScrapeMarker starts each scrape in a samples file, followed by the time
// of the scrape in Unix milliseconds and a newline; the scrape's body (the
// Prometheus text format the operator serves) follows.
const ScrapeMarker = "# meshkeeper-scrape "

// Target holds the labels Prometheus adds to every series it scrapes from
// one operator replica through config/prometheus/monitor.yaml (job is the
// metrics Service's name), as the alerts and the dashboard see them.
var Target = labels.FromStrings(
	"job", "meshkeeper-controller-manager-metrics-service",
	"namespace", "meshkeeper-system",
	"instance", "10.244.0.7:8443",
	"pod", "meshkeeper-controller-manager-6f7d9c-x2k4p",
	"service", "meshkeeper-controller-manager-metrics-service",
	"container", "manager",
	"endpoint", "https",
)

// Scrape is one scrape of the operator's metrics endpoint.
type Scrape struct {
	UnixMilli int64
	Body      []byte
}

// ReadScrapes reads a samples file, gzipped when its name ends in .gz.
func ReadScrapes(path string) ([]Scrape, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	scrapes, err := SplitScrapes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return scrapes, nil
}

// SplitScrapes reads the content of a samples file.
func SplitScrapes(data []byte) ([]Scrape, error) {
	var out []Scrape
	for _, part := range bytes.Split(data, []byte(ScrapeMarker))[1:] {
		header, body, _ := bytes.Cut(part, []byte("\n"))
		ms, err := strconv.ParseInt(string(bytes.TrimSpace(header)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("scrape %d: time %q: %w", len(out), header, err)
		}
		out = append(out, Scrape{UnixMilli: ms, Body: body})
	}
	if len(out) == 0 {
		return nil, errors.New("no scrape (no line starting with " + ScrapeMarker + ")")
	}
	return out, nil
}

// Load appends the scrapes to the storage as Prometheus would: every
// series with the target's labels (a scraped label of the same name wins,
// as with honor_labels), and up = 1 for each scrape.
func Load(ctx context.Context, s storage.Appendable, scrapes []Scrape) error {
	app := s.Appender(ctx)
	for _, sc := range scrapes {
		if err := appendScrape(app, sc); err != nil {
			_ = app.Rollback()
			return err
		}
	}
	return app.Commit()
}

func appendScrape(app storage.Appender, sc Scrape) error {
	up := labels.NewBuilder(Target).Set(labels.MetricName, "up").Labels()
	if _, err := app.Append(0, up, sc.UnixMilli, 1); err != nil {
		return err
	}
	p, err := textparse.New(sc.Body, "text/plain; version=0.0.4", nil, textparse.ParserOptions{})
	if err != nil {
		return err
	}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("scrape at %d: %w", sc.UnixMilli, err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		var scraped labels.Labels
		p.Labels(&scraped)
		_, _, v := p.Series()
		if _, err := app.Append(0, withTarget(scraped), sc.UnixMilli, v); err != nil {
			return fmt.Errorf("scrape at %d: %s: %w", sc.UnixMilli, scraped, err)
		}
	}
}

// withTarget adds the target's labels the scraped series does not have.
func withTarget(scraped labels.Labels) labels.Labels {
	b := labels.NewBuilder(scraped)
	Target.Range(func(l labels.Label) {
		if !scraped.Has(l.Name) {
			b.Set(l.Name, l.Value)
		}
	})
	return b.Labels()
}
