//! GRU/LSTM training benchmark on the El Born data (not part of CI).
//!
//! ```sh
//! cargo build --release --workspace --examples
//! target/release/examples/bench [--data DIR] [--out DIR] [--seeds N] [--threads 1,2] [--only study_gru,...]
//! ```
//! Reads `ElBorn.csv` (train part) and `ElBorn_test.csv` (test part) from `--data`
//! (default `/work/shared/data`) at run time; the data has no licence and is never
//! copied into the repository. Preprocessing, identical in `scripts/bench_torch.py`:
//! drop `time`; fill blank cells with the previous row's value (the next row's at
//! the very start); min-max scale every column with the train part's min and max;
//! windows of 10 rows of all 11 columns predict the next row's `rnti_count, rb_down,
//! rb_up, down, up`; the last 20% of the train windows (rounded up) validate; test
//! windows come from the test part alone.
//!
//! Two configurations, each for GRU and LSTM: the published study's (hidden 128,
//! 1 layer, batch 128, Adam 1e-3, up to 100 epochs with patience 10) and the
//! reference system's (hidden 128, 2 layers, batch 64, Adam 1e-4, 10 epochs). Both
//! clip the gradient norm at 1. Accuracy runs use one thread and `--seeds` seeds
//! (seed `s` draws the initial weights and the shuffling); the one-thread time is
//! their mean, and each other thread count of `--threads` is timed with seed 0.
//! `--only` runs some of the four (`study_gru`, `study_lstm`, `reference_gru`,
//! `reference_lstm`), so that Rust and PyTorch runs can be interleaved on a
//! shared machine.
//!
//! Writes to `--out` (default `target/nn-bench`), per run `<config>_<cell>`:
//! `results_<config>_<cell>.json` (per-seed RMSE and s/epoch, times per thread
//! count, load averages), `<config>_<cell>.onnx` and `<config>_<cell>_check.json`
//! (a time-major test input and `predict`'s output for it, for onnxruntime).

use std::error::Error;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nn::{CellKind, ModelConfig, Network, TrainConfig, export_onnx, train};

const TARGETS: [&str; 5] = ["rnti_count", "rb_down", "rb_up", "down", "up"];
const INPUT_LEN: usize = 10;
const VALIDATION_FRACTION: f64 = 0.2;

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// GRU/LSTM training benchmark on the El Born data (see the file's header).
#[derive(clap::Parser)]
struct Args {
    /// Folder holding `ElBorn.csv` and `ElBorn_test.csv` (read at run time, never copied).
    #[arg(long, default_value = "/work/shared/data")]
    data: PathBuf,
    /// Where the result files go.
    #[arg(long, default_value = "target/nn-bench")]
    out: PathBuf,
    /// Seeds per configuration for the accuracy runs (one thread).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Thread counts to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// `<config>_<cell>` names to run (study_gru, study_lstm, reference_gru, reference_lstm); default all four.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// A CSV read into columns, `time` dropped, blanks filled.
struct Table {
    names: Vec<String>,
    /// `rows[r][c]`
    rows: Vec<Vec<f64>>,
}

fn read_csv(path: &Path) -> BoxResult<Table> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let keep: Vec<usize> = (0..header.len()).filter(|&i| header[i] != "time").collect();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let mut row = Vec::with_capacity(keep.len());
        for &i in &keep {
            let cell = cells.get(i).copied().unwrap_or("").trim();
            // Blank: the previous row's value (filled below for row 0).
            let value = match (cell.is_empty(), rows.last()) {
                (true, Some(prev)) => prev[row.len()],
                (true, None) => f64::NAN,
                (false, _) => cell.parse().map_err(|e| format!("{} line {}: {cell:?}: {e}", path.display(), n + 2))?,
            };
            row.push(value);
        }
        rows.push(row);
    }
    // Leading blanks: the first value that follows.
    for c in 0..keep.len() {
        if let Some(first) = rows.iter().map(|r| r[c]).find(|v| !v.is_nan()) {
            rows.iter_mut().take_while(|r| r[c].is_nan()).for_each(|r| r[c] = first);
        }
    }
    Ok(Table { names: keep.iter().map(|&i| header[i].to_string()).collect(), rows })
}

/// Min-max scaler fitted on the train part: `scaled = (x - offset) / scale`.
struct Scaler {
    offset: Vec<f64>,
    scale: Vec<f64>,
}

