//! `flts generate` (sample data) and `flts report` (wait for a dataset's
//! promotion and batch inference, then say what happened).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use claim_check::ClaimCheckStore;
use contracts::promotion::Decision;
use contracts::{
    ModelSelected, ModelTraining, ModelType, PerformanceEval, PreprocessRequest, TrainingData, TrainingStatus,
};
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
    /// Short traffic spikes (5-20x the local level) in the first 80% of the rows, the training period.
    #[arg(long, default_value_t = 0)]
    pub spikes: usize,
    /// A long gap, START:ROWS: rows START.. blank in 8 of the 11 columns (targets included).
    #[arg(long, value_name = "START:ROWS", value_parser = parse_long_gap)]
    pub long_gap: Option<(usize, usize)>,
    /// CSV file to write.
    #[arg(long)]
    pub output: PathBuf,
}

/// `flts generate`
pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let spec = dataset::generate::Spec {
        rows: args.rows,
        seed: args.seed,
        spikes: args.spikes,
        long_gap: args.long_gap,
        ..Default::default()
    };
    let frame = dataset::generate::traffic(&spec);
    let csv = dataset::write_raw_csv(&frame, "timestamp");
    std::fs::write(&args.output, csv).with_context(|| format!("write {}", args.output.display()))?;
    println!("wrote {} rows x {} columns to {}", frame.len(), frame.columns.len(), args.output.display());
    Ok(())
}

/// `START:ROWS` of `--long-gap`.
fn parse_long_gap(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("`{v}`: {e}"));
    let (start, rows) = s.split_once(':').ok_or_else(|| format!("expected START:ROWS, got `{s}`"))?;
    Ok((parse(start)?, parse(rows)?))
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
    /// Topic of preprocess requests (the timeline starts at the dataset's latest one).
    #[arg(long, env = "PREPROCESS_REQUESTS_TOPIC", default_value = contracts::topics::PREPROCESS_REQUESTS)]
    pub requests_topic: String,
    /// Topic of training-data claim checks (preprocess is done when one is published).
    #[arg(long, env = "TRAINING_DATA_TOPIC", default_value = contracts::topics::TRAINING_DATA)]
    pub training_data_topic: String,
    /// Topic of the trainers' RUNNING/SUCCESS/FAILED events.
    #[arg(long, env = "MODEL_TRAINING_TOPIC", default_value = contracts::topics::MODEL_TRAINING)]
    pub model_training_topic: String,
    /// Topic of promotions.
    #[arg(long, env = "MODEL_SELECTED_TOPIC", default_value = contracts::topics::MODEL_SELECTED)]
    pub model_selected_topic: String,
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
    // Per candidate: what it was chosen on, its validation choice, and test
    // NRMSE per target beside the naive forecasts'; then ensemble, fallback, winner.
    print!("{}", d.render());
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
        println!("  {t:<12} RMSE {} MAE {} (original units)", significant(m.rmse), significant(m.mae));
    }
    println!("forecasts: {}", perf.results.uri());
    if let Some(plot) = &perf.plot {
        println!("plot:      {}", plot.uri());
    }
    let (kafka, args) = (kafka.clone(), args.clone());
    let stages =
        tokio::task::spawn_blocking(move || timeline(&kafka, &args, &d.config_hash, perf.created_at)).await??;
    print!("{}", stages.render());
    Ok(())
}

/// Four significant digits, whatever the magnitude (traffic counters are
/// 1e7, resource-block shares 1e-4).
fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    if digits > 6 { format!("{x:.3e}") } else { format!("{x:.digits$}") }
}

/// One stage of a dataset's run: when it started (if it says) and ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
}

/// How long each stage of one run took, from the timestamps in the messages
/// the stages published (one clock: the stages run on one machine or NTP).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// When the run began: the latest preprocess request, or else the training data.
    pub origin: DateTime<Utc>,
    pub stages: Vec<Stage>,
}

