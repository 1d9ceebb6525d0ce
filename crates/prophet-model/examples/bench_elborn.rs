//! The Prophet benchmark of docs/benchmarks.md ("## Prophet"): El Born, one model per target, this crate
//! against Python Prophet on the same data and settings, in one run.
//!
//! ```sh
//! scripts/bench prophet     # or: cargo build --release --workspace --examples &&
//!                           #     target/release/examples/bench_elborn [--no-python] (--help for all flags)
//! ```
//!
//! Reads `/work/shared/data/ElBorn.csv` (train) and `ElBorn_test.csv` (test) at run time (override with
//! `FLTS_ELBORN_TRAIN` / `FLTS_ELBORN_TEST`; the data has no licence, so it never enters the repository).
//! Fits the targets one after another on one thread (each timed), then all at once on 2 threads, and
//! forecasts the whole test period from the end of training. Then runs `scripts/bench_prophet.py` with
//! `FLTS_BENCH_PYTHON` (default `~/.cache/flts/bench-venv-prophet/bin/python`) twice: with US holidays (the
//! Python system's settings, also used on the Rust side) and without: no US holiday falls in the data, so
//! the second run shows how far Python's own forecast moves when nothing that matters changes, the yardstick
//! for the Rust-Python difference. The two Rust fits (1 and 2 threads) are compared with each other likewise.
//! Prints Markdown tables. Errors are scored on test rows 10.. (the rows
//! every FLTS model is scored on, `input_len` = 10), in original units; differences between forecasts are
//! the RMS of the difference over the RMS of the second forecast, on the whole test period.

use std::error::Error;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use chrono::NaiveDateTime;
use prophet_model::{FittedSet, Fitter, ProphetConfig};

const TARGETS: [&str; 5] = ["rnti_count", "rb_down", "rb_up", "down", "up"];
/// First scored test row (the data contract's `input_len`).
const FIRST_SCORED_ROW: usize = 10;

/// Timestamps (ms) and the target columns of one El Born CSV.
struct Table {
    timestamps_ms: Vec<i64>,
    columns: Vec<(String, Vec<f64>)>,
}

fn read_csv(path: &str) -> Result<Table, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or(format!("{path}: empty"))?.split(',').collect();
    let index_of = |name: &str| header.iter().position(|h| *h == name).ok_or(format!("{path}: no column {name}"));
    let time_col = index_of("time")?;
    let target_cols = TARGETS.iter().map(|t| index_of(t)).collect::<Result<Vec<_>, _>>()?;
    let mut table =
        Table { timestamps_ms: Vec::new(), columns: TARGETS.iter().map(|t| (t.to_string(), Vec::new())).collect() };
    for (row, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let cell = |i: usize| cells.get(i).copied().ok_or(format!("{path}: row {row} is short"));
        let time = NaiveDateTime::parse_from_str(cell(time_col)?, "%Y-%m-%d %H:%M:%S")?;
        table.timestamps_ms.push(time.and_utc().timestamp_millis());
        for (column, i) in table.columns.iter_mut().zip(&target_cols) {
            let value = cell(*i)?.parse::<f64>().map_err(|e| format!("{path}: row {row} {}: {e}", column.0))?;
            column.1.push(value);
        }
    }
    Ok(table)
}

/// (RMSE, MAE) of `forecast` against `actual` on the scored rows.
fn errors(forecast: &[f64], actual: &[f64]) -> (f64, f64) {
    let pairs: Vec<(f64, f64)> = forecast.iter().zip(actual).skip(FIRST_SCORED_ROW).map(|(f, a)| (*f, *a)).collect();
    let n = pairs.len() as f64;
    let mse = pairs.iter().map(|(f, a)| (f - a).powi(2)).sum::<f64>() / n;
    let mae = pairs.iter().map(|(f, a)| (f - a).abs()).sum::<f64>() / n;
    (mse.sqrt(), mae)
}

/// RMS of the difference of two forecasts over the RMS of the second, on the whole test period.
fn relative_difference(ours: &[f64], theirs: &[f64]) -> f64 {
    let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    let size = theirs.iter().map(|b| b * b).sum::<f64>();
    (diff / size).sqrt()
}

