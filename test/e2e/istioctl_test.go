package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// istioctlFor returns a runner of the real istioctl (from
// MESHKEEPER_ISTIO_BIN) against the test's cluster. It fails the test when
// the binary is not there: istioctl compatibility is part of the product.
func istioctlFor(t *testing.T) istioctlRunner {
	t.Helper()
	dir := os.Getenv("MESHKEEPER_ISTIO_BIN")
	if dir == "" {
		t.Fatal("MESHKEEPER_ISTIO_BIN names the directory of istioctl built from hack/tools/istio " +
			"(make test-e2e sets it; or `cd hack/tools/istio && go build -o <dir>/istioctl istio.io/istio/istioctl/cmd/istioctl`)")
	}
	bin := filepath.Join(dir, "istioctl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("MESHKEEPER_ISTIO_BIN=%s holds no istioctl: %v", dir, err)
	}
	return func(e *env, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "--kubeconfig", e.cluster.Kubeconfig, "--istioNamespace", "istio-system")...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
}

// istioctlRunner runs istioctl with args against e's cluster.
type istioctlRunner func(e *env, args ...string) (stdout, stderr string, err error)

// tagRow is one row of istioctl tag list.
type tagRow struct{ tag, revision, namespaces string }

// parseTagList reads the TAG, REVISION and NAMESPACES columns of istioctl
// tag list's table by the header's offsets (a cell may be empty).
func parseTagList(t *testing.T, out string) []tagRow {
	t.Helper()
	if strings.TrimSpace(out) == "No Istio revision tags found." {
		return nil
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	rev, ns := strings.Index(header, "REVISION"), strings.Index(header, "NAMESPACES")
	if !strings.HasPrefix(header, "TAG") || rev < 0 || ns < rev {
		t.Fatalf("istioctl tag list printed no table:\n%s", out)
	}
	cell := func(line string, from, to int) string {
		if from >= len(line) {
			return ""
		}
		return strings.TrimSpace(line[from:min(to, len(line))])
	}
	var rows []tagRow
	for _, l := range lines[1:] {
		rows = append(rows, tagRow{tag: cell(l, 0, rev), revision: cell(l, rev, ns), namespaces: cell(l, ns, len(l))})
	}
	return rows
}

// istioctlNamespaces opts namespaces into the mesh as istioctl's users do,
// beside appsNS (istio-injection=enabled, the default tag, for which
// istioctl lists no namespaces): payments with the prod tag, legacy names
// the default tag with istio.io/rev, plain is not in the mesh. payments and
// legacy each run one injected, ready workload.
func (e *env) istioctlNamespaces(t *testing.T) {
	t.Helper()
	e.ensureNamespace(t, "payments", map[string]string{"istio.io/rev": "prod"})
	e.ensureNamespace(t, "legacy", map[string]string{"istio.io/rev": "default"})
	e.ensureNamespace(t, "plain", map[string]string{"istio-injection": "disabled"})
	for _, ns := range []string{"payments", "legacy"} {
		if err := e.k8s.Create(context.Background(), app(ns, "web", 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"payments", "legacy"} {
		eventually(t, 60*time.Second, "an injected, ready pod in "+ns, func() error {
			pods := e.podsOf(t, ns, "web")
			if len(pods) != 1 || !hasSidecar(&pods[0]) || !podReady(&pods[0]) {
				return fmt.Errorf("%d pods", len(pods))
			}
			return nil
		})
	}
}

// checkIstioctlTags waits until the real istioctl's tag list shows the
// default and prod tags on rev, with the namespaces istioctlNamespaces
// made, and no untagged row for rev beside them.
func (e *env) checkIstioctlTags(t *testing.T, istioctl istioctlRunner, rev string) {
	t.Helper()
	eventually(t, 30*time.Second, "istioctl tag list", func() error {
		out, stderr, err := istioctl(e, "tag", "list")
		if err != nil {
			return fmt.Errorf("istioctl tag list: %v: %s", err, stderr)
		}
		t.Logf("istioctl tag list:\n%s", out)
		rows := parseTagList(t, out)
		tagged := slices.DeleteFunc(slices.Clone(rows), func(r tagRow) bool { return r.tag == "" })
		want := []tagRow{{"default", rev, "legacy"}, {"prod", rev, "payments"}}
		if !slices.Equal(tagged, want) {
			return fmt.Errorf("tags %+v, want %+v", tagged, want)
		}
		for _, r := range rows {
			if r.tag == "" && r.revision == rev {
				return fmt.Errorf("revision %s listed untagged beside its tags: %+v", rev, rows)
			}
		}
		return nil
	})
}

// checkIstioctlAnalyze runs istioctl analyze over all namespaces: it must
// report no problem with the injection webhooks or the namespaces.
func (e *env) checkIstioctlAnalyze(t *testing.T, istioctl istioctlRunner) {
	t.Helper()
	out, stderr, err := istioctl(e, "analyze", "--all-namespaces", "--output", "json")
	t.Logf("istioctl analyze -A: %v\n%s\n%s", err, out, stderr)
	var msgs []struct {
		Code    string `json:"code"`
		Level   string `json:"level"`
		Message string `json:"message"`
		Origin  string `json:"origin"`
	}
	if jerr := json.Unmarshal([]byte(out), &msgs); jerr != nil {
		t.Fatalf("istioctl analyze printed no JSON (%v): %v\n%s\n%s", err, jerr, out, stderr)
	}
	for _, m := range msgs {
		// Info only (plain is not in the mesh on purpose), but one known
		// false warning: IST0146 counts only webhook entries named
		// *istio.io as injectors, so it does not see that meshkeeper's
		// entries inject the gateways' image: auto.
		if m.Level == "Info" || m.Code == "IST0146" && strings.HasPrefix(m.Origin, "Deployment istio-system/istio-") {
			continue
		}
		t.Errorf("%s %s %s: %s", m.Level, m.Code, m.Origin, m.Message)
	}
}

// checkIstioctlPrecheck runs istioctl x precheck: it must find no issue.
func (e *env) checkIstioctlPrecheck(t *testing.T, istioctl istioctlRunner) {
	t.Helper()
	out, stderr, err := istioctl(e, "x", "precheck")
	t.Logf("istioctl x precheck: %v\n%s\n%s", err, out, stderr)
	if err != nil || !strings.Contains(stderr, "No issues found") {
		t.Errorf("precheck: %v\n%s\n%s", err, out, stderr)
	}
}

// checkIstioctlReadsTagConfigurations shows what istioctl's tag list reads:
// the cluster as meshkeeper left it before it wrote tag configurations (the
// operator stopped, as it would put them back; the configurations of the
// default and prod tags gone) lists no tag. It leaves the operator stopped.
func (e *env) checkIstioctlReadsTagConfigurations(t *testing.T, istioctl istioctlRunner, meshNamespace string) {
	t.Helper()
	if err := e.operator.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{revision.DefaultTag, "prod"} {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.TagConfigurationName(tag, meshNamespace)}}
		if err := e.k8s.Delete(context.Background(), mwc); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err := istioctl(e, "tag", "list")
	if err != nil {
		t.Fatalf("istioctl tag list: %v: %s", err, stderr)
	}
	t.Logf("istioctl tag list without them:\n%s", out)
	for _, r := range parseTagList(t, out) {
		if r.tag != "" {
			t.Errorf("tag %+v listed without its configuration: what does istioctl read?", r)
		}
	}
}
