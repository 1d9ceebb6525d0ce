#!/usr/bin/env python3
"""PyTorch side of the GRU/LSTM training benchmark (not part of CI).

Trains the same models as `target/release/examples/bench` (crate nn) on the same
El Born windows, with the same preprocessing (see crates/nn/examples/bench.rs),
times them with torch.set_num_threads(1) and (2), prints a side-by-side table
with the Rust results, and checks our exported ONNX models with onnxruntime.

    scripts/bench_torch.py [--data DIR] [--rust-out DIR] [--seeds N] [--threads 1,2] [--only study_gru,...]
    scripts/bench_torch.py --table-only   # the side-by-side tables from the saved results

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


def load_average():
    return float(Path("/proc/loadavg").read_text().split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--rust-out", default="target/nn-bench", help="the Rust bench's --out folder (results go there too)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="", help="comma-separated <config>_<cell> runs, e.g. study_gru (default: all four)")
    ap.add_argument("--table-only", action="store_true", help="print the table from saved results, train nothing")
    args = ap.parse_args()
    out = Path(args.rust_out)
    if args.table_only:
        print_table(out)
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
    only = [o for o in args.only.split(",") if o]
    out.mkdir(parents=True, exist_ok=True)
    for s in SETUPS:
        for cell in ("GRU", "LSTM"):
            name = f"{s['name']}_{cell.lower()}"
            if only and name not in only:
                continue
            load_before, started = load_average(), int(time.time())
            seeds = []
            for seed in range(args.seeds):
                secs, epochs, best_epoch, r = train_one(s, cell, seed, 1, d)
                print(f"{name} seed {seed} 1 thread: {secs:.3f} s/epoch, {epochs} epochs (best {best_epoch}), RMSE {r}, load {load_average():.2f}")
                seeds.append(dict(seed=seed, threads=1, seconds_per_epoch=secs, epochs_run=epochs, best_epoch=best_epoch, test_rmse=r.tolist()))
            fwd, both = flops_per_window(cell, x.shape[2], s["hidden"], s["layers"], len(TARGETS))
            epoch_flops = n_train * both + n_val * fwd
            one = sum(r["seconds_per_epoch"] for r in seeds) / len(seeds)
            timing = [dict(threads=1, seconds_per_epoch=one, gflops=epoch_flops / one / 1e9, what="mean over the seeds")]
            for t in (t for t in threads_list if t != 1):
                secs, epochs, _, _ = train_one(s, cell, 0, t, d)
                print(f"{name} seed 0 {t} threads: {secs:.3f} s/epoch, {epochs} epochs, load {load_average():.2f}")
                timing.append(dict(threads=t, seconds_per_epoch=secs, gflops=epoch_flops / secs / 1e9, what="seed 0"))
            result = dict(
                side="pytorch", name=name, config=s["name"], cell=cell, torch=torch.__version__,
                epoch_gflop=epoch_flops / 1e9, last_value_rmse=last_value.tolist(), seeds=seeds, timing=timing,
                started=started, finished=int(time.time()), load_before=load_before, load_after=load_average(),
            )
            (out / f"torch_{name}.json").write_text(json.dumps(result, indent=1))
    print_table(out)


def spread(values):
    """(max - min) / mean over the seeds, in percent."""
    v = np.asarray(values)
    return 100 * (v.max(axis=0) - v.min(axis=0)) / v.mean(axis=0)


def print_table(out):
    """Speed and accuracy tables from every results_*.json (Rust) and torch_*.json in `out`."""
    runs = {}
    for side, pattern in (("rust", "results_*.json"), ("pytorch", "torch_*.json")):
        for f in sorted(out.glob(pattern)):
            r = json.loads(f.read_text())
            runs[(r["name"], side)] = r
    names = [f"{s['name']}_{c}" for s in SETUPS for c in ("gru", "lstm")]
    stamp = lambda t: time.strftime("%H:%M", time.gmtime(t))  # noqa: E731
    print("\n| run | side | when (UTC) | load before/after | seeds |")
    print("|---|---|---|---|---|")
    for n in names:
        for side in ("rust", "pytorch"):
            r = runs.get((n, side))
            if r:
                print(f"| {n} | {side} | {stamp(r['started'])}-{stamp(r['finished'])} | {r['load_before']:.2f} / {r['load_after']:.2f} | {len(r['seeds'])} |")

    peak = next((r["peak_gflops"] for (n, side), r in runs.items() if side == "rust"), float("nan"))
    print(f"\nSpeed (1 thread: mean over the seeds; 2 threads: seed 0). Peak (Rust bench, 1 core): {peak:.1f} GFLOP/s")
    print("| run | threads | s/epoch Rust | s/epoch PyTorch | Rust / PyTorch | GFLOP/s Rust (% of peak) | GFLOP/s PyTorch (% of peak) |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        ru, py = runs.get((n, "rust")), runs.get((n, "pytorch"))
        if not (ru or py):
            continue
        threads = sorted({t["threads"] for r in (ru, py) if r for t in r["timing"]})
        for t in threads:
            a = next((x for x in (ru or {}).get("timing", []) if x["threads"] == t), None)
            b = next((x for x in (py or {}).get("timing", []) if x["threads"] == t), None)
            fmt_s = lambda x: f"{x['seconds_per_epoch']:.3f}" if x else "-"  # noqa: E731
            fmt_g = lambda x: f"{x['gflops']:.1f} ({100 * x['gflops'] / peak:.0f}%)" if x else "-"  # noqa: E731
            ratio = f"{a['seconds_per_epoch'] / b['seconds_per_epoch']:.2f}" if a and b else "-"
            print(f"| {n} | {t} | {fmt_s(a)} | {fmt_s(b)} | {ratio} | {fmt_g(a)} | {fmt_g(b)} |")

    print("\nAccuracy: test RMSE per target, original units, mean over the seeds (spread = (max - min) / mean)")
    print("| run | target | Rust | Rust spread | PyTorch | PyTorch spread | Rust / PyTorch | last value | below last value (Rust, PyTorch) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        ru, py = runs.get((n, "rust")), runs.get((n, "pytorch"))
        if not (ru and py):
            continue
        a = np.array([s["test_rmse"] for s in ru["seeds"]])
        b = np.array([s["test_rmse"] for s in py["seeds"]])
        last = np.array(ru["last_value_rmse"])
        sa, sb = spread(a), spread(b)
        for j, target in enumerate(TARGETS):
            ma, mb = a[:, j].mean(), b[:, j].mean()
            below = f"{'yes' if a[:, j].max() < last[j] else 'NO'}, {'yes' if b[:, j].max() < last[j] else 'NO'}"
            print(f"| {n} | {target} | {ma:.4g} | {sa[j]:.1f}% | {mb:.4g} | {sb[j]:.1f}% | {100 * (ma / mb - 1):+.1f}% | {last[j]:.4g} | {below} |")
        print(f"| {n} | epochs run (per seed) | {[s['epochs_run'] for s in ru['seeds']]} | | {[s['epochs_run'] for s in py['seeds']]} | | | | |")

    print()
    for name, diff in onnx_check(out).items():
        print(f"onnxruntime vs nn predict, {name}: max |diff| {diff:.2e} {'OK' if diff < 1e-4 else 'FAIL'}")


if __name__ == "__main__":
    main()
