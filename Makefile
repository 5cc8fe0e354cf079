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
export KUBEBUILDER_ASSETS = $(K8S_BIN)
export MESHKEEPER_K8S_BIN = $(K8S_BIN)
export MESHKEEPER_KWOK_BIN = $(KWOK_BIN)

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

.PHONY: istio-crds
istio-crds: ## Copy Istio's CRDs from the istio.io/api module in go.mod into internal/render/crds.
	hack/istio-crds.sh

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: verify-generated
verify-generated: controller-gen ## Fail when generated code is stale.
	hack/verify-generated.sh

.PHONY: verify-manifests
verify-manifests: kustomize ## Fail when the kustomize overlays do not build.
	$(KUSTOMIZE) build config/default >/dev/null
	$(KUSTOMIZE) build config/samples >/dev/null

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $(GO_FILES)

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: test
test: k8s-tools verify-generated verify-manifests vet gofmt-check ## Run every test: generated code, vet, gofmt, unit, envtest, end-to-end, a short fuzz.
	$(MAKE) -j2 --output-sync=target test-unit-then-fuzz test-e2e

# The fuzz run (whose instrumented build takes minutes on a cold cache) follows
# the unit suites while the end-to-end suite, mostly waiting on its clusters,
# runs beside them.
.PHONY: test-unit-then-fuzz
test-unit-then-fuzz: test-unit
	$(MAKE) -s fuzz-short FUZZFLAGS=-parallel=1

.PHONY: gofmt-check
gofmt-check:
	@test -z "$$(gofmt -l $(GO_FILES))" || { echo "gofmt needed on:"; gofmt -l $(GO_FILES); exit 1; }

.PHONY: fuzz-short
fuzz-short: ## Fuzz the injection webhook handler briefly (CI); run longer with FUZZTIME=10m.
	go test -run='^$$' -fuzz=FuzzInjectHandler -fuzztime=$(or $(FUZZTIME),20s) $(FUZZFLAGS) ./webhooks/

.PHONY: test-unit
test-unit: k8s-tools ## Run the unit and envtest suites (no simulated cluster).
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v /test/e2e)

.PHONY: test-e2e
E2E_PARALLEL ?= 4
test-e2e: k8s-tools ## Run the end-to-end suite on fresh simulated clusters, E2E_PARALLEL at a time (never cached: it builds the operator).
	go test $(GO_TEST_FLAGS) -count=1 -v -parallel $(E2E_PARALLEL) -timeout 30m ./test/e2e/

.PHONY: demo
demo: k8s-tools kubectl ## Start a simulated cluster, install Istio with meshkeeper, inject and upgrade (leaves it running).
	go run ./hack/demo up

.PHONY: demo-down
demo-down: ## Stop the demo's operator and delete its cluster.
	go run ./hack/demo down

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/.
	go build -o bin/manager .

.PHONY: run
RUN_NAMESPACE ?= meshkeeper-system
run: ## Run the manager against the current kubeconfig (ARGS="--webhook-url https://<host>:9443" and other flags).
	kubectl create namespace $(RUN_NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	go run . --leader-elect=false --namespace $(RUN_NAMESPACE) $(ARGS)

.PHONY: docker-build
docker-build: ## Build the manager image (needs a container runtime).
	docker build -t $(IMG) .

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
undeploy: kustomize ## Remove the operator from the current cluster.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Tools (cached in $(TOOLS_DIR))

.PHONY: k8s-tools
k8s-tools: ## Build the local Kubernetes, kwok and the generators (in parallel; cached).
	@$(MAKE) -s -j4 --output-sync=line $(K8S_BIN)/kube-apiserver kwok controller-gen kustomize

$(K8S_BIN)/kube-apiserver:
	hack/build-k8s.sh $(K8S_VERSION) $(ETCD_VERSION) $(K8S_BIN)

.PHONY: kubectl
kubectl: $(K8S_BIN)/kubectl ## Build kubectl of the same Kubernetes version (for exploring the demo cluster; cached).
$(K8S_BIN)/kubectl: $(K8S_BIN)/kube-apiserver
	hack/build-k8s.sh $(K8S_VERSION) $(ETCD_VERSION) $(K8S_BIN) kubectl

.PHONY: kwok
kwok: $(KWOK_BIN)/kwokctl
$(KWOK_BIN)/kwokctl:
	GOBIN=$(KWOK_BIN) go install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	GOBIN=$(KWOK_BIN) go install sigs.k8s.io/kwok/cmd/kwokctl@$(KWOK_VERSION)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(dir $(CONTROLLER_GEN)) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	GOBIN=$(dir $(KUSTOMIZE)) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
