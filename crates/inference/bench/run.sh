#!/usr/bin/env bash
# Inference benchmarks for docs/benchmarks.md ("## Inference"). No stack needed.
#
#   crates/inference/bench/run.sh          model latency (tract vs onnxruntime) + HTTP load at 40 and 200 clients,
#                                          closed loop and paced (40 clients at 2,000 and 4,000 requests/s)
#   crates/inference/bench/run.sh model    model latency only
#   crates/inference/bench/run.sh load     HTTP load only
#
# Uses the workspace builds (`cargo build --release --workspace --bins` for
# inference-bench, `cargo build --workspace --all-targets` for the export_nn
# example) and builds them only when missing. The models are the published
# study's, exported by the trainers' exporter (nn::export_onnx): GRU and LSTM,
# hidden 128, 1 layer, 11 inputs, 10-row windows, 5 targets one step ahead.
# onnxruntime comes from PyPI into ${FLTS_CACHE:-~/.cache/flts}/bench-venv-ort
# (created once). Prints one line per measurement plus the load average before
# and after; the server and the load generator share the machine's cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
WHAT=${1:-all}
CACHE=${FLTS_CACHE:-$HOME/.cache/flts}
VENV=$CACHE/bench-venv-ort
PORT=${BENCH_PORT:-18080}
DURATION=${BENCH_DURATION:-20}
ITERS=${BENCH_ITERS:-20000}
SERVE_CELL=${BENCH_SERVE_CELL:-gru}

BIN=target/release/inference-bench
EXPORT=target/debug/examples/export_nn
[ -x "$BIN" ] || cargo build --release --workspace --bins
[ -x "$EXPORT" ] || cargo build --workspace --examples
TMP=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

# The study's shape: hidden 128, 1 layer, 11 features, 10 rows, 5 targets.
SHAPE=(--hidden 128 --layers 1 --features 11 --targets 5 --input-len 10)
for cell in gru lstm; do
  "$EXPORT" "$cell" 1 128 11 10 5 "$TMP/$cell.onnx"
done

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$WHAT" = all ] || [ "$WHAT" = model ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet onnxruntime numpy
  fi
  for cell in gru lstm; do
    "$BIN" model --cell "$cell" "${SHAPE[@]}" --onnx "$TMP/$cell.onnx" --iters "$ITERS"
    "$VENV/bin/python" crates/inference/bench/ort_bench.py "$TMP/$cell.onnx" --input-len 10 --features 11 --iters "$ITERS"
  done
fi

if [ "$WHAT" = all ] || [ "$WHAT" = load ]; then
  "$BIN" serve --cell "$SERVE_CELL" "${SHAPE[@]}" --onnx "$TMP/$SERVE_CELL.onnx" --http-addr "127.0.0.1:$PORT" &
  SERVER=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # Closed loop (as fast as the server answers), then 40 clients paced to the
  # issue's 2,000 requests/s and to twice that.
  for run in "40 0" "200 0" "40 2000" "40 4000"; do
    set -- $run
    "$BIN" load --addr "127.0.0.1:$PORT" --clients "$1" --rate "$2" --duration "$DURATION" --warmup 3 --input-len 10 --features 11
  done
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
