# One image for every FLTS binary (preprocess, train-gru, train-lstm, prophet,
# eval, inference, flts); docker-compose.yaml picks the binary per service.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      -p preprocess -p train-nn -p prophet -p eval -p inference -p flts \
 && mkdir /out \
 && cp target/release/preprocess target/release/train-gru target/release/train-lstm \
       target/release/prophet target/release/eval target/release/inference target/release/flts /out/

FROM debian:bookworm-slim
# libssl3 for SASL_SSL to Kafka; curl for health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin flts
COPY --from=build /out/ /usr/local/bin/
USER 10001
ENV LOG_FORMAT=json METRICS_ADDR=0.0.0.0:9090
EXPOSE 9090
