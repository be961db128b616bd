# syntax=docker/dockerfile:1
# The filter as an OCI image: one layer holding /plugin.wasm and nothing else. That is the layout Istio pulls for a
# WasmPlugin or an ECDS extension config (oci://…), and what a Kubernetes image volume mounts for the Envoy sidecar
# (deploy/kubernetes/tool-server: /etc/intentgate/filter/plugin.wasm). It runs nothing: it is data.
#
# Build from the repository root (BuildKit then reads filter.Dockerfile.dockerignore beside this file):
#   docker build -f deploy/docker/filter.Dockerfile -t ghcr.io/intentgate/intentgate-filter:0.1.0 .
# The build machines of this repository have no container engine: this file is not built by `make test`, the
# module it packages (`make wasm`: target/wasm32-wasip1/release/intentgate_filter.wasm) is, and runs in Envoy there.
# Pin the base image by digest in your pipeline (FROM …@sha256:…) for reproducible builds.

FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip1
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked -p intentgate-filter --target wasm32-wasip1 --release \
 && install -D -m 0444 target/wasm32-wasip1/release/intentgate_filter.wasm /out/plugin.wasm

FROM scratch
LABEL org.opencontainers.image.title="intentgate-filter" \
      org.opencontainers.image.description="IntentGate proxy-wasm filter for Envoy (plugin.wasm)"
COPY --from=build /out/plugin.wasm /plugin.wasm
