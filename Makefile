# meshkeeper — an operator that installs and upgrades Istio and injects its sidecars.

IMG ?= ghcr.io/meshkeeper/meshkeeper:dev
# Versions of the tools and of the local Kubernetes built from Go modules.
K8S_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.7.0
KWOK_VERSION ?= v0.8.0
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2

# Built tools are cached outside the checkout, keyed by version, and shared by every clone.
TOOLS_DIR ?= $(or $(MESHKEEPER_TOOLS_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/meshkeeper)
K8S_BIN ?= $(TOOLS_DIR)/k8s-v$(K8S_VERSION)-etcd-v$(ETCD_VERSION)
KWOK_BIN ?= $(TOOLS_DIR)/kwok-$(KWOK_VERSION)
CONTROLLER_GEN ?= $(TOOLS_DIR)/controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen
KUSTOMIZE ?= $(TOOLS_DIR)/kustomize-$(KUSTOMIZE_VERSION)/kustomize
# The operator-framework tools are pinned by their own modules under hack/tools/.
toolversion = $(shell sed -nE "s@^(require)?[[:space:]]*github.com/operator-framework/$(1) (v[^ ]+)\$$@\2@p" hack/tools/$(2)/go.mod)
OPERATOR_SDK_VERSION := $(call toolversion,operator-sdk,operator-sdk)
OPM_VERSION := $(call toolversion,operator-registry,opm)
OLM_VERSION := $(call toolversion,operator-lifecycle-manager,olm)
CERT_MANAGER_VERSION := $(shell sed -nE "s@^(require)?[[:space:]]*github.com/cert-manager/cert-manager (v[^ ]+)\$$@\2@p" hack/tools/cert-manager/go.mod)
OPERATOR_SDK ?= $(TOOLS_DIR)/operator-sdk-$(OPERATOR_SDK_VERSION)/operator-sdk
OPM_BIN ?= $(TOOLS_DIR)/opm-$(OPM_VERSION)
OPM ?= $(OPM_BIN)/opm
BUNDLE_VALIDATE ?= $(OPM_BIN)/bundle-validate
OLM_BIN ?= $(TOOLS_DIR)/olm-$(OLM_VERSION)
CERT_MANAGER_BIN ?= $(TOOLS_DIR)/cert-manager-$(CERT_MANAGER_VERSION)
PROMETHEUS_VERSION := $(shell sed -nE "s@^(require)?[[:space:]]*github.com/prometheus/prometheus (v[^ ]+)\$$@\2@p" hack/tools/promtool/go.mod)
PROMTOOL ?= $(TOOLS_DIR)/promtool-$(PROMETHEUS_VERSION)/promtool
# Istio's binaries (istiod, its proxy agent, istioctl) from the pseudo-version of
# istio.io/istio pinned in hack/tools/istio (the module has no semver versions),
# cached by the commit it names. The tests also read Istio's sources from the
# module cache (MESHKEEPER_ISTIO_SRC).
ISTIO_MODULE_VERSION := $(shell sed -nE "s@^(require)?[[:space:]]*istio.io/istio (v[^ ]+)\$$@\2@p" hack/tools/istio/go.mod)
ISTIO_COMMIT := $(lastword $(subst -, ,$(ISTIO_MODULE_VERSION)))
ISTIO_BIN ?= $(TOOLS_DIR)/istio-$(ISTIO_COMMIT)
ISTIO_SRC ?= $(GOMODCACHE)/istio.io/istio@$(ISTIO_MODULE_VERSION)
GOMODCACHE := $(shell go env GOMODCACHE)
export KUBEBUILDER_ASSETS = $(K8S_BIN)
export MESHKEEPER_K8S_BIN = $(K8S_BIN)
export MESHKEEPER_KWOK_BIN = $(KWOK_BIN)
export MESHKEEPER_KUSTOMIZE = $(KUSTOMIZE)
export MESHKEEPER_OPM = $(OPM)
export MESHKEEPER_OLM_BIN = $(OLM_BIN)
export MESHKEEPER_CERT_MANAGER_BIN = $(CERT_MANAGER_BIN)
export MESHKEEPER_ISTIO_BIN = $(ISTIO_BIN)
export MESHKEEPER_ISTIO_SRC = $(ISTIO_SRC)
# Every go build, vet and test here is pure Go, as the image's manager is
# (Dockerfile): the packages meshkeeper shares with the local Kubernetes
# (k8s.io/api, apimachinery, client-go, ...; hack/build-k8s.sh builds it the
# same way, at meshkeeper's versions) then compile once into the Go build
# cache, not once per setting.
export CGO_ENABLED = 0
# Tool builds print a line when they start and end; the compiler's output goes here.
export BUILD_LOG_DIR ?= $(TOOLS_DIR)/logs
export OPERATOR_SDK KUSTOMIZE OPM

# The OLM bundle: its version, channels and the images it names.
VERSION ?= 0.2.0
CHANNELS ?= alpha
DEFAULT_CHANNEL ?= alpha
IMAGE_TAG_BASE ?= ghcr.io/meshkeeper/meshkeeper
BUNDLE_IMG ?= $(IMAGE_TAG_BASE)-bundle:v$(VERSION)
CATALOG_IMG ?= $(IMAGE_TAG_BASE)-catalog:v$(VERSION)
CATALOG_DIR ?= bin/catalog
# The Kubernetes version the bundle validators check the bundle against.
BUNDLE_K8S_VERSION ?= $(basename $(K8S_VERSION))

GO_TEST_FLAGS ?=
GO_FILES = $$(find . -name '*.go' -not -path './.*' -not -path './bin/*')
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen istio-crds ## Generate the CRD, RBAC and webhook manifests (and copy Istio's CRDs).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: chart
chart: manifests kustomize ## Generate the Helm chart charts/meshkeeper from config/ (kustomize build config/default and its variants).
	go run ./hack/chartgen -kustomize $(KUSTOMIZE) -version $(VERSION) -app-version v$(VERSION)

.PHONY: istio-crds
istio-crds: ## Copy Istio's CRDs from the istio.io/api module in go.mod into internal/render/crds.
	hack/istio-crds.sh

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: verify-generated
verify-generated: controller-gen kustomize operator-sdk ## Fail when generated code, the bundle or the Helm chart is stale.
	hack/verify-generated.sh

.PHONY: verify-manifests
verify-manifests: kustomize ## Fail when the kustomize overlays do not build (config/default also with config/certmanager enabled; config/prometheus).
	$(KUSTOMIZE) build config/default >/dev/null
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && cp -r config "$$d/" && \
	  sed -i 's|^#components:|components:|; s|^#- ../certmanager|- ../certmanager|' "$$d/config/default/kustomization.yaml" && \
	  grep -q '^- ../certmanager' "$$d/config/default/kustomization.yaml" && \
	  $(KUSTOMIZE) build "$$d/config/default" | grep -- --webhook-cert-provider=cert-manager >/dev/null
	$(KUSTOMIZE) build config/samples >/dev/null
	$(KUSTOMIZE) build config/prometheus >/dev/null

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $(GO_FILES)

.PHONY: vet
vet: ## Run go vet (test/dashboard too: a module of its own, whose packages the end-to-end suite then finds compiled).
	go vet ./...
	cd test/dashboard && go vet ./...

.PHONY: test
# make test in three steps. The tools (minutes of compiling on a first run)
# build beside what compiles the tests need and needs no tool: go vet
# compiles every package the tests import, and fuzz-build the fuzzers'
# instrumented test binaries. Then the checks of generated code, then the
# suites: the end-to-end suite, mostly waiting on its clusters, beside the
# unit suites and the short fuzz run.
test: ## Run every test: generated code, bundle and Helm chart, vet, gofmt, alerting rules, unit, envtest, end-to-end (real OLM too), a short fuzz.
	@fuzzbin=$$(mktemp -d) && trap 'rm -rf "$$fuzzbin"' EXIT && \
	$(MAKE) -s -j6 vet fuzz-build $(TEST_TOOLS) FUZZ_BIN_DIR="$$fuzzbin" && \
	$(MAKE) verify-generated verify-manifests bundle-validate gofmt-check test-alerts && \
	$(MAKE) -j2 --output-sync=target test-unit-then-fuzz test-e2e FUZZ_BIN_DIR="$$fuzzbin"

# The fuzz run follows the unit suites while the end-to-end suite runs
# beside them. (Beside the unit suites too, it made 188 executions in its
# 15 s instead of thousands.) Its two workers (one per core, go test's
# default) get it a fair share of the CPU beside six clusters: with one it
# made 637 executions in 15 s there.
.PHONY: test-unit-then-fuzz
test-unit-then-fuzz: test-unit
	$(MAKE) -s fuzz-short

.PHONY: gofmt-check
gofmt-check:
	@test -z "$$(gofmt -l $(GO_FILES))" || { echo "gofmt needed on:"; gofmt -l $(GO_FILES); exit 1; }

.PHONY: test-alerts
test-alerts: promtool ## Check config/prometheus/alerts.yaml and run its unit tests (config/prometheus/tests) with Prometheus's promtool.
	hack/test-alerts.sh $(PROMTOOL)

.PHONY: test-dashboard
test-dashboard: ## Parse and evaluate every query of config/grafana's dashboard, and check the alerts' metrics, on a recorded e2e upgrade (test/dashboard; the e2e runs it on its own scrapes).
	cd test/dashboard && go test ./...

.PHONY: fuzz-build
fuzz-build: ## Build the fuzzers' instrumented test binaries into FUZZ_BIN_DIR (fuzz-short then runs them).
	FUZZ_BIN_DIR="$(FUZZ_BIN_DIR)" hack/fuzz-short.sh --build

.PHONY: fuzz-short
fuzz-short: ## Fuzz the injection handler, the MeshInstall validator and the injector's ConfigMap loading, 15s each (FUZZTIME=10m each for longer); print each one's execution count.
	FUZZ_BIN_DIR="$(FUZZ_BIN_DIR)" hack/fuzz-short.sh $(or $(FUZZTIME),15s) $(FUZZFLAGS)

.PHONY: test-unit
test-unit: k8s-tools ## Run the unit and envtest suites (no simulated cluster).
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v /test/e2e)

