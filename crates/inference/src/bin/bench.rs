//! `inference-bench`: load and latency benchmarks of the inference service
//! (results in docs/benchmarks.md, "## Inference"; runner:
//! `crates/inference/bench/run.sh`).
//!
//! - `model`: single-window forward-pass latency in-process (tract), on a
//!   synthetic GRU/LSTM of the study's size or on a given ONNX file; can
//!   write the ONNX for the onnxruntime comparison (`bench/ort_bench.py`).
//! - `serve`: the real HTTP API (same router, queue and workers as the
//!   service) serving a synthetic model, without Kafka or S3.
//! - `load`: a closed-loop HTTP/1.1 keep-alive load generator: N clients each
//!   send single-window `/predict` requests back to back for a fixed time and
//!   report requests/s and latency percentiles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use contracts::ModelType;
use inference::http::{self, Api, HttpArgs};
use model_runtime::model::ModelSpec;
use model_runtime::synthetic::{Cell, NetSpec, SyntheticNet};
use model_runtime::{Registry, loader};
use series::{Scaler, ScalerColumn, ScalerKind};
use service_kit::admin::Readiness;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "inference-bench", about = "Load and latency benchmarks of the inference service")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum CellArg {
    Gru,
    Lstm,
}

/// The model to serve or time (defaults: the published study's, hidden 128,
/// 1 layer, 11 inputs, 5 targets, 10-row windows, one step ahead).
#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "gru")]
    cell: CellArg,
    /// Hidden size of each layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Input features per row (GRU needs at least 2 in tract 0.23.9, see CRATE-NOTES section 3).
    #[arg(long, default_value_t = 11)]
    features: usize,
    /// Forecast targets (the first `targets` features), one step ahead.
    #[arg(long, default_value_t = 5)]
    targets: usize,
    /// Rows per window.
    #[arg(long, default_value_t = 10)]
    input_len: usize,
}

