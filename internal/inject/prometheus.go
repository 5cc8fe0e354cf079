package inject

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Prometheus treats prometheus.io/scrape, prometheus.io.scrape,
// prometheus-io/scrape... alike (it sanitizes label names); so does Istio.
const (
	promScrape        = "prometheus_io_scrape"
	promPort          = "prometheus_io_port"
	promPath          = "prometheus_io_path"
	promTargets       = "prometheus_istio_io_scrape_targets"
	promSecurePort    = "prometheus_istio_io_secure_port"
	mergedMetricsPath = "/stats/prometheus"
)

// istioReservedPorts are the data plane's own ports, which a merged scrape
// must not target (1.31+).
var istioReservedPorts = map[string]string{
	"15000": "Envoy admin",
	"15001": "outbound traffic capture",
	"15004": "pilot debug",
	"15006": "inbound traffic capture",
	"15008": "HBONE tunnel",
	"15020": "pilot-agent status / merged Prometheus",
	"15021": "Envoy health",
	"15053": "DNS proxy",
	"15090": "Envoy Prometheus (already merged)",
}

// scrapeConfig is ISTIO_PROMETHEUS_ANNOTATIONS: the application's own scrape
// settings, which pilot-agent scrapes and merges into its endpoint.
type scrapeConfig struct {
	Scrape  string         `json:"scrape"`
	Path    string         `json:"path"`
	Port    string         `json:"port"`
	Targets []scrapeTarget `json:"targets,omitempty"`
}

type scrapeTarget struct {
	Port string `json:"port"`
	Path string `json:"path"`
}

func (s *scrapeConfig) empty() bool {
	return s.Scrape == "" && s.Path == "" && s.Port == "" && len(s.Targets) == 0
}

// sanitizeLabelName is Prometheus's: every character that is not a letter,
// digit or underscore becomes an underscore.
func sanitizeLabelName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// prometheusAnnotations returns, in name order, the pod's annotations that
// Prometheus reads as the given ones.
func prometheusAnnotations(ann map[string]string, names ...string) []string {
	var keys []string
	for k := range ann {
		if !strings.HasPrefix(k, "prometheus") {
			continue
		}
		s := sanitizeLabelName(k)
		for _, n := range names {
			if s == n {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// mergePrometheus implements Istio's metrics merging: when the pod is to be
// scraped, its prometheus.io annotations move to istio-proxy's environment
// and point Prometheus at pilot-agent, which serves Envoy's and the
// application's metrics together.
func (in *injection) mergePrometheus(proxy *corev1.Container) error {
	ann := in.pod.Annotations
	if in.d.minor >= minorIstio131 {
		defer in.securePrometheusPort(proxy)
	}
	if !in.mergeMetricsEnabled() || !scrapeWanted(ann) {
		return nil
	}
	target := strconv.Itoa(int(in.d.proxy.pc.GetStatusPort()))
	if keys := prometheusAnnotations(ann, promPort); len(keys) > 0 && ann[keys[0]] == target {
		// Already aimed at the agent: re-injected, or the user's choice.
		return nil
	}
	scrape, err := in.scrapeConfig(target)
	if err != nil {
		return err
	}
	if proxy != nil && !scrape.empty() {
		js, err := json.Marshal(scrape)
		if err != nil {
			return err
		}
		proxy.Env = append(proxy.Env, corev1.EnvVar{Name: envPrometheus, Value: string(js)})
	}
	cleared := []string{promPath, promPort, promScrape}
	if in.d.minor >= minorIstio131 {
		cleared = append(cleared, promTargets)
	}
	for _, k := range prometheusAnnotations(ann, cleared...) {
		delete(ann, k)
	}
	ann[annPrometheusPort] = target
	ann[annPrometheusPath] = mergedMetricsPath
	ann[annPrometheusScrape] = "true"
	return nil
}

// mergeMetricsEnabled is prometheus.istio.io/merge-metrics, or the mesh's
// enablePrometheusMerge.
func (in *injection) mergeMetricsEnabled() bool {
	if v, ok := in.pod.Annotations[annMergeMetrics]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return in.cfg.EnablePrometheusMerge
}

// scrapeWanted: a pod is scraped unless a scrape annotation says false.
func scrapeWanted(ann map[string]string) bool {
	for _, k := range prometheusAnnotations(ann, promScrape) {
		if b, err := strconv.ParseBool(ann[k]); err == nil {
			return b
		}
	}
	return true
}

// scrapeConfig reads the application's scrape settings; since 1.31 Istio
// refuses ports it cannot scrape.
func (in *injection) scrapeConfig(target string) (*scrapeConfig, error) {
	ann := in.pod.Annotations
	s := &scrapeConfig{}
	validate := in.d.minor >= minorIstio131
	for _, k := range prometheusAnnotations(ann, promPort, promScrape, promPath, promTargets) {
		v := ann[k]
		switch sanitizeLabelName(k) {
		case promPort:
			s.Port = v
		case promScrape:
			s.Scrape = v
		case promPath:
			s.Path = v
		case promTargets:
			if validate {
				if ts, err := parseScrapeTargets(v); err == nil {
					s.Targets = ts
				}
			}
		}
	}
	if !validate {
		return s, nil
	}
	if len(s.Targets) > 0 {
		// Agents that predate scrape targets scrape the first one.
		s.Port, s.Path = s.Targets[0].Port, s.Targets[0].Path
		for _, t := range s.Targets {
			if err := scrapablePort(t.Port, target); err != nil {
				return nil, invalidAnnotation(annPrometheusTargets, ann[annPrometheusTargets], err)
			}
		}
	} else if s.Port != "" {
		if err := scrapablePort(s.Port, target); err != nil {
			return nil, invalidAnnotation(annPrometheusPort, s.Port, err)
		}
	}
	return s, nil
}

func scrapablePort(port, agentPort string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port number", port)
	}
	canonical := strconv.Itoa(n)
	if canonical == agentPort {
		return fmt.Errorf("port %s is the agent's own port", port)
	}
	if reason, ok := istioReservedPorts[canonical]; ok {
		return fmt.Errorf("port %s is reserved for Istio (%s) and cannot be scraped", port, reason)
	}
	return nil
}

// parseScrapeTargets reads prometheus.istio.io/scrape-targets:
// "port[:path],..."; the path defaults to /metrics.
func parseScrapeTargets(raw string) ([]scrapeTarget, error) {
	var ts []scrapeTarget
	for _, entry := range strings.Split(raw, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		port, path, _ := strings.Cut(entry, ":")
		port, path = strings.TrimSpace(port), strings.TrimSpace(path)
		if port == "" {
			return nil, fmt.Errorf("empty port in scrape target %q", entry)
		}
		if path == "" {
			path = "/metrics"
		}
		ts = append(ts, scrapeTarget{Port: port, Path: path})
	}
	return ts, nil
}

// securePrometheusPort advertises the agent's TLS metrics port
// (ENVOY_SECURE_MERGED_METRICS_PORT) as prometheus.istio.io/secure-port,
// unless the pod sets it.
func (in *injection) securePrometheusPort(proxy *corev1.Container) {
	if proxy == nil || len(prometheusAnnotations(in.pod.Annotations, promSecurePort)) > 0 {
		return
	}
	if v, _ := envValue(proxy.Env, envSecureMetricPort); v != "" && v != "0" {
		in.pod.Annotations[annPrometheusSecurePort] = v
	}
}