impl Scaler {
    fn fit(t: &Table) -> Scaler {
        let cols = t.names.len();
        let min = (0..cols).map(|c| t.rows.iter().map(|r| r[c]).fold(f64::INFINITY, f64::min));
        let max: Vec<f64> = (0..cols).map(|c| t.rows.iter().map(|r| r[c]).fold(f64::NEG_INFINITY, f64::max)).collect();
        let offset: Vec<f64> = min.collect();
        let scale = offset.iter().zip(&max).map(|(lo, hi)| if hi > lo { hi - lo } else { 1.0 }).collect();
        Scaler { offset, scale }
    }
}

/// Windows in `nn`'s layout, plus the raw target rows for errors in original units.
struct Windows {
    n: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    /// Original-unit targets `[window][target]`.
    actual: Vec<f64>,
    /// Original-unit last input row's targets (the last-value baseline).
    last: Vec<f64>,
}

fn windows(t: &Table, s: &Scaler, targets: &[usize]) -> Windows {
    let n = t.rows.len() - INPUT_LEN;
    let scaled = |r: usize, c: usize| ((t.rows[r][c] - s.offset[c]) / s.scale[c]) as f32;
    let mut w = Windows { n, x: Vec::new(), y: Vec::new(), actual: Vec::new(), last: Vec::new() };
    for i in 0..n {
        for r in i..i + INPUT_LEN {
            w.x.extend((0..t.names.len()).map(|c| scaled(r, c)));
        }
        w.y.extend(targets.iter().map(|&c| scaled(i + INPUT_LEN, c)));
        w.actual.extend(targets.iter().map(|&c| t.rows[i + INPUT_LEN][c]));
        w.last.extend(targets.iter().map(|&c| t.rows[i + INPUT_LEN - 1][c]));
    }
    w
}

/// Per-target RMSE in original units.
fn rmse(pred: &[f64], actual: &[f64]) -> Vec<f64> {
    let k = TARGETS.len();
    let n = actual.len() / k;
    (0..k)
        .map(|j| ((0..n).map(|i| (pred[i * k + j] - actual[i * k + j]).powi(2)).sum::<f64>() / n as f64).sqrt())
        .collect()
}

/// Nominal FLOPs of the matrix products for one window: the textbook
/// computation (every step's recurrent product, head included), the same count
/// for every implementation. Returns (forward, forward + backward).
fn flops_per_window(m: &ModelConfig) -> (f64, f64) {
    let (t, h, g) = (m.input_len as f64, m.hidden as f64, (m.cell.gates() * m.hidden) as f64);
    let (mut fwd, mut bwd) = (2.0 * h * m.n_outputs as f64, 4.0 * h * m.n_outputs as f64);
    for l in 0..m.layers {
        let n_in = if l == 0 { m.n_features } else { m.hidden } as f64;
        fwd += t * (2.0 * n_in * g + 2.0 * h * g);
        // dW_ih, dW_hh, d h_{t-1}, and d input for layers above the first.
        bwd += t * (2.0 * n_in * g + 4.0 * h * g) + if l > 0 { t * 2.0 * n_in * g } else { 0.0 };
    }
    (fwd, fwd + bwd)
}

/// Single-core peak of `f32` FMAs: 12 independent chains of 8-wide FMAs.
fn measure_peak_gflops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn chains(n: usize) -> f32 {
            use std::arch::x86_64::*;
            let mut acc = [_mm256_setzero_ps(); 12];
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..n {
                for x in acc.iter_mut() {
                    *x = _mm256_fmadd_ps(*x, a, b);
                }
            }
            let mut out = [0.0f32; 8];
            let sum = acc.iter().fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
            // SAFETY: `out` holds 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
            out.iter().sum()
        }
        let n = 20_000_000;
        let mut best = 0.0f64;
        for _ in 0..5 {
            let started = Instant::now();
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            let r = unsafe { chains(n) };
            std::hint::black_box(r);
            best = best.max((n * 12 * 16) as f64 / started.elapsed().as_secs_f64() / 1e9);
        }
        return best;
    }
    f64::NAN
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

struct Setup {
    name: &'static str,
    hidden: usize,
    layers: usize,
    batch: usize,
    lr: f32,
    epochs: usize,
    patience: usize,
}

const SETUPS: [Setup; 2] = [
    Setup { name: "study", hidden: 128, layers: 1, batch: 128, lr: 1e-3, epochs: 100, patience: 10 },
    Setup { name: "reference", hidden: 128, layers: 2, batch: 64, lr: 1e-4, epochs: 10, patience: 0 },
];

