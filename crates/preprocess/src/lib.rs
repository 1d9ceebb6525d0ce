//! FLTS preprocess stage (seed 002's "Preprocess Container"): a raw time
//! series (CSV or Parquet, local or in S3) in; cleaned, featurised, scaled
//! train and test Parquet plus the scaler JSON out, under
//! `s3://processed-data/<identifier>/<config_hash>/`; then one claim check on
//! `training-data` and one on `inference-data`, keyed by identifier.
//!
//! Three ways to run it:
//! - one shot: `preprocess --config F --input PATH_OR_S3_URI --identifier ID [--test-input ..]`;
//! - local: `preprocess --once --input PATH --output DIR` (no broker, no S3);
//! - service: without `--input`, it consumes `preprocess-requests`
//!   ([`contracts::PreprocessRequest`]); failures go to `DLQ-preprocess-requests`.
//!
//! The `config_hash` is the SHA-256 of the canonical config (every setting
//! that changes the output plus the inputs' checksums). Outputs that exist for
//! a hash are re-published, not recomputed, unless forced. Objects are written
//! first and the claim checks published last, so a failure publishes nothing.
//!
//! # Layout
//! - [`config`]: settings, their layers (file, env and flags, request), the canonical hash.
//! - [`clean`]: the cleaning steps on [`series::Frame`].
//! - [`pipeline`]: raw bytes to processed, scaled frames and encoded outputs (no I/O).
//! - [`service`]: fetch, reuse or recompute, store, publish; the request handler.
//! - [`error`]: [`PreprocessError`] with its retry policy.
//! - [`metrics`]: every `flts_preprocess_*` metric.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use claim_check::{ClaimCheckStore, S3Args, sha256_hex};
use contracts::topics;
use kafka_utils::{ConsumerArgs, ConsumerSettings, KafkaArgs, Producer, StageRunner};
use serde_json::Value;
use service_kit::admin::AdminArgs;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod clean;
pub mod config;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod service;

pub use config::{ConfigArgs, PreprocessConfig};
pub use error::PreprocessError;
pub use service::{Job, Outcome, Preprocessor, Settings};

/// Clean, featurise and scale raw time series; publish claim checks.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "preprocess", version, about)]
pub struct Cli {
    /// Config file, JSON or TOML; env variables and flags override its settings.
    #[arg(long, env = "PREPROCESS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConfigArgs,
    /// Raw dataset to process now (local path or s3://bucket/key); without it the stage serves requests.
    #[arg(long, env = "PREPROCESS_INPUT")]
    pub input: Option<String>,
    /// Separate test part of the dataset (otherwise TEST_FRACTION of the input becomes the test part).
    #[arg(long, env = "PREPROCESS_TEST_INPUT", requires = "input")]
    pub test_input: Option<String>,
    /// Dataset identifier: object prefix and message key (needed with --input, except with --once).
    #[arg(long, env = "IDENTIFIER")]
    pub identifier: Option<String>,
    /// Recompute even when outputs for the config hash exist.
    #[arg(long, env = "PREPROCESS_FORCE")]
    pub force: bool,
    /// Process local files into --output and exit: no broker, no S3.
    #[arg(long, env = "PREPROCESS_ONCE", requires_all = ["input", "output"])]
    pub once: bool,
    /// Directory of the --once outputs (train.parquet, test.parquet, scaler.json).
    #[arg(long, env = "PREPROCESS_OUTPUT", requires = "once")]
    pub output: Option<PathBuf>,
    /// Bucket of the processed data.
    #[arg(long, env = "PROCESSED_BUCKET", default_value = "processed-data")]
    pub bucket: String,
    /// The only bucket raw inputs are read from (each dataset's under `<identifier>/`).
    #[arg(long, env = "RAW_BUCKET", default_value = "raw-data")]
    pub raw_bucket: String,
    /// Topic of training claim checks.
    #[arg(long, env = "TRAINING_DATA_TOPIC", default_value = topics::TRAINING_DATA)]
    pub training_topic: String,
    /// Topic of inference claim checks.
    #[arg(long, env = "INFERENCE_DATA_TOPIC", default_value = topics::INFERENCE_DATA)]
    pub inference_topic: String,
    /// Topic of preprocess requests (service mode).
    #[arg(long, env = "PREPROCESS_REQUESTS_TOPIC", default_value = topics::PREPROCESS_REQUESTS)]
    pub requests_topic: String,
    /// Consumer group of the service (requests that cannot be processed go to `DLQ-<requests topic>`).
    #[arg(long, env = "PREPROCESS_GROUP_ID", default_value = contracts::topology::own("preprocess").group())]
    pub group_id: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    /// S3 settings (not needed with --once).
    #[command(flatten)]
    pub s3: Option<S3Args>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl Cli {
    /// The config layers from the file and from env variables and flags.
    pub fn settings(&self) -> Result<Settings, PreprocessError> {
        let file = match &self.config {
            Some(path) => config::load_file(path)?,
            None => Value::Object(Default::default()),
        };
        Ok(Settings {
            file,
            args: self.settings.patch(),
            bucket: self.bucket.clone(),
            raw_bucket: self.raw_bucket.clone(),
            training_topic: self.training_topic.clone(),
            inference_topic: self.inference_topic.clone(),
            allow_local_inputs: self.input.is_some(),
        })
    }
}

/// What `--once` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOutcome {
    pub config_hash: String,
    pub files: Vec<PathBuf>,
    pub stats: pipeline::Stats,
}

