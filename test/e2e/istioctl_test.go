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

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// istioctlFor returns a runner of the real istioctl (from
// MESHKEEPER_ISTIO_BIN) against the test's cluster. It fails the test when
// the binary is not there: istioctl compatibility is part of the product.
func istioctlFor(t *testing.T) func(e *env, args ...string) (stdout, stderr string, err error) {
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

// TestIstioctlSeesMeshkeeperTags runs the real istioctl against a
// meshkeeper mesh: tag list shows the default and prod tags on the active
// revision with the namespaces that select them, and follows a canary's
// promotion; analyze finds nothing wrong with the injection webhooks or the
// namespaces; precheck passes.
func TestIstioctlSeesMeshkeeperTags(t *testing.T) {
	t.Parallel()
	istioctl := istioctlFor(t)
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.RevisionTags = []string{"prod"}
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type:   meshv1alpha1.UpdateStrategyCanary,
		Canary: &meshv1alpha1.CanaryStrategy{Steps: []int32{100}, StepInterval: &metav1.Duration{Duration: 2 * time.Second}},
	}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	if got := e.waitReady(t, mi.Name, installTimeout); got.Status.ActiveRevision != stableRev {
		t.Fatalf("active revision %q, want %s", got.Status.ActiveRevision, stableRev)
	}
	// shop opts in with istio-injection (the default tag, which istioctl does
	// not list namespaces for), payments with the prod tag, legacy names the
	// default tag with istio.io/rev, plain is not in the mesh.
	e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	e.ensureNamespace(t, "payments", map[string]string{"istio.io/rev": "prod"})
	e.ensureNamespace(t, "legacy", map[string]string{"istio.io/rev": "default"})
	e.ensureNamespace(t, "plain", map[string]string{"istio-injection": "disabled"})
	for _, ns := range []string{"shop", "payments", "legacy"} {
		if err := e.k8s.Create(ctx, app(ns, "web", 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"shop", "payments", "legacy"} {
		eventually(t, 60*time.Second, "an injected, ready pod in "+ns, func() error {
			pods := e.podsOf(t, ns, "web")
			if len(pods) != 1 || !hasSidecar(&pods[0]) || !podReady(&pods[0]) {
				return fmt.Errorf("%d pods", len(pods))
			}
			return nil
		})
	}

	wantTags := func(rev string) func() error {
		return func() error {
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
		}
	}
	t.Run("tag list shows the tags on the active revision", func(t *testing.T) {
		eventually(t, 30*time.Second, "istioctl tag list", wantTags(stableRev))
	})

	t.Run("analyze reports no problem with injection or webhooks", func(t *testing.T) {
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
	})

	t.Run("precheck finds no issue", func(t *testing.T) {
		out, stderr, err := istioctl(e, "x", "precheck")
		t.Logf("istioctl x precheck: %v\n%s\n%s", err, out, stderr)
		if err != nil || !strings.Contains(stderr, "No issues found") {
			t.Errorf("precheck: %v\n%s\n%s", err, out, stderr)
		}
	})

	t.Run("after a canary's promotion the tags point at the new revision", func(t *testing.T) {
		e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
		eventually(t, 2*time.Minute, "canary promoted", func() error {
			st := e.getMeshInstall(t, mi.Name).Status
			if st.ActiveRevision != canaryRev || st.Canary != nil {
				return fmt.Errorf("active %s canary %+v", st.ActiveRevision, st.Canary)
			}
			return nil
		})
		eventually(t, 30*time.Second, "istioctl tag list after the promotion", wantTags(canaryRev))
	})

	// The cluster as meshkeeper left it before it wrote tag configurations:
	// the operator stopped (it would put them back), the configurations gone.
	t.Run("without the tag configurations istioctl lists no tag", func(t *testing.T) {
		if err := e.operator.Stop(); err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{revision.DefaultTag, "prod"} {
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.TagConfigurationName(tag, mi.Spec.Namespace)}}
			if err := e.k8s.Delete(ctx, mwc); err != nil {
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
	})
}
