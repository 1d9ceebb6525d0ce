//! `flts submit`: hand a dataset to the preprocess stage.
//!
//! A local file is uploaded to the raw-data bucket first (content-addressed,
//! so submitting the same file twice stores it once); an `s3://` URI is
//! passed through. Then a `preprocess-requests` message keyed by identifier.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use claim_check::ClaimCheckStore;
use contracts::{PreprocessRequest, V1};
use kafka_utils::{KafkaArgs, Producer};

/// Flags of `flts submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Dataset name; all its messages share this key.
    #[arg(long)]
    pub identifier: String,
    /// Raw dataset: a local CSV/Parquet file or an s3://bucket/key URI.
    #[arg(long)]
    pub input: String,
    /// Separate test part (file or URI); otherwise the preprocess config's split fraction applies.
    #[arg(long)]
    pub test_input: Option<String>,
    /// Preprocess config overrides (JSON file).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Reprocess even if outputs for the config hash exist.
    #[arg(long)]
    pub force: bool,
    /// Bucket for uploaded local files.
    #[arg(long, env = "RAW_BUCKET", default_value = "raw-data")]
    pub raw_bucket: String,
    /// Topic of preprocess requests.
    #[arg(long, env = "PREPROCESS_REQUESTS_TOPIC", default_value = contracts::topics::PREPROCESS_REQUESTS)]
    pub topic: String,
    #[command(flatten)]
    pub s3: claim_check::S3Args,
}

/// Upload `input` if it is a local file; return its s3:// URI.
async fn stage_input(store: &ClaimCheckStore, bucket: &str, identifier: &str, input: &str) -> anyhow::Result<String> {
    if input.starts_with("s3://") {
        return Ok(input.to_string());
    }
    let path = Path::new(input);
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("data");
    let sha = claim_check::sha256_hex(&bytes);
    let key = format!("{identifier}/{}-{name}", &sha[..16]);
    let content_type = if name.ends_with(".parquet") { "application/vnd.apache.parquet" } else { "text/csv" };
    let claim = store.put(bucket, &key, bytes.into(), content_type).await.with_context(|| format!("upload {input}"))?;
    Ok(claim.uri())
}

/// `flts submit`
pub async fn run(kafka: &KafkaArgs, store: &ClaimCheckStore, args: &SubmitArgs) -> anyhow::Result<()> {
    if let Err(e) = contracts::topics::validate_identifier(&args.identifier) {
        bail!("{e}");
    }
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?)
        }
        None => None,
    };
    let input = stage_input(store, &args.raw_bucket, &args.identifier, &args.input).await?;
    let test_input = match &args.test_input {
        Some(t) => Some(stage_input(store, &args.raw_bucket, &args.identifier, t).await?),
        None => None,
    };
    let request = PreprocessRequest {
        v: V1,
        identifier: args.identifier.clone(),
        input,
        test_input,
        config,
        force: args.force,
        requested_at: Utc::now(),
    };
    let producer = Producer::new(kafka, "flts-cli").context("create producer")?;
    let d = producer
        .send_json(&args.topic, Some(&args.identifier), &request)
        .await
        .context("publish the preprocess request")?;
    println!(
        "submitted {} ({}) to {} [partition {}, offset {}]",
        args.identifier, request.input, args.topic, d.partition, d.offset
    );
    Ok(())
}