/// `--once`: process local files into `out_dir`, no broker, no S3.
pub async fn run_local(
    settings: &Settings,
    input: &Path,
    test_input: Option<&Path>,
    out_dir: &Path,
) -> Result<LocalOutcome, PreprocessError> {
    let config = PreprocessConfig::resolve(&[&settings.file, &settings.args])?;
    let bytes = service::read_local(input, config.max_input_bytes).await?;
    let test = match test_input {
        Some(p) => Some(service::read_local(p, config.max_input_bytes).await?),
        None => None,
    };
    let canonical = config.canonical(&sha256_hex(&bytes), test.as_deref().map(sha256_hex).as_deref());
    let (hash, canonical) = config::config_hash(&canonical);
    let (name, test_name) = (input.display().to_string(), test_input.map(|p| p.display().to_string()));
    let h = hash.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let t = test.zip(test_name.as_deref()).map(|(b, name)| pipeline::RawInput { name, bytes: b.into() });
        pipeline::process(&config, pipeline::RawInput { name: &name, bytes: bytes.into() }, t)?.encode(&h, canonical)
    })
    .await
    .map_err(|e| PreprocessError::Task(e.to_string()))??;
    let out = |source, path: &Path| PreprocessError::Output { path: path.display().to_string(), source };
    tokio::fs::create_dir_all(out_dir).await.map_err(|e| out(e, out_dir))?;
    let mut files = Vec::new();
    for (name, bytes) in
        [("train.parquet", encoded.train), ("test.parquet", encoded.test), ("scaler.json", encoded.scaler)]
    {
        let path = out_dir.join(name);
        tokio::fs::write(&path, bytes).await.map_err(|e| out(e, &path))?;
        files.push(path);
    }
    Ok(LocalOutcome { config_hash: hash, files, stats: encoded.stats })
}

/// Run the stage: one shot, `--once`, or the request service until `cancel`.
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    let settings = cli.settings().context("load the preprocess config")?;
    if cli.once {
        let (Some(input), Some(out)) = (&cli.input, &cli.output) else {
            anyhow::bail!("--once needs --input and --output");
        };
        if input.starts_with("s3://") || cli.test_input.as_deref().is_some_and(|t| t.starts_with("s3://")) {
            anyhow::bail!("--once reads local files only; drop --once to read from S3");
        }
        let o = run_local(&settings, Path::new(input), cli.test_input.as_deref().map(Path::new), out).await?;
        let s = &o.stats;
        info!(config_hash = %o.config_hash, timestamp_column = %s.timestamp_column, train_rows = s.train_rows,
            test_rows = s.test_rows, long_gap_rows = s.long_gap_rows, files = ?o.files, "outputs written");
        println!("{}", o.config_hash);
        return Ok(());
    }
    // Fail on a bad config now rather than at the first request.
    PreprocessConfig::resolve(&[&settings.file, &settings.args]).context("check the preprocess config")?;
    cli.kafka.validate().context("check Kafka settings")?;
    let s3 = cli.s3.as_ref().context("S3 settings (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...) are required")?;
    s3.validate().context("check S3 settings")?;
    metrics::init();
    let producer = Producer::new(&cli.kafka, "preprocess").context("create producer")?;
    let pre = Arc::new(Preprocessor::new(settings, ClaimCheckStore::new(s3), producer.clone()));

    if let Some(input) = &cli.input {
        let identifier = cli.identifier.clone().context("--identifier is required with --input")?;
        let job = Job {
            identifier,
            input: input.clone(),
            test_input: cli.test_input.clone(),
            overrides: None,
            force: cli.force,
        };
        let o = pre.run_job(&job).await?;
        println!("{}", o.config_hash);
        return Ok(());
    }

    let settings = ConsumerSettings {
        service: "preprocess".into(),
        group_id: cli.group_id.clone(),
        topics: vec![cli.requests_topic.clone()],
        args: cli.consumer.clone(),
    };
    let mut stage = StageRunner::start_ready(&cli.kafka, producer, &cli.admin, cancel).await?;
    stage.consume(settings, pre);
    stage.run().await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn once_needs_no_s3_settings() {
        let cli = Cli::try_parse_from(["preprocess", "--once", "--input", "in.csv", "--output", "out"]).unwrap();
        assert!(cli.once);
        let cli = Cli::try_parse_from([
            "preprocess",
            "--s3-access-key-id",
            "k",
            "--s3-secret-access-key",
            "s",
            "--input",
            "s3://b/k",
            "--identifier",
            "x",
        ])
        .unwrap();
        assert_eq!(cli.s3.map(|s| s.access_key_id), Some("k".to_string()));
        assert!(Cli::try_parse_from(["preprocess", "--once", "--input", "in.csv"]).is_err(), "--once needs --output");
    }
}
