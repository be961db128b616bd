# syntax=docker/dockerfile:1
# The control plane image: the intentgate-control-plane binary on distroless (glibc and CA certificates, no shell,
# no package manager), running as the unprivileged nonroot user (65532). Migrations are compiled into the binary.
#
# Build from the repository root (BuildKit then reads control-plane.Dockerfile.dockerignore beside this file):
#   docker build -f deploy/docker/control-plane.Dockerfile -t ghcr.io/intentgate/intentgate-control-plane:0.1.0 .
# The build machines of this repository have no container engine: this file is not built by `make test`, the
# binary it produces (`cargo build --profile server -p intentgate-control-plane`) is.
# Pin both base images by digest in your pipeline (FROM …@sha256:…) for reproducible builds.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile server -p intentgate-control-plane \
 && install -D target/server/intentgate-control-plane /out/bin/intentgate-control-plane \
 && install -d /out/data

# Debian 12 like the build stage, so the binary finds the glibc it was linked against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bin/intentgate-control-plane /usr/local/bin/intentgate-control-plane
# The working directory, where the default SQLite database (sqlite://intentgate.db) lives for `docker run`;
# Kubernetes mounts a volume there or sets INTENTGATE_DATABASE_URL.
COPY --from=build --chown=65532:65532 /out/data /var/lib/intentgate
WORKDIR /var/lib/intentgate
USER 65532:65532
# REST (admin API, /healthz, /metrics) and gRPC (filter sync), on every interface of the container.
ENV INTENTGATE_HTTP_ADDR=0.0.0.0:8081 \
    INTENTGATE_GRPC_ADDR=0.0.0.0:8082 \
    INTENTGATE_LOG_FORMAT=json
EXPOSE 8081 8082
ENTRYPOINT ["/usr/local/bin/intentgate-control-plane"]