.PHONY: test-e2e
E2E_PARALLEL ?= 6
test-e2e: k8s-tools ## Run the end-to-end suite on fresh simulated clusters, E2E_PARALLEL at a time (never cached: it builds the operator).
	E2E_PARALLEL=$(E2E_PARALLEL) go test $(GO_TEST_FLAGS) -count=1 -v -parallel 64 -timeout 30m ./test/e2e/

.PHONY: e2e-stress
e2e-stress: k8s-tools ## Run the e2e test(s) matching TEST N times (COPIES at once), stop at the first failure and name its artifacts, e.g. TEST=TestCanaryUpgrade N=20 COPIES=3.
	TEST='$(TEST)' N='$(or $(N),10)' COPIES='$(or $(COPIES),1)' E2E_PARALLEL='$(E2E_PARALLEL)' hack/e2e-stress.sh

.PHONY: demo
demo: demo-tools ## Start a simulated cluster, install Istio with meshkeeper, inject and upgrade, run real istiod and one pod's proxy agent, turn on istio-cni for a Pod Security restricted namespace (leaves it running; WEBHOOK_CERTS=cert-manager: webhook certificate from real cert-manager).
	@echo "==> compiling the demo and the operator (go run ./hack/demo) ..."
	MESHKEEPER_DEMO_WEBHOOK_CERTS=$(WEBHOOK_CERTS) go run ./hack/demo up

