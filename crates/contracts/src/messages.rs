//! One struct per topic. Field names follow seed 002 where it defines them;
//! what FLTS adds (checksums, baselines, artifact locations) is documented on
//! the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::topics;
use crate::version::V1;

/// What every topic message has in common.
pub trait Message: Serialize + serde::de::DeserializeOwned + JsonSchema {
    /// The topic this message is published to.
    const TOPIC: &'static str;
    /// Dataset identifier; also the Kafka message key, so that every message of
    /// one dataset lands on one partition and stays in order.
    fn identifier(&self) -> &str;
}

/// A pointer to an S3 object plus what the reader needs to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimCheck {
    /// Bucket name; must be on the reader's allowlist.
    pub bucket: String,
    /// Object key inside the bucket.
    pub object: String,
    /// Object size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the object's bytes.
    pub sha256: String,
}

impl ClaimCheck {
    /// `s3://bucket/object`, for logs and people.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.object)
    }
}

/// The model families of the pipeline: the three trained ones (one trainer
/// stage each, see [`crate::topology`]) and the two eval composes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ModelType {
    Gru,
    Lstm,
    Prophet,
    /// A weighted mean of trained models, built by eval when it beats every
    /// single model on validation (artifact: [`crate::ensemble::EnsembleManifest`]).
    Ensemble,
    /// A naive forecast (last value or seasonal naive) as an ONNX model,
    /// promoted by eval when no trained model beats the naive baselines.
    Baseline,
}

impl ModelType {
    /// The wire name: GRU, LSTM, PROPHET, ENSEMBLE or BASELINE.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Gru => "GRU",
            ModelType::Lstm => "LSTM",
            ModelType::Prophet => "PROPHET",
            ModelType::Ensemble => "ENSEMBLE",
            ModelType::Baseline => "BASELINE",
        }
    }

    /// Whether a trainer stage trains this type (eval composes the others).
    pub fn is_trained(self) -> bool {
        matches!(self, ModelType::Gru | ModelType::Lstm | ModelType::Prophet)
    }
}

impl std::fmt::Display for ModelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GRU" => Ok(ModelType::Gru),
            "LSTM" => Ok(ModelType::Lstm),
            "PROPHET" => Ok(ModelType::Prophet),
            "ENSEMBLE" => Ok(ModelType::Ensemble),
            "BASELINE" => Ok(ModelType::Baseline),
            other => Err(format!("unknown model type `{other}` (expected GRU, LSTM, PROPHET, ENSEMBLE or BASELINE)")),
        }
    }
}

/// `training-data`: claim checks for a processed dataset, published by preprocess.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainingData {
    pub v: V1,
    pub identifier: String,
    /// SHA-256 of the canonical preprocess config and the input checksum.
    pub config_hash: String,
    /// The processed training part (seed 002's `bucket`, `object`, `size`).
    #[serde(flatten)]
    pub train: ClaimCheck,
    /// The processed test part: trainers report metrics on it.
    pub test: ClaimCheck,
    /// The scaler fitted on the training part, as JSON.
    pub scaler: ClaimCheck,
    pub created_at: DateTime<Utc>,
}

impl Message for TrainingData {
    const TOPIC: &'static str = topics::TRAINING_DATA;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// `inference-data`: claim check for a processed test dataset to forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InferenceData {
    pub v: V1,
    pub identifier: String,
    pub config_hash: String,
    /// The processed test part (seed 002's `bucket`, `object`, `size`).
    #[serde(flatten)]
    pub test: ClaimCheck,
    /// The scaler fitted on the training part, as JSON.
    pub scaler: ClaimCheck,
    pub created_at: DateTime<Utc>,
}

impl Message for InferenceData {
    const TOPIC: &'static str = topics::INFERENCE_DATA;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// Mean squared error, its root and mean absolute error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    pub mse: f64,
    pub rmse: f64,
    pub mae: f64,
}

/// How forecasts were produced when they were scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvalProtocol {
    /// Each window's forecast starts from actual observations (GRU, LSTM).
    OneStepAhead,
    /// The whole test period is forecast from the end of training (Prophet).
    FromTrainEnd,
}

/// Naive baselines on exactly the windows the model was scored on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Baselines {
    /// Repeat the last observed value (last training value for `from_train_end`).
    pub last_value: Metrics,
    /// The value one season (a day) earlier; absent when history is shorter than a season.
    pub seasonal_naive: Option<Metrics>,
}

/// How a trained model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// ONNX with standard GRU/LSTM operators (tract, onnxruntime).
    Onnx,
    /// Fitted Prophet parameters as JSON.
    ProphetJson,
    /// A JSON manifest of weighted member models ([`crate::ensemble::EnsembleManifest`]).
    Ensemble,
}

