"""Single-window latency of onnxruntime on an ONNX file (the tract comparison).

Usage: python ort_bench.py MODEL.onnx --input-len 10 --features 2 --iters 20000
Prints one line in the format of `inference-bench model`.
"""
import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input-len", type=int, default=10)
    ap.add_argument("--features", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = (np.arange(a.input_len * a.features) % 7 / 7.0).astype(np.float32).reshape(a.input_len, 1, a.features)
    out0 = float(sess.run(None, {name: x})[0].reshape(-1)[0])
    for _ in range(a.iters // 10):
        sess.run(None, {name: x})
    lat = []
    t_all = time.perf_counter()
    for _ in range(a.iters):
        t = time.perf_counter()
        sess.run(None, {name: x})
        lat.append((time.perf_counter() - t) * 1e6)
    mean = (time.perf_counter() - t_all) * 1e6 / a.iters
    lat.sort()
    per_window = []
    for n in (1, 32, 256):
        xb = np.repeat(x, n, axis=1)
        reps = max(a.iters // n, 20)
        t = time.perf_counter()
        for _ in range(reps):
            sess.run(None, {name: xb})
        per_window.append(f"{n}:{(time.perf_counter() - t) * 1e6 / (reps * n):.1f}")
    print(
        f"onnxruntime={ort.__version__} threads={a.threads} iters={a.iters} out0={out0:.6f} mean_us={mean:.1f} "
        f"p50_us={statistics.median(lat):.1f} p99_us={lat[int(0.99 * (len(lat) - 1))]:.1f} "
        f"per_window_us_at_batch={','.join(per_window)}"
    )


if __name__ == "__main__":
    main()