struct Data {
    train: Windows,
    n_train: usize,
    test: Windows,
    scaler: Scaler,
    targets: Vec<usize>,
}

struct Run {
    net: Network,
    seconds_per_epoch: f64,
    epochs_run: usize,
    best_epoch: usize,
    test_rmse: Vec<f64>,
}

fn run(d: &Data, s: &Setup, cell: CellKind, seed: u64, threads: usize) -> BoxResult<Run> {
    let f = d.scaler.offset.len();
    let model = ModelConfig {
        cell,
        n_features: f,
        hidden: s.hidden,
        layers: s.layers,
        input_len: INPUT_LEN,
        n_outputs: TARGETS.len(),
    };
    let cfg = TrainConfig {
        epochs: s.epochs,
        batch_size: s.batch,
        learning_rate: s.lr,
        patience: s.patience,
        clip_norm: 1.0,
        seed,
        shuffle: true,
        threads,
    };
    let mut net = Network::new(model, seed);
    let (xs, ys) = (d.n_train * INPUT_LEN * f, d.n_train * TARGETS.len());
    let (tx, vx) = d.train.x.split_at(xs);
    let (ty, vy) = d.train.y.split_at(ys);
    let report = train(&mut net, tx, ty, vx, vy, &cfg, &mut |_, _| ControlFlow::Continue(()))?;
    let seconds_per_epoch = report.history.iter().map(|e| e.seconds).sum::<f64>() / report.epochs_run as f64;
    let pred = net.predict(&d.test.x, d.test.n);
    let original: Vec<f64> = pred
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let c = d.targets[i % TARGETS.len()];
            *p as f64 * d.scaler.scale[c] + d.scaler.offset[c]
        })
        .collect();
    Ok(Run {
        net,
        seconds_per_epoch,
        epochs_run: report.epochs_run,
        best_epoch: report.best_epoch,
        test_rmse: rmse(&original, &d.test.actual),
    })
}

/// `<name>.onnx` and `<name>_check.json`: 32 test windows, time-major, and `predict`'s output.
fn write_onnx_check(out: &Path, name: &str, net: &Network, test: &Windows) -> BoxResult<()> {
    std::fs::write(out.join(format!("{name}.onnx")), export_onnx(net))?;
    let cfg = net.config();
    let batch = 32.min(test.n);
    let x = &test.x[..batch * cfg.input_len * cfg.n_features];
    let f = cfg.n_features;
    let mut time_major = vec![0.0f32; x.len()];
    for b in 0..batch {
        for t in 0..cfg.input_len {
            let (src, dst) = ((b * cfg.input_len + t) * f, (t * batch + b) * f);
            time_major[dst..dst + f].copy_from_slice(&x[src..src + f]);
        }
    }
    let expected = net.predict(x, batch);
    let json =
        format!("{{\"shape\":[{},{batch},{f}],\"input\":{:?},\"expected\":{:?}}}", cfg.input_len, time_major, expected);
    std::fs::write(out.join(format!("{name}_check.json")), json)?;
    Ok(())
}