impl Timeline {
    /// A table of seconds after `origin`.
    pub fn render(&self) -> String {
        let secs = |t: DateTime<Utc>| (t - self.origin).num_milliseconds() as f64 / 1000.0;
        let mut out = format!("stage timeline (seconds after {}):\n", self.origin.format("%Y-%m-%d %H:%M:%S%.3f UTC"));
        for s in &self.stages {
            let line = match s.start {
                Some(start) => format!(
                    "  {:<18} {:>8.1} -> {:>8.1}  ({:.1} s)\n",
                    s.name,
                    secs(start),
                    secs(s.end),
                    (s.end - start).num_milliseconds() as f64 / 1000.0
                ),
                None => format!("  {:<18} {:>8} -> {:>8.1}\n", s.name, "", secs(s.end)),
            };
            out.push_str(&line);
        }
        out
    }
}

fn decoded<T: serde::de::DeserializeOwned + contracts::Message>(
    consumer: &BaseConsumer,
    topic: &str,
    identifier: &str,
) -> anyhow::Result<Vec<T>> {
    Ok(crate::read::read_to_end(consumer, topic, false)?
        .iter()
        .filter_map(|m| m.payload().and_then(|p| contracts::decode::<T>(p).ok()))
        .filter(|m| m.identifier() == identifier)
        .collect())
}

/// The stages of the latest run of `config_hash` for `args.identifier`,
/// ending with the batch inference summary written at `inference_done`.
fn timeline(
    kafka: &KafkaArgs,
    args: &ReportArgs,
    config_hash: &str,
    inference_done: DateTime<Utc>,
) -> anyhow::Result<Timeline> {
    let consumer = crate::read::consumer(kafka, &format!("flts-report-{}", std::process::id()))?;
    let id = args.identifier.as_str();
    let requests: Vec<PreprocessRequest> = decoded(&consumer, &args.requests_topic, id)?;
    let data: Vec<TrainingData> = decoded(&consumer, &args.training_data_topic, id)?;
    let events: Vec<ModelTraining> = decoded(&consumer, &args.model_training_topic, id)?;
    let selected: Vec<ModelSelected> = decoded(&consumer, &args.model_selected_topic, id)?;
    Ok(build_timeline(&requests, &data, &events, &selected, config_hash, inference_done))
}