fn config() -> ProphetConfig {
    // The Python system's settings. No US holiday falls in the data (2018-03-28 to 2018-04-04).
    ProphetConfig {
        n_changepoints: 50,
        changepoint_prior_scale: 0.1,
        seasonality_prior_scale: 20.0,
        holidays_prior_scale: 10.0,
        country_holidays: Some("US".into()),
        ..ProphetConfig::default()
    }
}

struct PythonRun {
    version: String,
    wall_s: f64,
    fit_s: Vec<f64>,
    fit_cpu_s: Vec<f64>,
    yhat: Vec<Vec<f64>>,
}

/// Runs scripts/bench_prophet.py with the given country holidays ("" for none).
fn run_python(python: &str, train: &str, test: &str, country_holidays: &str) -> Result<PythonRun, Box<dyn Error>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_prophet.py");
    let started = Instant::now();
    let output = Command::new(python)
        .arg(&script)
        .args(["--train", train, "--test", test, "--targets", &TARGETS.join(",")])
        .args(["--country-holidays", country_holidays])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!("{} failed: {}", script.display(), output.status).into());
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut run = PythonRun {
        version: json["prophet_version"].as_str().unwrap_or("?").to_string(),
        wall_s,
        fit_s: Vec::new(),
        fit_cpu_s: Vec::new(),
        yhat: Vec::new(),
    };
    for target in TARGETS {
        let result = &json["targets"][target];
        run.fit_s.push(result["fit_s"].as_f64().ok_or(format!("no fit_s for {target}"))?);
        run.fit_cpu_s.push(result["fit_cpu_s"].as_f64().unwrap_or(f64::NAN));
        let yhat = result["yhat"].as_array().ok_or(format!("no yhat for {target}"))?;
        run.yhat.push(yhat.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect());
    }
    Ok(run)
}

/// CPU time (user + system) this process has used so far, in seconds (Linux; 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let ticks: Vec<f64> = after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    ticks.iter().sum::<f64>() / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Prophet fits on El Born, side by side with Python prophet (see the file's header).
#[derive(clap::Parser)]
struct Args {
    /// The training CSV (read at run time, never copied).
    #[arg(long, env = "FLTS_ELBORN_TRAIN", default_value = "/work/shared/data/ElBorn.csv")]
    train: String,
    /// The test CSV.
    #[arg(long, env = "FLTS_ELBORN_TEST", default_value = "/work/shared/data/ElBorn_test.csv")]
    test: String,
    /// The Python with `prophet` and `pandas` installed (scripts/bench makes this venv).
    #[arg(long, env = "FLTS_BENCH_PYTHON", default_value = "~/.cache/flts/bench-venv-prophet/bin/python")]
    python: String,
    /// Only the Rust side.
    #[arg(long)]
    no_python: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = <Args as clap::Parser>::parse();
    let (train_path, test_path) = (args.train.as_str(), args.test.as_str());
    let python_bin = match args.python.strip_prefix("~/") {
        Some(rest) => format!("{}/{rest}", std::env::var("HOME").unwrap_or_default()),
        None => args.python.clone(),
    };
    let with_python = !args.no_python;
    let train = read_csv(train_path)?;
    let test = read_csv(test_path)?;
    let cfg = config();
    let load_before = load_average();

    let fitter = Fitter::new();

    // One thread: the targets one after another, each timed (what fit_all does on one thread).
    let mut fit_s = Vec::new();
    let mut fit_cpu_s = Vec::new();
    let mut sequential = FittedSet { format_version: 0, config: cfg.clone(), targets: Vec::new() };
    for target in &train.columns {
        let (started, cpu_before) = (Instant::now(), cpu_seconds());
        let fitted = fitter.fit_all(&cfg, &train.timestamps_ms, std::slice::from_ref(target), &[], 1)?;
        fit_s.push(started.elapsed().as_secs_f64());
        fit_cpu_s.push(cpu_seconds() - cpu_before);
        sequential.format_version = fitted.format_version;
        sequential.targets.extend(fitted.targets);
    }
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let parallel = fitter.fit_all(&cfg, &train.timestamps_ms, &train.columns, &[], 2)?;
    let parallel_s = started.elapsed().as_secs_f64();
    let parallel_cpu_s = cpu_seconds() - cpu_before;
    let started = Instant::now();
    let forecasts = sequential.predict(&test.timestamps_ms)?;
    let predict_s = started.elapsed().as_secs_f64();
    let parallel_forecasts = parallel.predict(&test.timestamps_ms)?;
    eprintln!("rust: sequential {:.2} s, 2 threads {parallel_s:.2} s", fit_s.iter().sum::<f64>());