fn mean(v: &[Vec<f64>]) -> Vec<f64> {
    (0..v[0].len()).map(|j| v.iter().map(|r| r[j]).sum::<f64>() / v.len() as f64).collect()
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn main() -> BoxResult<()> {
    let args = <Args as clap::Parser>::parse();
    std::fs::create_dir_all(&args.out)?;
    let train_t = read_csv(&args.data.join("ElBorn.csv"))?;
    let test_t = read_csv(&args.data.join("ElBorn_test.csv"))?;
    if train_t.names != test_t.names {
        return Err("train and test columns differ".into());
    }
    let targets: Vec<usize> = TARGETS
        .iter()
        .map(|t| train_t.names.iter().position(|n| n == t).ok_or_else(|| format!("no column {t}")))
        .collect::<Result<_, _>>()?;
    let scaler = Scaler::fit(&train_t);
    let train_w = windows(&train_t, &scaler, &targets);
    let n_val = ((train_w.n as f64 * VALIDATION_FRACTION - 1e-9).ceil()) as usize;
    let data =
        Data { n_train: train_w.n - n_val, train: train_w, test: windows(&test_t, &scaler, &targets), scaler, targets };
    let last_value = rmse(&data.test.last, &data.test.actual);

    let peak = measure_peak_gflops();
    println!("CPU: {}; measured single-core FMA peak {peak:.1} GFLOP/s", cpu_model());
    println!(
        "El Born: {} train + {} validation windows, {} test windows; last-value RMSE {:?}",
        data.n_train,
        n_val,
        data.test.n,
        last_value.iter().map(|v| format!("{v:.4e}")).collect::<Vec<_>>()
    );

    let mut table = Vec::new();
    for s in &SETUPS {
        for cell in [CellKind::Gru, CellKind::Lstm] {
            let name = format!("{}_{}", s.name, cell.to_string().to_lowercase());
            if !args.only.is_empty() && !args.only.contains(&name) {
                continue;
            }
            let load_before = load_average();
            let started = chrono_now();
            let mut seeds = Vec::new();
            let mut rmses = Vec::new();
            let mut model = None;
            for seed in 0..args.seeds {
                let r = run(&data, s, cell, seed, 1)?;
                println!(
                    "{name} seed {seed} 1 thread: {:.3} s/epoch, {} epochs (best {}), test RMSE {:?}, load {:.2}",
                    r.seconds_per_epoch,
                    r.epochs_run,
                    r.best_epoch,
                    r.test_rmse.iter().map(|v| format!("{v:.4e}")).collect::<Vec<_>>(),
                    load_average()
                );
                if seed == 0 {
                    write_onnx_check(&args.out, &name, &r.net, &data.test)?;
                    model = Some(*r.net.config());
                }
                seeds.push(serde_json::json!({
                    "seed": seed, "threads": 1, "seconds_per_epoch": r.seconds_per_epoch,
                    "epochs_run": r.epochs_run, "best_epoch": r.best_epoch, "test_rmse": r.test_rmse,
                }));
                rmses.push(r.test_rmse);
            }
            let model = model.ok_or("--seeds must be at least 1")?;
            let (fwd, train_flops) = flops_per_window(&model);
            let epoch_flops = data.n_train as f64 * train_flops + n_val as f64 * fwd;
            let one_thread = seeds.iter().map(|r| r["seconds_per_epoch"].as_f64().unwrap_or(f64::NAN)).sum::<f64>()
                / seeds.len() as f64;
            let mut timing = vec![serde_json::json!({
                "threads": 1, "seconds_per_epoch": one_thread, "gflops": epoch_flops / one_thread / 1e9,
                "what": "mean over the seeds",
            })];
            table.push((name.clone(), 1, one_thread, epoch_flops / one_thread / 1e9, mean(&rmses)));
            for &threads in args.threads.iter().filter(|&&t| t != 1) {
                let r = run(&data, s, cell, 0, threads)?;
                println!(
                    "{name} seed 0 {threads} threads: {:.3} s/epoch, {} epochs, load {:.2}",
                    r.seconds_per_epoch,
                    r.epochs_run,
                    load_average()
                );
                let gflops = epoch_flops / r.seconds_per_epoch / 1e9;
                timing.push(serde_json::json!({
                    "threads": threads, "seconds_per_epoch": r.seconds_per_epoch, "gflops": gflops, "what": "seed 0",
                }));
                table.push((name.clone(), threads, r.seconds_per_epoch, gflops, Vec::new()));
            }
            let result = serde_json::json!({
                "side": "rust", "name": name, "config": s.name, "cell": cell.to_string(),
                "cpu": cpu_model(), "peak_gflops": peak, "epoch_gflop": epoch_flops / 1e9,
                "last_value_rmse": last_value, "seeds": seeds, "timing": timing,
                "started": started, "finished": chrono_now(),
                "load_before": load_before, "load_after": load_average(),
            });
            std::fs::write(args.out.join(format!("results_{name}.json")), serde_json::to_string_pretty(&result)?)?;
        }
    }

    println!(
        "\n| run | threads | s/epoch | GFLOP/s | % of 1-core peak | test RMSE per target (mean over {} seeds) |",
        args.seeds
    );
    println!("|---|---|---|---|---|---|");
    for (name, threads, secs, gflops, rmse) in &table {
        println!(
            "| {name} | {threads} | {secs:.3} | {gflops:.1} | {:.0}% | {} |",
            100.0 * gflops / peak,
            rmse.iter().map(|v| format!("{v:.4e}")).collect::<Vec<_>>().join(", ")
        );
    }
    println!("results in {}", args.out.display());
    Ok(())
}

/// Seconds since the Unix epoch (the results record when each run started and ended).
fn chrono_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
