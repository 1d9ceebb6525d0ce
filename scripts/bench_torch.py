#!/usr/bin/env python3
"""PyTorch side of the GRU/LSTM training benchmark (not part of CI).

Trains the same models as `cargo run --release -p nn --example bench` on the same
El Born windows, with the same preprocessing (see crates/nn/examples/bench.rs),
times them with torch.set_num_threads(1) and (2), prints a side-by-side table
with the Rust results, and checks our exported ONNX models with onnxruntime.

    scripts/bench_torch.py [--data DIR] [--rust-out DIR] [--seeds N] [--threads 1,2]

Set-up (CPU wheel, in a venv outside the repository):
    python3 -m venv ~/.cache/flts/bench-venv
    ~/.cache/flts/bench-venv/bin/pip install torch onnxruntime numpy
Run it with that venv's python. OMP_WAIT_POLICY=PASSIVE is set below before
torch loads: without it PyTorch's second thread spins and runs 7-10x slower on a
shared machine.
"""

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

TARGETS = ["rnti_count", "rb_down", "rb_up", "down", "up"]
INPUT_LEN = 10
VALIDATION_FRACTION = 0.2
SETUPS = [
    dict(name="study", hidden=128, layers=1, batch=128, lr=1e-3, epochs=100, patience=10),
    dict(name="reference", hidden=128, layers=2, batch=64, lr=1e-4, epochs=10, patience=0),
]
CLIP_NORM = 1.0


def read_csv(path):
    """Columns without `time`; blanks take the previous row's value (the next
    row's at the very start), as in the Rust bench."""
    lines = Path(path).read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "time"]
    rows = []
    for line in lines[1:]:
        cells = line.split(",")
        row = []
        for k, i in enumerate(keep):
            cell = cells[i].strip() if i < len(cells) else ""
            if cell:
                row.append(float(cell))
            else:
                row.append(rows[-1][k] if rows else math.nan)
        rows.append(row)
    data = np.array(rows, dtype=np.float64)
    for c in range(data.shape[1]):
        col = data[:, c]
        finite = np.flatnonzero(~np.isnan(col))
        if len(finite):
            col[: finite[0]] = col[finite[0]]
    return [header[i] for i in keep], data


def windows(data, offset, scale, targets):
    scaled = ((data - offset) / scale).astype(np.float32)
    n = len(data) - INPUT_LEN
    x = np.stack([scaled[i : i + INPUT_LEN] for i in range(n)])
    y = scaled[INPUT_LEN:, targets]
    actual = data[INPUT_LEN:, targets]
    last = data[INPUT_LEN - 1 : -1, targets]
    return x, y, actual, last


def rmse(pred, actual):
    return np.sqrt(((pred - actual) ** 2).mean(axis=0))


