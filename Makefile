# guestagent-operator Makefile (kubebuilder-style targets; tools are built into ./bin).
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GO ?= go
LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
KUSTOMIZE ?= $(LOCALBIN)/kustomize
HELM ?= $(LOCALBIN)/helm
PROMTOOL ?= $(LOCALBIN)/promtool
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
KUBE_API_LINTER ?= $(LOCALBIN)/golangci-lint-kube-api-linter

CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.1
HELM_VERSION ?= v3.22.0
PROMETHEUS_VERSION ?= v0.316.0
GOLANGCI_LINT_VERSION ?= v2.12.2
# kube-api-linter has no releases: a pseudo-version. Its standalone binary is golangci-lint with
# the linter built in, installed from the Go module proxy (`golangci-lint custom` would clone
# golangci-lint from GitHub instead).
KUBE_API_LINTER_VERSION ?= v0.0.0-20260716143926-092fe0c72997
K8S_VERSION ?= 1.37.2

IMG_MANAGER ?= guestagent/manager:dev
IMG_AGENTD ?= guestagent/agentd:dev

# Packages tested by `make test`: everything but the end-to-end suite.
UNIT_PKGS = $$($(GO) list ./... | grep -v -e /test/e2e -e /test/cluster)
FUZZTIME ?= 20s

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: deps controller-gen ## Generate CRDs and one RBAC role per binary.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=agentd-role paths=./agentd/... output:rbac:artifacts:config=config/agentd/rbac
	bash hack/sync-chart-crds.sh

.PHONY: generate
generate: controller-gen ## Generate deepcopy code and the apply configurations (api/applyconfiguration).
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) applyconfiguration:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files are not committed or go.mod/go.sum are not tidy.
	@$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; exit 1; }
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config charts | grep '^??')" || { git status --porcelain -- api config charts; echo "untracked generated files"; exit 1; }

.PHONY: fmt
fmt: ## go fmt.
	$(GO) fmt ./...

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: lint
lint: deps golangci-lint kube-api-linter ## Run golangci-lint, and kube-api-linter on the API types.
	$(GOLANGCI_LINT) run ./...
	$(KUBE_API_LINTER) run --config .golangci-kal.yml ./api/...

##@ Build

.PHONY: build
build: deps ## Build both binaries (bin/manager, bin/agentd) and the guest-side OGA agent.
	$(GO) build -o $(LOCALBIN)/manager ./cmd/manager
	$(GO) build -o $(LOCALBIN)/agentd ./cmd/agentd
	CGO_ENABLED=0 $(GO) build -o $(LOCALBIN)/oga-guest ./cmd/oga-guest
	$(GO) build -o $(LOCALBIN)/controlplane ./test/controlplane

.PHONY: images
images: ## Build the manager and agentd images without Docker (docker-archive tarballs in bin/images).
	bash hack/images.sh product

.PHONY: docker-build
docker-build: ## Build the images (needs a Docker engine; none runs on the CI machines).
	docker build -t $(IMG_MANAGER) -f Dockerfile .
	docker build -t $(IMG_AGENTD) -f Dockerfile.agentd .

##@ Test

.PHONY: deps
deps: ## Install the Debian packages the build and tests need (root, idempotent, silent when present).
	@bash hack/install-deps.sh

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from the module proxy into bin/k8s (cached).
	@bash hack/envtest-assets.sh >/dev/null

.PHONY: test
test: deps envtest helm kustomize promtool manifests generate fmt vet ## Unit, envtest, libvirt test-driver and host qemu-ga tests (-race).
	bash hack/run-tests.sh unit

.PHONY: test-real
test-real: deps envtest ## Tests against a real libvirtd with TCG guests running the real qemu-ga.
	bash hack/run-tests.sh real

.PHONY: test-migration
test-migration: deps envtest ## Live migration between two real libvirtd nodes on this machine, one in-process agentd each.
	bash hack/run-tests.sh migration

.PHONY: test-e2e
test-e2e: deps envtest build prometheus ## End to end: real libvirtd + guests + envtest control plane + both binaries.
	bash hack/run-tests.sh e2e

.PHONY: test-cluster
test-cluster: deps envtest build helm kustomize ## Real single-node cluster (kubelet, containerd): images, helm install, kustomize, checks.
	bash hack/test-cluster.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	bash hack/run-tests.sh fuzz $(FUZZTIME)

.PHONY: demo-check
demo-check: deps envtest build ## Run the demo for a few seconds and fail if it does not work.
	DEMO_EXIT_AFTER=3 bash hack/demo.sh

.PHONY: test-all
test-all: deps verify-generated lint test test-real test-migration test-e2e test-cluster demo-check fuzz helm-lint kustomize-build ## Everything CI runs.

.PHONY: bench
bench: deps envtest ## Run the benchmarks and print a table (see docs/benchmarks.md).
	bash hack/bench.sh

##@ Demo

.PHONY: demo
demo: deps envtest build ## Real control plane + libvirtd + 2 guests with real agents + both binaries.
	bash hack/demo.sh

.PHONY: demo-cluster
demo-cluster: deps envtest build helm ## The demo inside a real single-node cluster: images, helm install, agentd as a pod.
	bash hack/demo-cluster.sh

.PHONY: cluster-up cluster-down
cluster-up: deps envtest ## Start the local single-node cluster (hack/cluster.sh up; KUBECONFIG from `hack/cluster.sh env`).
	bash hack/cluster.sh up
cluster-down: ## Stop it and restore the host.
	bash hack/cluster.sh down

##@ Deployment

.PHONY: kustomize-build
kustomize-build: kustomize ## Render config/default.
	$(KUSTOMIZE) build config/default > /dev/null
	@echo "kustomize build config/default: ok"

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster of ~/.kube/config.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the controller and agentd.
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the deployment.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

.PHONY: helm-lint
helm-lint: helm ## helm lint + helm template of charts/guestagent-operator.
	$(HELM) lint charts/guestagent-operator
	$(HELM) lint charts/guestagent-operator -f charts/guestagent-operator/ci/all-values.yaml
	$(HELM) template ga charts/guestagent-operator --namespace guestagent-system > /dev/null
	$(HELM) template ga charts/guestagent-operator --namespace guestagent-system -f charts/guestagent-operator/ci/all-values.yaml > /dev/null
	@echo "helm template: ok"

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen kustomize helm golangci-lint kube-api-linter prometheus promtool
controller-gen: $(LOCALBIN)
	@test -x $(CONTROLLER_GEN) && $(CONTROLLER_GEN) --version | grep -q $(CONTROLLER_TOOLS_VERSION) || \
		GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
kustomize: $(LOCALBIN)
	@test -x $(KUSTOMIZE) || GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
helm: $(LOCALBIN)
	@test -x $(HELM) || GOBIN=$(LOCALBIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
prometheus: $(LOCALBIN) ## Build Prometheus from the module proxy (the e2e tier scrapes agentd with it).
	@test -x $(LOCALBIN)/prometheus || GOBIN=$(LOCALBIN) $(GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION)
promtool: $(LOCALBIN)
	@test -x $(PROMTOOL) || GOBIN=$(LOCALBIN) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)
golangci-lint: $(LOCALBIN)
	@test -x $(GOLANGCI_LINT) || GOBIN=$(LOCALBIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
kube-api-linter: $(LOCALBIN)
	@test -x $(KUBE_API_LINTER) || GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter@$(KUBE_API_LINTER_VERSION)
