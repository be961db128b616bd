# syntax=docker/dockerfile:1
# The native filter as an OCI image: one layer holding /libintentgate_native.so and nothing else, the Envoy dynamic
# module `make native` builds. A Kubernetes image volume mounts it for the Envoy sidecar
# (deploy/kubernetes/tool-server-native: /etc/intentgate/filter/libintentgate_native.so) and for Envoy Gateway's
# proxies (deploy/envoy-gateway/envoyproxy.yaml). It runs nothing: it is data.
#
# Build from the repository root (BuildKit then reads filter-native.Dockerfile.dockerignore beside this file):
#   docker build --platform linux/amd64 -f deploy/docker/filter-native.Dockerfile \
#     -t ghcr.io/intentgate/intentgate-filter-native:0.1.0 .
# The module is Linux x86_64 only, built against Envoy 1.40's dynamic-module ABI: it loads in Envoy 1.40 and 1.41
# (README, "The native build"); tag the image with the Envoy versions it serves if you run several. It is linked
# against the build stage's glibc (Debian 12, 2.36): the Envoy that loads it needs that glibc or newer (Envoy's
# distroless images are Debian 12).
# The build machines of this repository have no container engine: this file is not built by `make test`, the
# module it packages (`make native`: target/native/libintentgate_native.so) is, and runs in Envoy there.
# Pin the base image by digest in your pipeline (FROM …@sha256:…) for reproducible builds.

FROM --platform=linux/amd64 rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The `native` profile unwinds: the module's panic barrier needs it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile native -p intentgate-native \
 && install -D -m 0444 target/native/libintentgate_native.so /out/libintentgate_native.so

FROM scratch
LABEL org.opencontainers.image.title="intentgate-filter-native" \
      org.opencontainers.image.description="IntentGate as an Envoy dynamic module for Envoy 1.40 and 1.41, linux/amd64 (libintentgate_native.so)"
COPY --from=build /out/libintentgate_native.so /libintentgate_native.so