class Model(nn.Module):
    def __init__(self, cell, n_features, hidden, layers, n_out):
        super().__init__()
        rnn = nn.GRU if cell == "GRU" else nn.LSTM
        self.rnn = rnn(n_features, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def flops_per_window(cell, n_features, hidden, layers, n_out):
    """Same nominal count as the Rust bench: (forward, forward + backward)."""
    g = (3 if cell == "GRU" else 4) * hidden
    fwd, bwd = 2 * hidden * n_out, 4 * hidden * n_out
    for layer in range(layers):
        n_in = n_features if layer == 0 else hidden
        fwd += INPUT_LEN * (2 * n_in * g + 2 * hidden * g)
        bwd += INPUT_LEN * (2 * n_in * g + 4 * hidden * g) + (INPUT_LEN * 2 * n_in * g if layer > 0 else 0)
    return fwd, fwd + bwd


def train_one(setup, cell, seed, threads, d):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tx, ty, vx, vy = d["tx"], d["ty"], d["vx"], d["vy"]
    model = Model(cell, tx.shape[2], setup["hidden"], setup["layers"], len(TARGETS))
    opt = torch.optim.Adam(model.parameters(), lr=setup["lr"])
    loss_fn = nn.MSELoss()
    best, best_state, best_epoch, times = math.inf, None, 0, []
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(1, setup["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(tx), generator=gen)
        for i in range(0, len(tx), setup["batch"]):
            idx = order[i : i + setup["batch"]]
            opt.zero_grad()
            loss = loss_fn(model(tx[idx]), ty[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            opt.step()
        model.eval()
        with torch.no_grad():
            val = loss_fn(model(vx), vy).item()
        times.append(time.perf_counter() - started)
        if val < best:
            best, best_epoch = val, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif setup["patience"] and epoch - best_epoch >= setup["patience"]:
            break
    model.load_state_dict(best_state)
    with torch.no_grad():
        pred = model(d["test_x"]).numpy().astype(np.float64)
    pred = pred * d["scale"][d["targets"]] + d["offset"][d["targets"]]
    return sum(times) / len(times), len(times), best_epoch, rmse(pred, d["test_actual"])


def onnx_check(rust_out):
    """Our exported ONNX in onnxruntime against our predict()."""
    import onnxruntime as ort

    results = {}
    for check in sorted(Path(rust_out).glob("*_check.json")):
        name = check.name[: -len("_check.json")]
        c = json.loads(check.read_text())
        x = np.array(c["input"], dtype=np.float32).reshape(c["shape"])
        sess = ort.InferenceSession(str(Path(rust_out) / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x})[0]
        want = np.array(c["expected"], dtype=np.float32).reshape(got.shape)
        results[name] = float(np.abs(got - want).max())
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--rust-out", default="target/nn-bench", help="the Rust bench's --out folder")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--table-only", action="store_true", help="reprint the table from saved results, train nothing")
    args = ap.parse_args()
    saved = Path(args.rust_out) / "torch_results.json"
    if args.table_only:
        s = json.loads(saved.read_text())
        table = {tuple(k): (v[0], v[1], np.array(v[2])) for k, v in s["table"]}
        print_table(table, np.array(s["last_value"]), s["seeds"], args.rust_out)
        return

    names, train_raw = read_csv(Path(args.data) / "ElBorn.csv")
    names_test, test_raw = read_csv(Path(args.data) / "ElBorn_test.csv")
    assert names == names_test, "train and test columns differ"
    targets = [names.index(t) for t in TARGETS]
    offset = train_raw.min(axis=0)
    span = train_raw.max(axis=0) - offset
    scale = np.where(span > 0, span, 1.0)
    x, y, _, _ = windows(train_raw, offset, scale, targets)
    n_val = math.ceil(len(x) * VALIDATION_FRACTION - 1e-9)
    n_train = len(x) - n_val
    test_x, _, test_actual, test_last = windows(test_raw, offset, scale, targets)
    d = dict(
        tx=torch.from_numpy(x[:n_train]),
        ty=torch.from_numpy(y[:n_train]),
        vx=torch.from_numpy(x[n_train:]),
        vy=torch.from_numpy(y[n_train:]),
        test_x=torch.from_numpy(test_x),
        test_actual=test_actual,
        offset=offset,
        scale=scale,
        targets=targets,
    )
    last_value = rmse(test_last, test_actual)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"El Born: {n_train} train + {n_val} validation windows, {len(test_x)} test windows")
    print("last-value RMSE", ", ".join(f"{v:.4e}" for v in last_value))

    threads_list = [int(t) for t in args.threads.split(",")]
    table = {}
    for s in SETUPS:
        for cell in ("GRU", "LSTM"):
            rmses, times = [], {}
            for seed in range(args.seeds):
                secs, epochs, best_epoch, r = train_one(s, cell, seed, 1, d)
                print(f"{s['name']}_{cell.lower()} seed {seed} 1 thread: {secs:.3f} s/epoch, {epochs} epochs (best {best_epoch}), RMSE {r}")
                rmses.append(r)
                if seed == 0:
                    times[1] = secs
            for t in (t for t in threads_list if t != 1):
                secs, epochs, _, _ = train_one(s, cell, 0, t, d)
                print(f"{s['name']}_{cell.lower()} seed 0 {t} threads: {secs:.3f} s/epoch, {epochs} epochs")
                times[t] = secs
            fwd, both = flops_per_window(cell, x.shape[2], s["hidden"], s["layers"], len(TARGETS))
            epoch_flops = n_train * both + n_val * fwd
            for t, secs in times.items():
                table[(s["name"], cell, t)] = (secs, epoch_flops / secs / 1e9, np.mean(rmses, axis=0))
    Path(args.rust_out).mkdir(parents=True, exist_ok=True)
    saved.write_text(
        json.dumps(
            dict(
                seeds=args.seeds,
                last_value=last_value.tolist(),
                table=[[list(k), [v[0], v[1], v[2].tolist()]] for k, v in table.items()],
            )
        )
    )
    print_table(table, last_value, args.seeds, args.rust_out)


def print_table(table, last_value, seeds, rust_out):
    rust = {}
    results = Path(rust_out) / "results.json"
    if results.exists():
        for r in json.loads(results.read_text())["runs"]:
            rust[(r["config"], r["cell"], r["threads"])] = r
    print()
    print(f"| config | cell | threads | s/epoch Rust | s/epoch PyTorch | GFLOP/s Rust | GFLOP/s PyTorch | test RMSE Rust / PyTorch (mean of {seeds} seeds; {', '.join(TARGETS)}) |")
    print("|---|---|---|---|---|---|---|---|")
    for (config, cell, t), (secs, gflops, r) in table.items():
        ru = rust.get((config, cell, t))
        r_secs = f"{ru['seconds_per_epoch']:.3f}" if ru else "-"
        r_gf = f"{ru['gflops']:.1f}" if ru else "-"
        if ru and t == 1:
            ratio = "; ".join(f"{a:.4g} / {b:.4g} ({100 * (a / b - 1):+.1f}%)" for a, b in zip(ru["test_rmse"], r))
        elif t == 1:
            ratio = "; ".join(f"- / {b:.4g}" for b in r)
        else:
            ratio = ""
        print(f"| {config} | {cell} | {t} | {r_secs} | {secs:.3f} | {r_gf} | {gflops:.1f} | {ratio} |")
    print("last-value RMSE:", ", ".join(f"{v:.4g}" for v in last_value))

    if Path(rust_out).exists():
        print()
        for name, diff in onnx_check(rust_out).items():
            print(f"onnxruntime vs nn predict, {name}: max |diff| {diff:.2e} {'OK' if diff < 1e-4 else 'FAIL'}")


if __name__ == "__main__":
    main()