impl ModelArgs {
    fn net(&self) -> SyntheticNet {
        let cell = match self.cell {
            CellArg::Gru => Cell::Gru,
            CellArg::Lstm => Cell::Lstm,
        };
        let spec = NetSpec {
            cell,
            n_features: self.features,
            hidden: vec![self.hidden; self.layers],
            input_len: self.input_len,
            output_len: 1,
            n_targets: self.targets,
        };
        SyntheticNet::random(spec, 42)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Single-window forward-pass latency in-process.
    Model {
        #[command(flatten)]
        model: ModelArgs,
        /// Time this ONNX file instead of a synthetic model (its input must be [input_len, batch, features]).
        #[arg(long)]
        onnx: Option<std::path::PathBuf>,
        /// Write the synthetic model's ONNX here (for bench/ort_bench.py).
        #[arg(long)]
        write_onnx: Option<std::path::PathBuf>,
        /// Timed forward passes (after 10% warm-up).
        #[arg(long, default_value_t = 20_000)]
        iters: usize,
    },
    /// Serve the HTTP API with a synthetic model (or an ONNX file of the same shape).
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        /// Serve this ONNX file (e.g. from the export_nn example) instead of a synthetic model.
        #[arg(long)]
        onnx: Option<std::path::PathBuf>,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Load generator for single-window /predict: closed loop (each client sends
    /// its next request when the last one returns), or paced with --rate.
    Load {
        /// Server address (host:port).
        #[arg(long, default_value = "127.0.0.1:18080")]
        addr: SocketAddr,
        /// Concurrent clients, each with one keep-alive connection.
        #[arg(long, default_value_t = 40)]
        clients: usize,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Warm-up seconds, not measured.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Rows per window and features per row of the request.
        #[arg(long, default_value_t = 10)]
        input_len: usize,
        #[arg(long, default_value_t = 11)]
        features: usize,
        /// Total requests/s to offer, spread evenly over the clients (0: closed loop,
        /// as fast as the server answers). Paced latency counts from each request's
        /// scheduled time, so a late send is not hidden (no coordinated omission).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Model { model, onnx, write_onnx, iters } => bench_model(&model, onnx, write_onnx, iters),
        Cmd::Serve { model, onnx, http } => {
            let bytes = match onnx {
                Some(p) => std::fs::read(&p).with_context(|| format!("read {}", p.display()))?,
                None => model.net().to_onnx(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(serve(model, bytes, http))
        }
        Cmd::Load { addr, clients, duration, warmup, input_len, features, rate } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let pacing = (rate > 0.0).then(|| Duration::from_secs_f64(clients as f64 / rate));
            rt.block_on(load(
                addr,
                clients,
                Duration::from_secs(duration),
                Duration::from_secs(warmup),
                pacing,
                input_len,
                features,
            ))
        }
    }
}

fn feature_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i}")).collect()
}

fn spec(m: &ModelArgs) -> ModelSpec {
    let model_type = match m.cell {
        CellArg::Gru => ModelType::Gru,
        CellArg::Lstm => ModelType::Lstm,
    };
    let (features, targets) = (feature_names(m.features), feature_names(m.targets.min(m.features)));
    ModelSpec::promoted_onnx("bench", model_type, "synthetic", (m.input_len as u32, 1), features, targets)
}

fn scaler(n: usize) -> Scaler {
    Scaler {
        kind: ScalerKind::MinMax,
        columns: feature_names(n).into_iter().map(|name| ScalerColumn::new(name, 0.0, 100.0)).collect(),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn bench_model(
    m: &ModelArgs,
    onnx: Option<std::path::PathBuf>,
    write_onnx: Option<std::path::PathBuf>,
    iters: usize,
) -> anyhow::Result<()> {
    let bytes = match &onnx {
        Some(p) => std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
        None => m.net().to_onnx(),
    };
    if let Some(p) = &write_onnx {
        std::fs::write(p, &bytes).with_context(|| format!("write {}", p.display()))?;
    }
    let started = Instant::now();
    let model = loader::build(&spec(m), &bytes, scaler(m.features)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let x: Vec<f32> = (0..m.input_len * m.features).map(|i| (i % 7) as f32 / 7.0).collect();
    let out0 = model.forecast_scaled(&x, 1, None, "bench")?[0];
    for _ in 0..iters / 10 {
        model.forecast_scaled(&x, 1, None, "bench")?;
    }
    let mut us = Vec::with_capacity(iters);
    let all = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(model.forecast_scaled(&x, 1, None, "bench")?);
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mean = all.elapsed().as_secs_f64() * 1e6 / iters as f64;
    us.sort_by(f64::total_cmp);
    let rows = [1usize, 32, 256];
    let mut batch = Vec::new();
    for n in rows {
        let xb: Vec<f32> = x.iter().copied().cycle().take(n * x.len()).collect();
        let reps = (iters / n).max(20);
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(model.forecast_scaled(&xb, n, None, "bench")?);
        }
        batch.push((n, t.elapsed().as_secs_f64() * 1e6 / (reps * n) as f64));
    }
    println!(
        "model={} hidden={} layers={} features={} input_len={} load_ms={load_ms:.1} iters={iters} \
         out0={out0:.6} mean_us={mean:.1} p50_us={:.1} p99_us={:.1} per_window_us_at_batch={}",
        onnx.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("synthetic-{}", spec(m).model_type)),
        m.hidden,
        m.layers,
        m.features,
        m.input_len,
        percentile(&us, 0.5),
        percentile(&us, 0.99),
        batch.iter().map(|(n, v)| format!("{n}:{v:.1}")).collect::<Vec<_>>().join(",")
    );
    Ok(())
}

async fn serve(m: ModelArgs, onnx: Vec<u8>, args: HttpArgs) -> anyhow::Result<()> {
    let ready = Readiness::default();
    let registry = Arc::new(Registry::new(ready.clone()));
    let model = loader::build(&spec(&m), &onnx, scaler(m.features)).map_err(|e| anyhow::anyhow!("{e}"))?;
    registry.install(model).map_err(|e| anyhow::anyhow!("{}", e.0))?;
    let listener = http::bind(args.http_addr).await?;
    eprintln!("serving on {}", listener.local_addr()?);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    http::serve(listener, http::router(Api::new(registry, args.clone()), ready), args.header_timeout(), cancel).await
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<f64>,
    by_status: std::collections::BTreeMap<u16, u64>,
    io_errors: u64,
}

fn request_bytes(addr: SocketAddr, input_len: usize, features: usize, salt: usize) -> Vec<u8> {
    let rows: Vec<String> = (0..input_len)
        .map(|r| {
            let vals: Vec<String> =
                (0..features).map(|f| format!("{:.2}", 40.0 + ((r * 7 + f * 3 + salt) % 50) as f64)).collect();
            format!("[{}]", vals.join(","))
        })
        .collect();
    let body = format!("{{\"window\":[{}]}}", rows.join(","));
    format!(
        "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Send one request and read the whole response; returns the status.
async fn roundtrip(conn: &mut BufReader<TcpStream>, req: &[u8], body: &mut Vec<u8>) -> anyhow::Result<u16> {
    conn.get_mut().write_all(req).await?;
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        bail!("connection closed");
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
    let mut len = 0usize;
    let mut close = false;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse()?;
        } else if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    body.resize(len, 0);
    conn.read_exact(body).await?;
    if close {
        bail!("server closed the connection");
    }
    Ok(status)
}

/// One client's loop. `pacing`: the interval between this client's requests,
/// and the first one's offset in it (so that the clients interleave).
async fn client(
    addr: SocketAddr,
    req: Vec<u8>,
    warm_until: Instant,
    end: Instant,
    pacing: Option<(Duration, Duration)>,
) -> Tally {
    let mut t = Tally::default();
    let mut body = Vec::new();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut scheduled = Instant::now() + pacing.map_or(Duration::ZERO, |(_, offset)| offset);
    while Instant::now() < end {
        if conn.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn = Some(BufReader::new(s));
                }
                Err(_) => {
                    t.io_errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let started = match pacing {
            Some((interval, _)) => {
                tokio::time::sleep_until(scheduled.into()).await;
                let at = scheduled;
                scheduled += interval;
                at
            }
            None => Instant::now(),
        };
        let result = roundtrip(c, &req, &mut body).await;
        let measured = started >= warm_until;
        match result {
            Ok(status) if measured => {
                t.latencies_us.push(started.elapsed().as_secs_f64() * 1e6);
                *t.by_status.entry(status).or_default() += 1;
            }
            Ok(_) => {}
            Err(_) => {
                conn = None;
                if measured {
                    t.io_errors += 1;
                }
            }
        }
    }
    t
}

async fn load(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    warmup: Duration,
    pacing: Option<Duration>,
    input_len: usize,
    features: usize,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let warm_until = start + warmup;
    let end = warm_until + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let pacing = pacing.map(|p| (p, p.mul_f64(i as f64 / clients as f64)));
            tokio::spawn(client(addr, request_bytes(addr, input_len, features, i), warm_until, end, pacing))
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await?;
        all.latencies_us.extend(t.latencies_us);
        for (s, c) in t.by_status {
            *all.by_status.entry(s).or_default() += c;
        }
        all.io_errors += t.io_errors;
    }
    let measured = (Instant::now() - warm_until).min(duration + Duration::from_secs(1)).as_secs_f64();
    let ok = all.by_status.get(&200).copied().unwrap_or(0);
    let total: u64 = all.by_status.values().sum();
    all.latencies_us.sort_by(f64::total_cmp);
    let lat = |q| percentile(&all.latencies_us, q) / 1e3;
    println!(
        "clients={clients} offered_rps={} duration_s={measured:.1} requests={total} ok={ok} rps={:.0} ok_rps={:.0} \
         p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2} statuses={:?} io_errors={}",
        pacing.map_or("max".to_string(), |p| format!("{:.0}", clients as f64 / p.as_secs_f64())),
        total as f64 / measured,
        ok as f64 / measured,
        lat(0.5),
        lat(0.95),
        lat(0.99),
        all.latencies_us.last().copied().unwrap_or(f64::NAN) / 1e3,
        all.by_status,
        all.io_errors
    );
    Ok(())
}