.PHONY: demo-down
demo-down: ## Stop the demo's operator and delete its cluster.
	go run ./hack/demo down

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/.
	go build -o bin/manager .

.PHONY: kubectl-meshkeeper
kubectl-meshkeeper: ## Build the kubectl plugin (kubectl meshkeeper status|precheck|check-inject|translate) into bin/; put bin/ on PATH, or go install ./cmd/kubectl-meshkeeper.
	go build -o bin/kubectl-meshkeeper ./cmd/kubectl-meshkeeper

.PHONY: run
RUN_NAMESPACE ?= meshkeeper-system
run: ## Run the manager against the current kubeconfig (ARGS="--webhook-url https://<host>:9443" and other flags).
	kubectl create namespace $(RUN_NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	go run . --leader-elect=false --namespace $(RUN_NAMESPACE) $(ARGS)

.PHONY: docker-build
docker-build: ## Build the manager image (needs a container runtime).
	docker build -t $(IMG) .

##@ OLM bundle and catalog

.PHONY: bundle
bundle: bundle-manifests bundle-validate ## Make bundle/ and bundle.Dockerfile for VERSION with operator-sdk's flow, then validate them.

.PHONY: bundle-manifests
bundle-manifests: manifests kustomize operator-sdk
	hack/bundle.sh $(VERSION) $(IMAGE_TAG_BASE):v$(VERSION) $(CHANNELS) $(DEFAULT_CHANNEL)

.PHONY: bundle-validate
bundle-validate: opm ## Validate bundle/ as `operator-sdk bundle validate --select-optional suite=operatorframework` does.
	$(BUNDLE_VALIDATE) -k8s-version $(BUNDLE_K8S_VERSION) bundle

.PHONY: bundle-build
bundle-build: ## Build the bundle image (needs a container runtime).
	docker build -f bundle.Dockerfile -t $(BUNDLE_IMG) .

.PHONY: bundle-release
bundle-release: opm ## Record bundle/ as released: the catalog keeps it (catalog/releases/) after VERSION moves on.
	$(OPM) render ./bundle -o yaml > catalog/releases/meshkeeper.v$$(sed -n 's/^  version: //p' bundle/manifests/meshkeeper.clusterserviceversion.yaml).yaml

.PHONY: catalog
catalog: opm ## Build the file-based catalog (every release and bundle/, one channel, upgrade edges) into CATALOG_DIR and validate it.
	hack/catalog.sh $(CATALOG_DIR)

.PHONY: catalog-build
catalog-build: catalog ## Build the catalog image (needs a container runtime).
	cd $(CATALOG_DIR) && $(OPM) generate dockerfile . && docker build -f ..$(notdir $(CATALOG_DIR)).Dockerfile -t $(CATALOG_IMG) ..

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRDs into the current cluster.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs from the current cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator to the current cluster.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator from the current cluster (its namespace is kept: see config/undeploy).
	$(KUSTOMIZE) build config/undeploy | kubectl delete --ignore-not-found -f -
	@echo "namespace meshkeeper-system is kept: meshkeeper never deletes a namespace that may hold what it did not make"

##@ Tools (cached in ~/.cache/meshkeeper or MESHKEEPER_TOOLS_DIR; compiler output in its logs/)

# Builds run side by side (each go build uses every core, but linking and
# module resolution do not), with no output sync: make would hold back each
# build's "building ..." line until the build ends. Kubernetes and kwok
# first: they share their k8s.io packages (hack/toolmod.sh), which the first
# to reach them compiles. (Longest first, k8s istio operator-sdk
# cert-manager olm ..., measured worse on a cold cache: the tools took 25
# min instead of 22.7.)
# TEST_TOOLS are the tools the tests run; `make test` builds them beside
# its own compiles (see test), k8s-tools alone.
TEST_TOOLS = k8s kwok controller-gen kustomize operator-sdk opm olm cert-manager istio promtool
.PHONY: k8s-tools
k8s-tools: ## Build every tool the tests run: the local Kubernetes, kwok, the generators, operator-sdk, opm, OLM, cert-manager, Istio and promtool (cached).
	@$(MAKE) -s -j4 $(TEST_TOOLS)

# make demo runs the local Kubernetes (and kubectl, for the user), kwok,
# Istio's istiod and proxy agent, and cert-manager only with
# WEBHOOK_CERTS=cert-manager; it needs none of the generators nor the OLM tools.
DEMO_TOOLS = k8s-with-kubectl kwok istio-demo $(if $(filter cert-manager,$(WEBHOOK_CERTS)),cert-manager)
.PHONY: demo-tools
demo-tools: ## Build only what make demo runs: the local Kubernetes with kubectl, kwok, istiod and pilot-agent (cert-manager with WEBHOOK_CERTS=cert-manager; cached).
	@$(MAKE) -s -j3 $(DEMO_TOOLS)

# hack/build-k8s.sh builds, in one go build, those of the named binaries
# that are missing, and returns at once when none is.
.PHONY: k8s
k8s: ## Build the local Kubernetes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (cached).
	@hack/build-k8s.sh $(K8S_VERSION) $(ETCD_VERSION) $(K8S_BIN)

.PHONY: k8s-with-kubectl
k8s-with-kubectl:
	@hack/build-k8s.sh $(K8S_VERSION) $(ETCD_VERSION) $(K8S_BIN) etcd kube-apiserver kube-controller-manager kube-scheduler kubectl

.PHONY: kubectl
kubectl: k8s ## Build kubectl of the same Kubernetes version (for exploring the demo cluster; cached).
	@hack/build-k8s.sh $(K8S_VERSION) $(ETCD_VERSION) $(K8S_BIN) kubectl

.PHONY: olm-tools
olm-tools: ## Build operator-sdk, opm (with bundle-validate) and OLM v0 (olm, catalog) from hack/tools/ (in parallel; cached).
	@$(MAKE) -s -j3 operator-sdk opm olm

# hack/build-tool.sh returns at once when the tool of the pinned version is built.
.PHONY: operator-sdk
operator-sdk:
	@hack/build-tool.sh operator-sdk $(dir $(OPERATOR_SDK))

.PHONY: opm
opm:
	@hack/build-tool.sh opm $(OPM_BIN)

.PHONY: olm
olm:
	@hack/build-tool.sh olm $(OLM_BIN)

# cert-manager's controller and cainjector (SelfSigned and CA issuers), run on
# the host against a simulated cluster by the tests and the demo.
.PHONY: cert-manager
cert-manager:
	@hack/build-tool.sh cert-manager $(CERT_MANAGER_BIN)

# Istio's istiod (pilot-discovery), proxy agent (pilot-agent) and istioctl, run
# on the host against a simulated cluster by the tests and the demo (which
# needs no istioctl).
.PHONY: istio
istio: ## Build Istio's pilot-discovery, pilot-agent and istioctl from hack/tools/istio (cached).
	@hack/build-tool.sh istio $(ISTIO_BIN)

.PHONY: promtool
promtool: ## Build Prometheus's promtool from hack/tools/promtool (make test-alerts runs it; cached).
	@hack/build-tool.sh promtool $(dir $(PROMTOOL))

.PHONY: istio-demo
istio-demo:
	@hack/build-tool.sh istio $(ISTIO_BIN) pilot-discovery pilot-agent

.PHONY: kwok
kwok: $(KWOK_BIN)/kwokctl
$(KWOK_BIN)/kwokctl:
	@hack/build-kwok.sh $(KWOK_VERSION) $(KWOK_BIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@GOBIN=$(dir $(CONTROLLER_GEN)) hack/quietly.sh controller-gen "controller-gen $(CONTROLLER_TOOLS_VERSION)" \
	  go install -trimpath sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	@GOBIN=$(dir $(KUSTOMIZE)) hack/quietly.sh kustomize "kustomize $(KUSTOMIZE_VERSION)" \
	  go install -trimpath sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
