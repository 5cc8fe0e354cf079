package dashboard

import (
	"encoding/json"
	"fmt"
	"os"
)

// Query is one PromQL expression of the dashboard, with the panel it draws.
type Query struct {
	Panel string
	Expr  string
}

// panel is what the dashboard's JSON holds that this package reads: rows
// nest their panels when collapsed.
type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// Queries reads every query of a Grafana dashboard file.
func Queries(path string) ([]Query, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return queriesOf(d.Panels), nil
}

func queriesOf(panels []panel) []Query {
	var out []Query
	for _, p := range panels {
		for _, t := range p.Targets {
			out = append(out, Query{Panel: p.Title, Expr: t.Expr})
		}
		out = append(out, queriesOf(p.Panels)...)
	}
	return out
}
