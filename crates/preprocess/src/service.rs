//! The stage around the pipeline: fetch inputs, hash, reuse or recompute,
//! store the objects, then publish the claim checks (last, so that a failure
//! publishes nothing); and the `preprocess-requests` handler.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use claim_check::{ClaimCheck, ClaimCheckStore, sha256_hex};
use contracts::{InferenceData, PreprocessRequest, TrainingData, V1};
use kafka_utils::{HandlerError, Producer, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::config::{PreprocessConfig, config_hash};
use crate::error::PreprocessError;
use crate::metrics;
use crate::pipeline::{self, RawInput, Stats};

/// Where a raw input lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    /// `s3://bucket/key`, or a local path.
    pub fn parse(s: &str) -> Result<Location, PreprocessError> {
        match s.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(Location::S3 { bucket: bucket.into(), key: key.into() })
                }
                _ => Err(PreprocessError::Request(format!("`{s}` is not an s3://bucket/key URI"))),
            },
            None if s.trim().is_empty() => Err(PreprocessError::Request("empty input location".into())),
            None => Ok(Location::Local(PathBuf::from(s))),
        }
    }
}

/// One dataset to process.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub identifier: String,
    pub input: String,
    pub test_input: Option<String>,
    /// Config overrides (a merge patch in config-file shape).
    pub overrides: Option<Value>,
    /// Recompute even when outputs for the hash exist.
    pub force: bool,
}

/// What a finished job published.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub config_hash: String,
    /// True when existing outputs were re-published without recomputing.
    pub reused: bool,
    pub training: TrainingData,
    pub inference: InferenceData,
}

/// Written after the three objects: its presence means the set is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub config_hash: String,
    pub train: ClaimCheck,
    pub test: ClaimCheck,
    pub scaler: ClaimCheck,
    pub train_rows: usize,
    pub test_rows: usize,
    pub created_at: DateTime<Utc>,
}

/// Where outputs go and what is allowed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file's contents (or an empty object).
    pub file: Value,
    /// Env variables and flags as a merge patch.
    pub args: Value,
    /// Bucket of the processed data.
    pub bucket: String,
    /// The only bucket raw inputs are read from, and only under
    /// `<identifier>/` (a request may not name another dataset's objects).
    pub raw_bucket: String,
    pub training_topic: String,
    pub inference_topic: String,
    /// Whether local paths are accepted as inputs (one-shot CLI yes, requests no).
    pub allow_local_inputs: bool,
}

/// The stage's clients and settings.
pub struct Preprocessor {
    settings: Settings,
    store: ClaimCheckStore,
    producer: Producer,
}

/// The largest manifest.json read back.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Object keys of a processed dataset.
pub fn object_key(identifier: &str, config_hash: &str, name: &str) -> String {
    format!("{identifier}/{config_hash}/{name}")
}

fn json_bytes<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

impl Preprocessor {
    pub fn new(settings: Settings, store: ClaimCheckStore, producer: Producer) -> Self {
        Preprocessor { settings, store, producer }
    }

    /// Fetch an input of dataset `identifier`. An S3 input must be in the raw
    /// bucket under `<identifier>/` (checked before any request, so nothing
    /// of another dataset's object is read or quoted), and one over `limit`
    /// bytes is refused from its declared size, before its body is read.
    async fn fetch(&self, loc: &str, limit: u64, identifier: &str) -> Result<Bytes, PreprocessError> {
        match Location::parse(loc)? {
            Location::S3 { bucket, key } => {
                self.store.check_location(&bucket, &key)?;
                claim_check::check_dataset_object(&bucket, &key, &self.settings.raw_bucket, identifier)?;
                match self.store.get_object_max(&bucket, &key, limit).await {
                    Err(claim_check::StoreError::TooLarge { size, .. }) => {
                        Err(PreprocessError::TooLarge { file: loc.into(), size, limit })
                    }
                    other => Ok(other?),
                }
            }
            Location::Local(path) => {
                if !self.settings.allow_local_inputs {
                    return Err(PreprocessError::Request(format!(
                        "`{loc}` is a local path; requests must name an s3://bucket/key input"
                    )));
                }
                read_local(&path, limit).await.map(Bytes::from)
            }
        }
    }

