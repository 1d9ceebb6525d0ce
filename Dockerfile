# One image for every FLTS binary: each stage of the topology (`flts topology
# stages`) and the CLI `flts`; docker-compose.yaml picks the binary per service.
#
# The base images are build args so that a machine without a registry can
# stand in its own (scripts/compose builds them from debootstrap). The
# `runtime` stage is the image without binaries: scripts/compose builds it
# from this file (--target runtime) and copies host-built binaries onto it
# (deploy/local/stage.Containerfile) instead of compiling here.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS runtime
# libssl3 for SASL_SSL to Kafka; curl for health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin flts
ENV LOG_FORMAT=json METRICS_ADDR=0.0.0.0:9090
EXPOSE 9090
USER 10001

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir /out \
 && for b in $(target/release/flts topology stages) flts; do cp "target/release/$b" /out/; done

FROM runtime
COPY --from=build /out/ /usr/local/bin/
