# kubeinvoke — the make targets are the interface (see README).
SHELL := /bin/bash
CARGO ?= cargo
export KUBEINVOKE_CACHE ?= $(HOME)/.cache/kubeinvoke

.PHONY: all build crds lint unit lua-test e2e conformance test demo cluster-up cluster-down prereqs clean bench bench-smoke chaos

all: build

## prereqs: install the Debian packages and build/cache kube-apiserver + kubectl v1.20.2 (once)
prereqs:
	@hack/prereqs.sh

## build: the operator and the emulator (debug)
build:
	$(CARGO) build --workspace --bins

## crds: regenerate crds/ (and the chart's copy) from the Rust types
crds:
	$(CARGO) run -q --bin kubeinvoke -- crds > crds/kubeinvoke.io.yaml
	cp crds/kubeinvoke.io.yaml charts/kubeinvoke/crds/kubeinvoke.io.yaml

## lint: rustfmt check + clippy with warnings denied
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: unit tests of the operator, and the emulator's own tests (no cluster needed)
unit:
	$(CARGO) test -p kubeinvoke --lib --bins
	$(CARGO) test -p kubeinvoke-emulator

## e2e: end-to-end tests against a fresh local kube-apiserver v1.20.2 (+ the emulator)
e2e: prereqs build
	@hack/e2e.sh

## conformance: the emulator driven by the official Azure SDK for Python
conformance: build
	@bash emulator/conformance/run.sh

## lua-test: the Argo CD health checks, run by Debian's Lua 5.1 (Argo CD runs Lua 5.1)
lua-test:
	@hack/lua-test.sh

## bench: kubeinvoke against ARM's request budget and against the Azure SDK for Python (release build) -> bench/RESULTS.md
bench: prereqs
	@hack/bench.sh

## bench-smoke: the benchmark with small N on the debug build (part of make test)
bench-smoke: prereqs build
	@hack/bench.sh --smoke

## chaos: 200 commands under SIGKILLs, an API server restart, 30% 429 / 5% 5xx; bad input; parser property tests
chaos: prereqs
	@hack/chaos.sh

## test: everything CI runs: unit, Lua, end-to-end (chaos and bad-input smoke included), conformance, bench smoke
test: prereqs unit lua-test e2e conformance bench-smoke
	@echo "make test: unit, Lua, end-to-end (kube-apiserver v1.20.2 + emulator + operator) and Azure SDK conformance tests passed"

## demo: local control plane + emulator + operator + examples
demo: prereqs build
	@hack/demo.sh

## cluster-up / cluster-down: the local control plane for people (env in /tmp/kubeinvoke-cluster/cluster.env)
cluster-up: prereqs
	@hack/cluster.sh up >/dev/null && echo "run: source /tmp/kubeinvoke-cluster/cluster.env   (then: \$$KUBEINVOKE_KUBECTL get ns)"

cluster-down:
	@hack/cluster.sh down