    /// The complete, still present outputs of an earlier run, if any.
    async fn existing(&self, identifier: &str, hash: &str) -> Result<Option<Manifest>, PreprocessError> {
        let key = object_key(identifier, hash, "manifest.json");
        // A manifest is a few hundred bytes; anything far larger is not ours.
        let bytes = match self.store.get_object_max(&self.settings.bucket, &key, MAX_MANIFEST_BYTES).await {
            Ok(b) => b,
            Err(claim_check::StoreError::NotFound { .. } | claim_check::StoreError::TooLarge { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else { return Ok(None) };
        for claim in [&manifest.train, &manifest.test, &manifest.scaler] {
            if self.store.head(&claim.bucket, &claim.object).await? != Some(claim.size) {
                return Ok(None);
            }
        }
        Ok(Some(manifest))
    }

    /// Process (or re-publish) one dataset; claim checks are published last.
    pub async fn run_job(&self, job: &Job) -> Result<Outcome, PreprocessError> {
        let started = Instant::now();
        contracts::topics::validate_identifier(&job.identifier).map_err(PreprocessError::Request)?;
        let overrides = job.overrides.clone().unwrap_or(Value::Null);
        // The operator's limits are ceilings the request's overrides cannot raise.
        let config = PreprocessConfig::resolve_request(&[&self.settings.file, &self.settings.args], &overrides)?;
        let input = self.fetch(&job.input, config.max_input_bytes, &job.identifier).await?;
        let test_input = match &job.test_input {
            Some(t) => Some(self.fetch(t, config.max_input_bytes, &job.identifier).await?),
            None => None,
        };
        metrics::INPUT_BYTES.inc_by(input.len() as u64 + test_input.as_ref().map_or(0, |b| b.len() as u64));
        let canonical = config.canonical(&sha256_hex(&input), test_input.as_deref().map(sha256_hex).as_deref());
        let (hash, canonical) = config_hash(&canonical);
        let (id, bucket) = (&job.identifier, &self.settings.bucket);

        let (manifest, reused) = match self.existing(id, &hash).await? {
            Some(m) if !job.force => {
                info!(identifier = %id, config_hash = %hash, "outputs exist for this config hash: re-publishing without recomputing");
                (m, true)
            }
            _ => {
                let (name, test_name) = (job.input.clone(), job.test_input.clone());
                let hash2 = hash.clone();
                let encoded = tokio::task::spawn_blocking(move || {
                    let test = test_input.zip(test_name.as_deref()).map(|(bytes, name)| RawInput { name, bytes });
                    pipeline::process(&config, RawInput { name: &name, bytes: input }, test)?.encode(&hash2, canonical)
                })
                .await
                .map_err(|e| PreprocessError::Task(e.to_string()))??;
                let Stats { train_rows, test_rows, long_gap_rows, .. } = encoded.stats;
                log_stats(id, &hash, &encoded.stats);
                let put = |name: &str, bytes: Vec<u8>, ct: &'static str| {
                    let key = object_key(id, &hash, name);
                    async move { self.store.put(bucket, &key, Bytes::from(bytes), ct).await }
                };
                let train = put("train.parquet", encoded.train, "application/vnd.apache.parquet").await?;
                let test = put("test.parquet", encoded.test, "application/vnd.apache.parquet").await?;
                let scaler = put("scaler.json", encoded.scaler, "application/json").await?;
                let manifest = Manifest {
                    config_hash: hash.clone(),
                    train,
                    test,
                    scaler,
                    train_rows,
                    test_rows,
                    created_at: Utc::now(),
                };
                self.store
                    .put(bucket, &object_key(id, &hash, "manifest.json"), json_bytes(&manifest), "application/json")
                    .await?;
                metrics::ROWS.with_label_values(&["train"]).inc_by(train_rows as u64);
                metrics::ROWS.with_label_values(&["test"]).inc_by(test_rows as u64);
                metrics::LONG_GAP_ROWS.inc_by(long_gap_rows as u64);
                (manifest, false)
            }
        };

        let training = TrainingData {
            v: V1,
            identifier: id.clone(),
            config_hash: hash.clone(),
            train: manifest.train.clone(),
            test: manifest.test.clone(),
            scaler: manifest.scaler.clone(),
            created_at: manifest.created_at,
        };
        let inference = InferenceData {
            v: V1,
            identifier: id.clone(),
            config_hash: hash.clone(),
            test: manifest.test.clone(),
            scaler: manifest.scaler.clone(),
            created_at: manifest.created_at,
        };
        self.producer.send_json(&self.settings.training_topic, Some(id), &training).await?;
        self.producer.send_json(&self.settings.inference_topic, Some(id), &inference).await?;
        metrics::SECONDS.observe(started.elapsed().as_secs_f64());
        info!(identifier = %id, config_hash = %hash, reused, train = %training.train.uri(), seconds = started.elapsed().as_secs_f64(), "claim checks published");
        Ok(Outcome { config_hash: hash, reused, training, inference })
    }
}

fn log_stats(id: &str, hash: &str, s: &Stats) {
    info!(identifier = %id, config_hash = %hash, timestamp_column = %s.timestamp_column, rows_in = s.rows_in,
        resorted = s.resorted, duplicates_dropped = s.duplicates_dropped, slots_added = s.slots_added,
        values_filled = s.values_filled, long_gap_rows = s.long_gap_rows, rows_dropped = s.rows_dropped,
        train_rows = s.train_rows, test_rows = s.test_rows, "processed");
}

/// Read a local input, refusing it before reading when it is over the limit.
pub async fn read_local(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, PreprocessError> {
    let p = path.display().to_string();
    let io = |source| PreprocessError::Io { path: p.clone(), source };
    let size = tokio::fs::metadata(path).await.map_err(io)?.len();
    if size > limit {
        return Err(PreprocessError::TooLarge { file: p.clone(), size, limit });
    }
    tokio::fs::read(path).await.map_err(io)
}

impl kafka_utils::Handler for Preprocessor {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let req: PreprocessRequest = record.decode()?;
        let job = Job {
            identifier: req.identifier,
            input: req.input,
            test_input: req.test_input,
            overrides: req.config,
            force: req.force,
        };
        match self.run_job(&job).await {
            Ok(o) => {
                metrics::JOBS.with_label_values(&[if o.reused { "reused" } else { "processed" }]).inc();
                Ok(())
            }
            Err(e) => {
                metrics::JOBS.with_label_values(&["failed"]).inc();
                Err(e.into())
            }
        }
    }
}
