//! `flts generate` (sample data) and `flts report` (wait for a dataset's
//! promotion and batch inference, then say what happened).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use claim_check::ClaimCheckStore;
use contracts::PerformanceEval;
use eval::state::Decision;
use kafka_utils::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

/// Flags of `flts generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Rows of 2-minute samples (11 traffic columns, daily and weekly seasonality, bursts, gaps, NaNs).
    #[arg(long, default_value_t = 19_909)]
    pub rows: usize,
    /// Seed of the generator (same seed, same file).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// CSV file to write.
    #[arg(long)]
    pub output: PathBuf,
}

/// `flts generate`
pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let spec = dataset::generate::Spec { rows: args.rows, seed: args.seed, ..Default::default() };
    let frame = dataset::generate::traffic(&spec);
    let csv = dataset::write_raw_csv(&frame, "timestamp");
    std::fs::write(&args.output, csv).with_context(|| format!("write {}", args.output.display()))?;
    println!("wrote {} rows x {} columns to {}", frame.len(), frame.columns.len(), args.output.display());
    Ok(())
}

/// Flags of `flts report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Dataset identifier.
    #[arg(long)]
    pub identifier: String,
    /// Seconds to wait for the promotion decision and the inference results.
    #[arg(long, default_value_t = 900)]
    pub wait_secs: u64,
    /// Bucket of the promotion history.
    #[arg(long, env = "PROMOTION_BUCKET", default_value = "model-promotion")]
    pub promotion_bucket: String,
    /// Topic of inference summaries.
    #[arg(long, env = "PERFORMANCE_EVAL_TOPIC", default_value = contracts::topics::PERFORMANCE_EVAL)]
    pub performance_topic: String,
    #[command(flatten)]
    pub s3: claim_check::S3Args,
}

async fn wait_for_decision(store: &ClaimCheckStore, args: &ReportArgs, deadline: Instant) -> anyhow::Result<Decision> {
    loop {
        let listed = store.list(&args.promotion_bucket, &format!("{}/", args.identifier)).await;
        if let Ok(objects) = listed {
            for (key, _) in objects.iter().filter(|(k, _)| k.ends_with("/decision.json")) {
                let bytes = store.get_object(&args.promotion_bucket, key).await?;
                let d: Decision = serde_json::from_slice(&bytes).with_context(|| format!("decode {key}"))?;
                if d.published {
                    return Ok(d);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no promotion decision for {} yet", args.identifier);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn wait_for_inference(kafka: &KafkaArgs, args: &ReportArgs, deadline: Instant) -> anyhow::Result<PerformanceEval> {
    let mut cfg = kafka.client_config("flts-cli")?;
    cfg.set("group.id", format!("flts-report-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = cfg.create()?;
    consumer.subscribe(&[&args.performance_topic])?;
    let mut latest = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if let Some(Ok(ev)) = m.payload().map(contracts::decode::<PerformanceEval>)
                    && ev.identifier == args.identifier
                {
                    latest = Some(ev);
                }
            }
            // Caught up: the newest summary of this dataset is the answer.
            None if latest.is_some() => break,
            _ => {}
        }
    }
    latest.with_context(|| format!("no performance-eval event for {} yet", args.identifier))
}

/// `flts report`
pub async fn report(kafka: &KafkaArgs, args: &ReportArgs) -> anyhow::Result<()> {
    let store = ClaimCheckStore::new(&args.s3);
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let d = wait_for_decision(&store, args, deadline).await?;
    println!("\n== {} (config {}) ==", d.identifier, &d.config_hash[..12.min(d.config_hash.len())]);
    println!(
        "{:<8} {:<8} {:>10} {:>10} {:>10} {:>10}  {:<28} note",
        "model", "status", "RMSE", "MAE", "MSE", "score", "best baseline (score)"
    );
    for c in &d.outcome.candidates {
        let m = c.metrics;
        let f = |v: Option<f64>| v.map(|x| format!("{x:.5}")).unwrap_or_else(|| "-".into());
        let baseline = c.baseline.as_ref().map(|(n, s)| format!("{n} ({s:.5})")).unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<8} {:>10} {:>10} {:>10} {:>10}  {:<28} {}",
            c.model_type.to_string(),
            c.status,
            f(m.map(|m| m.rmse)),
            f(m.map(|m| m.mae)),
            f(m.map(|m| m.mse)),
            f(c.score),
            baseline,
            c.note
        );
    }
    match d.outcome.winner.map(|i| &d.outcome.candidates[i]) {
        Some(w) => println!("winner: {} (run {}): {}", w.model_type, w.run_id, d.outcome.reason),
        None => println!("no promotion: {}", d.outcome.reason),
    }
    if !d.missing.is_empty() {
        println!("missing (timed out): {:?}", d.missing);
    }
    if d.promotion.is_none() {
        return Ok(());
    }
    let perf = {
        let (kafka, args) = (kafka.clone(), args.clone());
        tokio::task::spawn_blocking(move || wait_for_inference(&kafka, &args, deadline)).await??
    };
    println!(
        "batch inference: {} windows by {} (run {}): RMSE {:.5} MAE {:.5} (scaled)",
        perf.windows, perf.model_type, perf.run_id, perf.metrics.rmse, perf.metrics.mae
    );
    for (t, m) in &perf.per_target {
        println!("  {t:<12} RMSE {:.4} MAE {:.4} (original units)", m.rmse, m.mae);
    }
    println!("forecasts: {}", perf.results.uri());
    if let Some(plot) = &perf.plot {
        println!("plot:      {}", plot.uri());
    }
    Ok(())
}