/// Pure part of [`timeline`]: the first of each kind of event at or after the
/// run's origin counts (redelivered events repeat earlier ones).
pub fn build_timeline(
    requests: &[PreprocessRequest],
    data: &[TrainingData],
    events: &[ModelTraining],
    selected: &[ModelSelected],
    config_hash: &str,
    inference_done: DateTime<Utc>,
) -> Timeline {
    let data_at = data.iter().filter(|d| d.config_hash == config_hash).map(|d| d.created_at);
    let requested = requests.iter().map(|r| r.requested_at).filter(|t| *t <= inference_done).max();
    let origin = requested.or_else(|| data_at.clone().min()).unwrap_or(inference_done);
    let after = |t: &DateTime<Utc>| *t >= origin;
    let mut stages = Vec::new();
    if let Some(end) = data_at.filter(after).min() {
        stages.push(Stage { name: "preprocess".into(), start: requested, end });
    }
    let mut model_types: Vec<ModelType> = events.iter().map(|e| e.model_type).collect();
    model_types.sort_by_key(|m| m.to_string());
    model_types.dedup();
    for model_type in model_types {
        let mine = || events.iter().filter(|e| e.model_type == model_type && e.config_hash == config_hash);
        let start = mine()
            .filter_map(|e| match &e.status {
                TrainingStatus::Running { train_start } => Some(*train_start),
                _ => None,
            })
            .filter(after)
            .min();
        let end = mine()
            .filter_map(|e| match &e.status {
                TrainingStatus::Success(s) => Some((s.train_end, "")),
                TrainingStatus::Failed { failed_at, .. } => Some((*failed_at, " (failed)")),
                TrainingStatus::Running { .. } => None,
            })
            .filter(|(t, _)| after(t))
            .min_by_key(|(t, _)| *t);
        if let Some((end, note)) = end {
            stages.push(Stage { name: format!("train {model_type}{note}"), start, end });
        }
    }
    let promoted =
        selected.iter().filter(|s| s.config_hash == config_hash).map(|s| s.promotion_time).filter(after).min();
    if let Some(end) = promoted {
        stages.push(Stage { name: "eval promotion".into(), start: None, end });
        stages.push(Stage { name: "batch inference".into(), start: Some(end), end: inference_done.max(end) });
    }
    Timeline { origin, stages }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use contracts::{ClaimCheck, V1};

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().expect("valid time")
    }

    #[test]
    fn long_gap_flag_is_start_and_rows() {
        assert_eq!(parse_long_gap("4000:195"), Ok((4000, 195)));
        assert!(parse_long_gap("4000").unwrap_err().contains("START:ROWS"));
        assert!(parse_long_gap("a:1").is_err());
    }

    fn request(secs: i64) -> PreprocessRequest {
        PreprocessRequest {
            v: V1,
            identifier: "site-1".into(),
            input: "s3://raw-data/site-1.csv".into(),
            test_input: None,
            config: None,
            force: false,
            requested_at: at(secs),
        }
    }

    fn data(secs: i64, hash: &str) -> TrainingData {
        let claim =
            ClaimCheck { bucket: "processed-data".into(), object: "x".into(), size: 1, sha256: "00".repeat(32) };
        TrainingData {
            v: V1,
            identifier: "site-1".into(),
            config_hash: hash.into(),
            train: claim.clone(),
            test: claim.clone(),
            scaler: claim,
            created_at: at(secs),
        }
    }

    fn event(model_type: ModelType, status: TrainingStatus) -> ModelTraining {
        ModelTraining {
            v: V1,
            identifier: "site-1".into(),
            model_type,
            config_hash: "h".into(),
            run_id: "r".into(),
            status,
        }
    }

    fn failed(secs: i64) -> TrainingStatus {
        TrainingStatus::Failed { reason: "x".into(), error_kind: "nan_loss".into(), failed_at: at(secs) }
    }

    #[test]
    fn timeline_starts_at_the_latest_request_and_takes_the_first_event_of_each_kind() {
        let requests = [request(0), request(100)];
        // The earlier run's data (before the latest request) and another config's do not count.
        let data = [data(5, "h"), data(102, "other"), data(103, "h"), data(200, "h")];
        let events = [
            event(ModelType::Gru, TrainingStatus::Running { train_start: at(6) }),
            event(ModelType::Gru, failed(50)),
            event(ModelType::Gru, TrainingStatus::Running { train_start: at(104) }),
            event(ModelType::Gru, failed(140)),
            // A redelivery repeats the outcome later: the first one is when training ended.
            event(ModelType::Gru, failed(150)),
            event(ModelType::Lstm, TrainingStatus::Running { train_start: at(105) }),
        ];
        let t = build_timeline(&requests, &data, &events, &[], "h", at(300));
        assert_eq!(t.origin, at(100));
        assert_eq!(
            t.stages,
            vec![
                Stage { name: "preprocess".into(), start: Some(at(100)), end: at(103) },
                Stage { name: "train GRU (failed)".into(), start: Some(at(104)), end: at(140) },
            ],
            "LSTM has not finished, so it has no row"
        );
        let text = t.render();
        assert!(text.contains("preprocess") && text.contains("(3.0 s)"), "{text}");
        assert!(text.contains("(36.0 s)"), "{text}");
    }

    #[test]
    fn significant_keeps_four_digits_at_any_magnitude() {
        assert_eq!(significant(37329881.4146), "37329881");
        assert_eq!(significant(1806.8724), "1807");
        assert_eq!(significant(0.3103), "0.3103");
        assert_eq!(significant(0.0064), "0.006400");
        assert_eq!(significant(0.00001234), "1.234e-5");
        assert_eq!(significant(0.0), "0");
    }

    #[test]
    fn without_a_request_the_timeline_starts_at_the_training_data() {
        let t = build_timeline(&[], &[data(7, "h")], &[], &[], "h", at(20));
        assert_eq!(t.origin, at(7));
        assert_eq!(t.stages, vec![Stage { name: "preprocess".into(), start: None, end: at(7) }]);
    }
}
