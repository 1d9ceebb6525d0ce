#!/usr/bin/env bash
# Inference benchmarks for docs/benchmarks.md ("## Inference"). No stack needed.
#
#   crates/inference/bench/run.sh          model latency (tract vs onnxruntime) + HTTP load at 40 and 200 clients
#   crates/inference/bench/run.sh model    model latency only
#   crates/inference/bench/run.sh load     HTTP load only
#
# Builds inference-bench in release, creates a Python venv with onnxruntime
# under ${FLTS_CACHE:-~/.cache/flts}/bench-venv once, and prints one line per
# measurement. The server and the load generator share the machine's cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
WHAT=${1:-all}
CACHE=${FLTS_CACHE:-$HOME/.cache/flts}
VENV=$CACHE/bench-venv
PORT=${BENCH_PORT:-18080}
DURATION=${BENCH_DURATION:-20}

cargo build --release --quiet -p inference --bin inference-bench
BIN=target/release/inference-bench
TMP=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$WHAT" = all ] || [ "$WHAT" = model ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet onnxruntime numpy
  fi
  # The published study's models: 2 layers, hidden 128, 10 input rows. GRU
  # gets 2 input features (tract 0.23.9's fused GRU needs input size >= 2, see
  # CRATE-NOTES section 3), LSTM 1.
  for spec in "gru 2" "lstm 1"; do
    set -- $spec
    "$BIN" model --cell "$1" --hidden 128 --layers 2 --features "$2" --input-len 10 --write-onnx "$TMP/$1.onnx"
    "$VENV/bin/python" crates/inference/bench/ort_bench.py "$TMP/$1.onnx" --input-len 10 --features "$2"
  done
fi

if [ "$WHAT" = all ] || [ "$WHAT" = load ]; then
  "$BIN" serve --cell gru --hidden 128 --layers 2 --features 2 --http-addr "127.0.0.1:$PORT" &
  SERVER=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  for clients in 40 200; do
    "$BIN" load --addr "127.0.0.1:$PORT" --clients "$clients" --duration "$DURATION" --warmup 3 --input-len 10 --features 2
  done
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
