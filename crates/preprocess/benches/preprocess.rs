//! Preprocessing time and peak memory (`cargo bench -p preprocess --bench preprocess`).
//!
//! Cases: the El Born train and test CSVs (read from `../shared/data`, or
//! `FLTS_ELBORN_DIR`; never copied into the repository) with the published
//! study's settings, and a generated series of `FLTS_BENCH_ROWS` rows
//! (default 10 million) x 11 columns as raw Parquet and as raw CSV.
//!
//! Each case runs in a child process of this binary so that its peak RSS
//! (`VmHWM`) is its own. Times cover the whole stage minus S3 and Kafka:
//! parse, clean, regularise, fill, scale, split, encode the Parquet outputs.
//! The raw read alone is timed first, separately.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use dataset::generate::{Spec, traffic};
use preprocess::PreprocessConfig;
use preprocess::pipeline::{RawInput, process};
use serde_json::json;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

fn elborn_dir() -> PathBuf {
    std::env::var_os("FLTS_ELBORN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn rows() -> usize {
    std::env::var("FLTS_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(10_000_000)
}

fn scratch() -> PathBuf {
    std::env::var_os("FLTS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("flts-bench-preprocess"))
}

/// Run one case in this process and print one Markdown table row.
fn run_case(case: &str) -> Result<(), String> {
    let (config, train, test, reps) = match case {
        "elborn" => {
            let dir = elborn_dir();
            let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
            let config = json!({
                "timestamp_column": "time",
                "targets": ["rnti_count", "rb_down", "rb_up", "down", "up"],
                "scaler": "minmax",
            });
            (config, read("ElBorn.csv")?, Some(read("ElBorn_test.csv")?), 5)
        }
        "gen-parquet" | "gen-csv" => {
            let ext = if case == "gen-csv" { "csv" } else { "parquet" };
            let path = scratch().join(format!("traffic-{}.{ext}", rows()));
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            (json!({"timestamp_column": "time", "targets": ["down", "up"]}), bytes, None, 1)
        }
        other => return Err(format!("unknown case {other}")),
    };
    let config = PreprocessConfig::resolve(&[&config]).map_err(|e| e.to_string())?;
    let opts = dataset::RawOptions { timestamp_column: "time".into(), ..Default::default() };
    let t = Instant::now();
    let raw = dataset::read_raw("input", &train, &opts).map_err(|e| e.to_string())?;
    let read_s = t.elapsed().as_secs_f64();
    let (rows_in, cols) = (raw.len(), raw.columns.len());
    drop(raw);
    let input_mib = (train.len() + test.as_ref().map_or(0, Vec::len)) as f64 / 1048576.0;
    let (mut train, mut test) = (Some(Bytes::from(train)), test.map(Bytes::from));
    let mut times = Vec::new();
    let mut out = (0, 0, 0usize);
    for rep in 0..reps {
        // The last repetition hands the bytes over, as the stage does, so they are freed once parsed.
        let last = rep + 1 == reps;
        let (tr, te) = if last { (train.take(), test.take()) } else { (train.clone(), test.clone()) };
        let t = Instant::now();
        let p = process(
            &config,
            RawInput { name: "input", bytes: tr.unwrap_or_default() },
            te.map(|bytes| RawInput { name: "test", bytes }),
        )
        .map_err(|e| e.to_string())?;
        let e = p.encode("bench", json!({})).map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
        out = (e.stats.train_rows, e.stats.test_rows, e.train.len() + e.test.len());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "| {case} | {rows_in} x {cols} | {input_mib:.1} MiB | {read_s:.2} s | {:.2} s | {} / {} | {:.1} MiB | {:.0} MiB |",
        times[times.len() / 2],
        out.0,
        out.1,
        out.2 as f64 / 1048576.0,
        peak_rss_mib()
    );
    Ok(())
}

/// Write the generated inputs once (not timed).
fn prepare() -> Result<(), String> {
    let dir = scratch();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (pq, csv) = (dir.join(format!("traffic-{}.parquet", rows())), dir.join(format!("traffic-{}.csv", rows())));
    if pq.exists() && csv.exists() {
        return Ok(());
    }
    let t = Instant::now();
    let frame = traffic(&Spec { rows: rows(), ..Default::default() });
    std::fs::write(&pq, dataset::write_raw_parquet(&frame, "time").map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    std::fs::write(&csv, dataset::write_raw_csv(&frame, "time")).map_err(|e| e.to_string())?;
    eprintln!("generated {} rows into {} in {:.1} s", rows(), dir.display(), t.elapsed().as_secs_f64());
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        if let Err(e) = run_case(args.get(i + 1).map(String::as_str).unwrap_or_default()) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = prepare() {
        eprintln!("error: cannot write the generated inputs: {e}");
        std::process::exit(1);
    }
    println!(
        "| case | raw rows x columns | input | raw read | preprocess (median) | train / test rows | output | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().unwrap_or_default();
    let mut cases = vec!["gen-parquet", "gen-csv"];
    if elborn_dir().join("ElBorn.csv").exists() {
        cases.insert(0, "elborn");
    } else {
        eprintln!("El Born data not found in {} (set FLTS_ELBORN_DIR); skipping it", elborn_dir().display());
    }
    for case in cases {
        let status = Command::new(&exe).args(["--case", case]).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("case {case} failed");
        }
    }
}