    let python = if with_python { Some(run_python(&python_bin, train_path, test_path, "US")?) } else { None };
    let python_plain = if with_python { Some(run_python(&python_bin, train_path, test_path, "")?) } else { None };
    let load_after = load_average();

    println!(
        "Train {} rows, test {} rows (scored from row {FIRST_SCORED_ROW}); load average {load_before} before, {load_after} after.",
        train.timestamps_ms.len(),
        test.timestamps_ms.len()
    );
    println!();
    let secs = |v: f64| format!("{v:.2} s");
    let py_secs = |f: &dyn Fn(&PythonRun) -> f64| python.as_ref().map_or("-".to_string(), |p| secs(f(p)));
    println!(
        "| fit time | Rust (prophet-model) | Python prophet {} |",
        python.as_ref().map_or("-", |p| p.version.as_str())
    );
    println!("|---|---|---|");
    for (i, name) in TARGETS.iter().enumerate() {
        println!(
            "| {name} | {} (CPU {}) | {} (CPU {}) |",
            secs(fit_s[i]),
            secs(fit_cpu_s[i]),
            py_secs(&|p| p.fit_s[i]),
            py_secs(&|p| p.fit_cpu_s[i])
        );
    }
    println!(
        "| **all targets, 1 thread** | **{}** (CPU {}) | **{}** (CPU {}) |",
        secs(fit_s.iter().sum()),
        secs(fit_cpu_s.iter().sum()),
        py_secs(&|p| p.fit_s.iter().sum()),
        py_secs(&|p| p.fit_cpu_s.iter().sum())
    );
    println!("| **all targets, 2 threads** | **{}** (CPU {}) | - |", secs(parallel_s), secs(parallel_cpu_s));
    println!("| forecast of the test period, all targets, 1000 interval draws | {} | - |", secs(predict_s));
    println!("| whole Python run (imports, fits, forecasts) | - | {} |", py_secs(&|p| p.wall_s));
    if let Some(p) = &python {
        let py_total: f64 = p.fit_s.iter().sum();
        println!();
        println!(
            "Python fit time / Rust fit time: {:.1}x on 1 thread, {:.1}x on 2 threads; CPU time: {:.1}x.",
            py_total / fit_s.iter().sum::<f64>(),
            py_total / parallel_s,
            p.fit_cpu_s.iter().sum::<f64>() / fit_cpu_s.iter().sum::<f64>()
        );
    }
    println!();
    println!(
        "| target | RMSE Rust | RMSE Python | MAE Rust | MAE Python | Rust vs Python | Python vs Python without holidays | Rust vs Rust (2nd fit) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (name, actual)) in test.columns.iter().enumerate() {
        let (rmse, mae) = errors(&forecasts[i].yhat, actual);
        let (py_rmse, py_mae, diff, py_diff) = match (&python, &python_plain) {
            (Some(p), Some(plain)) => {
                let (r, m) = errors(&p.yhat[i], actual);
                (
                    format!("{r:.4e}"),
                    format!("{m:.4e}"),
                    format!("{:.4} %", 100.0 * relative_difference(&forecasts[i].yhat, &p.yhat[i])),
                    format!("{:.4} %", 100.0 * relative_difference(&plain.yhat[i], &p.yhat[i])),
                )
            }
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let rust_diff = 100.0 * relative_difference(&parallel_forecasts[i].yhat, &forecasts[i].yhat);
        println!("| {name} | {rmse:.4e} | {py_rmse} | {mae:.4e} | {py_mae} | {diff} | {py_diff} | {rust_diff:.4} % |");
    }
    Ok(())
}
