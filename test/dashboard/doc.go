// Package dashboard checks the Grafana dashboard of config/grafana with
// Prometheus's own PromQL parser and engine: every query parses, and every
// query returns data from the operator's metrics as an end-to-end upgrade
// scraped them; and the alerts of config/prometheus read only metrics and
// labels the operator serves (test/e2e's TestCanaryStepsMoveTheirWorkloads writes them
// and runs this package's tests on them; testdata/ keeps one such run).
//
// It is a module of its own: github.com/prometheus/prometheus would move
// two dozen of meshkeeper's own dependencies (gRPC, OpenTelemetry, x/net,
// ...) to newer versions for the sake of one test.
package dashboard