/// Where a model lives and what it expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelArtifact {
    pub format: ModelFormat,
    /// Artifact path of the model inside the MLflow run (e.g. `model/model.onnx`).
    pub path: String,
    /// Artifact path of the scaler JSON inside the MLflow run.
    pub scaler_path: String,
    /// Rows of input per forecast window.
    pub input_len: u32,
    /// Rows forecast per window.
    pub output_len: u32,
    /// Input columns, in order.
    pub features: Vec<String>,
    /// Forecast columns, in order.
    pub targets: Vec<String>,
}

/// Payload of a SUCCESS event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainingSuccess {
    /// Test RMSE averaged over targets, scaled units (what eval scores).
    pub test_rmse: f64,
    pub test_mae: f64,
    pub test_mse: f64,
    pub train_start: DateTime<Utc>,
    pub train_end: DateTime<Utc>,
    /// MLflow artifact root of the run.
    pub artifact_uri: String,
    pub model: ModelArtifact,
    /// Lower-case hex SHA-256 of the model file (`model.path`), also tagged on
    /// the run as `flts.model_sha256`; inference refuses a file that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// The protocol the test metrics and baselines were computed under.
    pub protocol: EvalProtocol,
    pub baselines: Baselines,
    /// How the chosen candidate scored on the validation windows: what eval
    /// chooses by (absent from trainers older than issue 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// Scores on the validation windows (blocks of the training part, the last at
/// its end; see docs/data-contract.md), against raw actuals, in the dataset
/// scaler's units like the test metrics. Every choice (preprocessing, seed, model type,
/// ensemble weights) is made on these; the test part is only reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Validation {
    pub metrics: Metrics,
    /// The naive baselines on the same validation windows.
    pub baselines: Baselines,
    /// Validation windows scored.
    pub windows: u32,
    /// Candidates of this model type trained for the submission.
    pub candidates: u32,
    /// What the chosen candidate was trained with, e.g. `outliers = percentile`, `seed = 1`.
    pub choice: BTreeMap<String, String>,
}

/// The lifecycle state carried by a `model-training` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrainingStatus {
    Running {
        train_start: DateTime<Utc>,
    },
    Success(Box<TrainingSuccess>),
    Failed {
        /// What went wrong, for people.
        reason: String,
        /// Short machine-readable cause, e.g. `nan_loss`, `bad_parquet`.
        error_kind: String,
        failed_at: DateTime<Utc>,
    },
}

/// `model-training`: RUNNING, SUCCESS or FAILED for one (model type, dataset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelTraining {
    pub v: V1,
    pub identifier: String,
    pub model_type: ModelType,
    pub config_hash: String,
    /// MLflow run id.
    pub run_id: String,
    #[serde(flatten)]
    pub status: TrainingStatus,
}

impl Message for ModelTraining {
    const TOPIC: &'static str = topics::MODEL_TRAINING;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// `model-selected`: the promotion of one model for a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelSelected {
    pub v: V1,
    pub identifier: String,
    /// `runs:/<run_id>/<model path>`.
    pub model_uri: String,
    pub model_type: ModelType,
    pub run_id: String,
    pub config_hash: String,
    /// Weighted score, lower is better (default `0.5*rmse + 0.3*mae + 0.2*mse`).
    pub composite_score: f64,
    pub test_rmse: f64,
    pub test_mae: f64,
    pub test_mse: f64,
    /// When eval promoted it, for people; never used to order promotions.
    pub promotion_time: DateTime<Utc>,
    pub artifact_uri: String,
    pub model: ModelArtifact,
    /// Lower-case hex SHA-256 of the model file, from the MLflow run; inference
    /// verifies the file against it before serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// Model types that never reported before the timeout (empty when complete).
    #[serde(default)]
    pub missing: Vec<ModelType>,
    /// Object key of the decision record in the model-promotion bucket.
    pub decision_object: String,
    /// Eval's promotion number for this identifier, strictly increasing on
    /// every promotion (see [`crate::promotion`]); inference orders by it.
    #[serde(default)]
    pub sequence: u64,
}

impl Message for ModelSelected {
    const TOPIC: &'static str = topics::MODEL_SELECTED;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// `performance-eval`: summary of one batch inference over a test dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PerformanceEval {
    pub v: V1,
    pub identifier: String,
    pub config_hash: String,
    pub model_type: ModelType,
    pub run_id: String,
    /// Forecast windows scored.
    pub windows: u64,
    /// Averaged over targets, scaled units.
    pub metrics: Metrics,
    /// Per target, original units.
    pub per_target: BTreeMap<String, Metrics>,
    /// The JSONL results object.
    pub results: ClaimCheck,
    /// The forecast-versus-actual PNG, when one was drawn.
    pub plot: Option<ClaimCheck>,
    /// The inference-data object that was forecast.
    pub source: ClaimCheck,
    pub created_at: DateTime<Utc>,
}

impl Message for PerformanceEval {
    const TOPIC: &'static str = topics::PERFORMANCE_EVAL;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// `preprocess-requests`: ask the preprocess service to process a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PreprocessRequest {
    pub v: V1,
    pub identifier: String,
    /// `s3://bucket/key` of the raw dataset (CSV or Parquet).
    pub input: String,
    /// Optional separate test part; otherwise the config's split fraction applies.
    #[serde(default)]
    pub test_input: Option<String>,
    /// Preprocess config overrides (same keys as the config file).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Recompute even when outputs for the config hash exist.
    #[serde(default)]
    pub force: bool,
    pub requested_at: DateTime<Utc>,
}

impl Message for PreprocessRequest {
    const TOPIC: &'static str = topics::PREPROCESS_REQUESTS;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The bytes are not a valid message (JSON, schema, version): sent at once.
    Decode,
    /// The message is valid but cannot be processed (bad data, missing object): sent at once.
    Permanent,
    /// A retryable failure that outlasted the retry budget.
    RetriesExhausted,
}

/// The error part of a DLQ envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DlqError {
    pub kind: FailureKind,
    /// Short machine-readable cause, e.g. `checksum_mismatch`.
    pub code: String,
    /// The full error chain, for people.
    pub message: String,
}

/// `DLQ-<topic>`: a record that could not be processed, kept whole for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DlqEnvelope {
    pub v: V1,
    /// The dataset identifier when the payload had one.
    pub identifier: Option<String>,
    pub original_topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The original key, base64 (absent when the record had none).
    pub key_base64: Option<String>,
    /// The original payload bytes, unchanged, base64; only their first bytes
    /// when `payload_truncated_from` is set.
    pub payload_base64: String,
    /// Set when the whole payload would not fit in a DLQ record (the envelope
    /// must stay under the broker's message size limit): the original size in
    /// bytes. `payload_base64` then holds a prefix, and the whole record stays
    /// at `original_topic`/`partition`/`offset` until retention removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_truncated_from: Option<u64>,
    /// SHA-256 (hex) of the whole original payload; set with
    /// `payload_truncated_from`, so the record can be matched and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// Set when the key was too large to carry whole: its size in bytes.
    /// `key_base64` then holds its first bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_truncated_from: Option<u64>,
    /// SHA-256 (hex) of the whole original key; set with `key_truncated_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    pub error: DlqError,
    /// Handler attempts made before giving up.
    pub attempts: u32,
    /// The service that gave up.
    pub service: String,
    pub failed_at: DateTime<Utc>,
}

/// `model-drift`: the monitor found a served model's forecasts degraded: the
/// rolling error of its served forecasts against the actuals stayed above
/// `threshold` times the model's own test error for at least `for_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelDrift {
    pub v: V1,
    pub identifier: String,
    pub model_type: ModelType,
    /// MLflow run of the served model.
    pub run_id: String,
    /// The model's test RMSE (scaled units, averaged over targets), from its MLflow run.
    pub test_rmse: f64,
    /// RMSE of the served forecasts over the rolling window (same units).
    pub rolling_rmse: f64,
    /// `rolling_rmse / test_rmse`.
    pub ratio: f64,
    /// The configured ratio above which forecasts count as degraded.
    pub threshold: f64,
    /// The configured time the ratio must stay above the threshold, seconds.
    pub for_secs: u64,
    /// performance-eval records in the rolling window.
    pub observations: u32,
    /// Forecast windows those records scored.
    pub windows: u64,
    /// Time of the first record of the degraded stretch.
    pub degraded_since: DateTime<Utc>,
    /// Config hash of the data in the record that completed the degraded stretch.
    pub config_hash: String,
    /// That record's inference-data object (the data the model missed on).
    pub source: ClaimCheck,
    /// Whether the monitor asked preprocess to retrain (MONITOR_RETRAIN_ON_DRIFT).
    pub retrain_requested: bool,
    pub detected_at: DateTime<Utc>,
}

impl Message for ModelDrift {
    const TOPIC: &'static str = topics::MODEL_DRIFT;
    fn identifier(&self) -> &str {
        &self.identifier
    }
}
