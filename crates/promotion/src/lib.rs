//! The promotion path, shared by eval and the operator CLI (`flts promote`,
//! `flts rollback`), so every promotion takes the same steps in the same order:
//!
//! 1. a new sequence number ([`Promoter::next_sequence`], persisted before use);
//! 2. the history record `<identifier>/promotions/<sequence>.json` ([`Record`]);
//! 3. the pointer `<identifier>/current.json` and the global `current.json`
//!    (only moved forward: a replayed older promotion leaves a newer one);
//! 4. the MLflow run tag `flts.promoted_at`;
//! 5. model-selected, keyed by identifier;
//! 6. the Model Registry: a version of `flts-<identifier>` for the run (found
//!    again by run and `flts.sequence` on a redelivery, never created twice)
//!    and the alias `champion` on it. A registry failure after retries is
//!    logged, counted and remembered as `<identifier>/registry-pending/<sequence>.json`,
//!    and never undoes or blocks steps 1-5; eval's recover (every start) and
//!    the next redelivery complete it ([`Promoter::ensure_registered`]).
//!
//! Inference orders promotions by sequence and acts on the pointer only, so a
//! rollback (an older run under a new, higher number) is followed like any
//! promotion.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use claim_check::{ClaimCheckStore, StoreError};
use contracts::error::{Classified, Code};
use contracts::promotion::{self, Sequence, run_tags};
use contracts::{ModelSelected, ModelTraining, ModelType, TrainingStatus, TrainingSuccess};
use kafka_utils::backoff::{self, Backoff, Stopped};
use kafka_utils::{HandlerError, Producer};
use mlflow_client::{KeyValue, MlflowClient, MlflowError, ModelVersion, Run};
use prometheus::{IntCounterVec, register_int_counter_vec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The alias on the served version of a registered model.
pub const CHAMPION: &str = "champion";

/// Model version tags.
pub mod version_tags {
    pub const IDENTIFIER: &str = "flts.identifier";
    pub const MODEL_TYPE: &str = "flts.model_type";
    pub const CONFIG_HASH: &str = "flts.config_hash";
    pub const COMPOSITE_SCORE: &str = "flts.composite_score";
    pub const SEQUENCE: &str = "flts.sequence";
}

/// The registered model of a dataset: `flts-<identifier>`.
pub fn registered_model_name(identifier: &str) -> String {
    format!("flts-{identifier}")
}

/// `<identifier>/promotions/`: the prefix of a dataset's promotion history.
pub fn history_prefix(identifier: &str) -> String {
    format!("{identifier}/promotions/")
}

/// `<identifier>/promotions/<sequence>.json` (zero-padded, so names sort by sequence).
pub fn history_key(identifier: &str, sequence: u64) -> String {
    format!("{}{sequence:020}.json", history_prefix(identifier))
}

/// `<identifier>/registry-pending/<sequence>.json`: a promotion whose
/// registration failed after retries, for eval's recover to complete.
pub fn registry_pending_key(identifier: &str, sequence: u64) -> String {
    format!("{identifier}/registry-pending/{sequence:020}.json")
}

/// Whether `key` is a [`registry_pending_key`].
pub fn is_registry_pending_key(key: &str) -> bool {
    key.split('/').nth(1) == Some("registry-pending") && key.ends_with(".json")
}

/// Registry registrations that failed after every retry, by step.
pub static REGISTRY_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_promotion_registry_failures_total",
        "Model Registry registrations that failed after retries (the promotion itself stands)",
        &["step"]
    )
    .expect("metric registered once")
});

/// Register the metric families at zero (call once at start).
pub fn init_metrics() {
    REGISTRY_FAILURES.with_label_values(&["register"]);
}

/// Who took a promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Eval's decision on a set.
    Eval,
    /// `flts promote`: an operator chose a run.
    Promote,
    /// `flts rollback`: back to the previous champion.
    Rollback,
}

/// One promotion of a dataset, kept at [`history_key`]: the decision record of
/// an operator promotion, and the history a rollback reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub action: Action,
    pub reason: String,
    /// The operator (`$USER`) or `eval`.
    pub by: String,
    pub decided_at: DateTime<Utc>,
    /// The promotion served before this one, if any.
    pub replaced: Option<Replaced>,
    pub promotion: ModelSelected,
}

/// What a promotion replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    pub run_id: String,
    pub sequence: u64,
}

/// A run that cannot be promoted, or an MLflow failure while checking it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{message}")]
    Refused { code: Code, message: String },
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
}

/// A refusal is its own (permanent) code; an MLflow failure keeps MLflow's.
impl Classified for CheckError {
    fn code(&self) -> Code {
        match self {
            CheckError::Refused { code, .. } => *code,
            CheckError::Mlflow(e) => e.code(),
        }
    }
    fn is_retryable(&self) -> bool {
        match self {
            CheckError::Refused { .. } => false,
            CheckError::Mlflow(e) => e.is_retryable(),
        }
    }
}

fn refused(code: Code, message: String) -> CheckError {
    CheckError::Refused { code, message }
}

/// The SUCCESS payload as run `run_id` records it: the trainer's
/// `success.json` artifact, with the run's own metrics, artifact root and
/// digest tag, checked to belong to (identifier, config_hash, model_type).
/// `what` names the caller's subject in the messages.
pub async fn trusted_success(
    mlflow: &MlflowClient,
    run: &Run,
    (identifier, config_hash, model_type): (&str, &str, ModelType),
    what: &str,
) -> Result<TrainingSuccess, CheckError> {
    let run_id = run.info.run_id.as_str();
    if run.info.status != "FINISHED" {
        return Err(refused(
            Code::RunNotFinished,
            format!("{what}: the event says SUCCESS but the run is {}", run.info.status),
        ));
    }
    let digest = run.tag(run_tags::MODEL_SHA256).filter(|d| promotion::is_sha256_hex(d)).ok_or_else(|| {
        refused(Code::DigestMissing, format!("{what}: the run has no valid {} tag", run_tags::MODEL_SHA256))
    })?;
    let bytes = match mlflow.download_artifact(&run.info.artifact_uri, run_tags::SUCCESS_ARTIFACT).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Err(refused(
                Code::SuccessMissing,
                format!("{what}: the run has no {}", run_tags::SUCCESS_ARTIFACT),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let stored: ModelTraining = contracts::decode(&bytes).map_err(|e| {
        refused(Code::SuccessMissing, format!("{what}: the run's {} is unreadable: {e}", run_tags::SUCCESS_ARTIFACT))
    })?;
    let TrainingStatus::Success(mut s) = stored.status else {
        return Err(refused(
            Code::SuccessMissing,
            format!("{what}: the run's {} is not a SUCCESS", run_tags::SUCCESS_ARTIFACT),
        ));
    };
    if (stored.identifier.as_str(), stored.config_hash.as_str(), stored.model_type, stored.run_id.as_str())
        != (identifier, config_hash, model_type, run_id)
    {
        return Err(refused(
            Code::RunMismatch,
            format!("{what}: the run's {} is for another set or run", run_tags::SUCCESS_ARTIFACT),
        ));
    }
    for (key, slot) in [("test_rmse", &mut s.test_rmse), ("test_mae", &mut s.test_mae), ("test_mse", &mut s.test_mse)] {
        *slot = run.metric(key).filter(|v| v.is_finite()).ok_or_else(|| {
            refused(Code::MetricsMissing, format!("{model_type} run {run_id} has no {key} in MLflow"))
        })?;
    }
    s.artifact_uri = run.info.artifact_uri.clone();
    s.model_sha256 = Some(digest.to_string());
    Ok(*s)
}

/// The schedule of one registry step (four attempts) before it is counted as failed.
const REGISTRY_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(2)).max_attempts(4);

/// The promotion path's clients and places.
#[derive(Clone)]
pub struct Promoter {
    store: ClaimCheckStore,
    bucket: String,
    mlflow: MlflowClient,
    producer: Producer,
    selected_topic: String,
}

impl Promoter {
    pub fn new(
        store: ClaimCheckStore,
        bucket: impl Into<String>,
        mlflow: MlflowClient,
        producer: Producer,
        selected_topic: impl Into<String>,
    ) -> Self {
        Promoter { store, bucket: bucket.into(), mlflow, producer, selected_topic: selected_topic.into() }
    }

    /// The promotion bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Object `key` of the promotion bucket, `None` when absent.
    pub async fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HandlerError> {
        match self.store.get_object(&self.bucket, key).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| HandlerError::permanent(Code::CorruptState, format!("s3://{}/{key}: {e}", self.bucket))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Write `value` as JSON at `key` of the promotion bucket.
    pub async fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HandlerError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| HandlerError::permanent(Code::EncodeFailed, e))?;
        self.store.put(&self.bucket, key, Bytes::from(bytes), "application/json").await.map_err(HandlerError::from)?;
        Ok(())
    }

    /// The pointer of `identifier`: the promotion inference serves.
    pub async fn current(&self, identifier: &str) -> Result<Option<ModelSelected>, HandlerError> {
        self.load(&promotion::current_key(identifier)).await
    }

    /// The next promotion number of `identifier`, persisted before use: above
    /// the counter and above the pointer, so it only ever grows.
    pub async fn next_sequence(&self, identifier: &str) -> Result<u64, HandlerError> {
        let key = promotion::sequence_key(identifier);
        let mut counter = self.load::<Sequence>(&key).await?.unwrap_or_default();
        let pointer = self.current(identifier).await?;
        let next = counter.next(pointer.map(|p| p.sequence).unwrap_or(0));
        self.save(&key, &counter).await?;
        Ok(next)
    }

    /// The recorded promotions of `identifier`, oldest first: the history
    /// records, and the promotions of eval's decision records (current and
    /// archived) that have none (made before the history existed).
    pub async fn history(&self, identifier: &str) -> Result<Vec<Record>, HandlerError> {
        let keys = self.store.list(&self.bucket, &format!("{identifier}/")).await.map_err(HandlerError::from)?;
        let mut records: Vec<Record> = Vec::new();
        let mut decisions = Vec::new();
        for (key, _) in keys {
            match classify(identifier, &key) {
                Some(HistoryKey::Record) => records.extend(self.load::<Record>(&key).await?),
                Some(HistoryKey::Decision) => decisions.extend(self.load::<promotion::Decision>(&key).await?),
                None => {}
            }
        }
        for d in decisions {
            let Some(p) = d.promotion.filter(|p| p.sequence > 0) else { continue };
            if records.iter().any(|r| r.promotion.sequence == p.sequence) {
                continue;
            }
            let (reason, by) = (d.outcome.reason.clone(), "eval".to_string());
            records.push(Record {
                action: Action::Eval,
                reason,
                by,
                decided_at: d.decided_at,
                replaced: None,
                promotion: p,
            });
        }
        records.sort_by_key(|r| r.promotion.sequence);
        Ok(records)
    }

    /// The model-selected topic this promoter publishes to.
    pub fn selected_topic(&self) -> &str {
        &self.selected_topic
    }

    /// Steps 2-6 for promotion `p` (its sequence already taken): idempotent,
    /// so a redelivery or a recover may run it again. Returns the registry
    /// version, `None` when registration failed after retries (logged, counted).
    pub async fn publish(
        &self,
        p: &ModelSelected,
        action: Action,
        reason: &str,
        by: &str,
    ) -> Result<Option<ModelVersion>, HandlerError> {
        let pointer = self.current(&p.identifier).await?;
        let history = history_key(&p.identifier, p.sequence);
        if self.load::<Record>(&history).await?.is_none() {
            let replaced = pointer
                .as_ref()
                .filter(|cur| cur.sequence < p.sequence)
                .map(|cur| Replaced { run_id: cur.run_id.clone(), sequence: cur.sequence });
            let record = Record {
                action,
                reason: reason.to_string(),
                by: by.to_string(),
                decided_at: p.promotion_time,
                replaced,
                promotion: p.clone(),
            };
            self.save(&history, &record).await?;
        }
        // The pointer only moves forward: a publish replayed after a later
        // promotion leaves the later one in place.
        if pointer.is_none_or(|cur| cur.sequence <= p.sequence) {
            self.save(&promotion::current_key(&p.identifier), p).await?;
            self.save(promotion::GLOBAL_CURRENT_KEY, p).await?;
        }
        self.mlflow
            .set_tag(&p.run_id, run_tags::PROMOTED_AT, &p.promotion_time.to_rfc3339())
            .await
            .map_err(HandlerError::from)?;
        self.producer.send_json(&self.selected_topic, Some(&p.identifier), p).await.map_err(HandlerError::from)?;
        Ok(self.ensure_registered(p).await)
    }

    /// Step 6 with retries; a failure is logged, counted and remembered at
    /// [`registry_pending_key`] (cleared by a later success), never returned.
    pub async fn ensure_registered(&self, p: &ModelSelected) -> Option<ModelVersion> {
        let pending = registry_pending_key(&p.identifier, p.sequence);
        let on_retry = |e: &MlflowError, wait: Duration| {
            warn!(identifier = %p.identifier, error = %e, "Model Registry unavailable; retrying in {wait:?}");
        };
        // Nothing cancels this: a registration in flight at shutdown is finished or recorded.
        match backoff::retry(REGISTRY_RETRY, &CancellationToken::new(), || self.register(p), on_retry).await {
            Ok(v) => {
                info!(identifier = %p.identifier, run_id = %p.run_id, sequence = p.sequence, model = %v.name,
                    version = %v.version, "registered; alias {CHAMPION} follows the pointer");
                if let Err(e) = self.store.delete(&self.bucket, &pending).await {
                    warn!(key = %pending, error = %e, "could not clear the registry-pending mark");
                }
                Some(v)
            }
            Err(stopped) => {
                let error = match stopped {
                    Stopped::Permanent(e) | Stopped::Exhausted(e, _) => e.to_string(),
                    Stopped::Cancelled => "cancelled".to_string(),
                };
                REGISTRY_FAILURES.with_label_values(&["register"]).inc();
                warn!(identifier = %p.identifier, run_id = %p.run_id, sequence = p.sequence, %error,
                    "Model Registry registration failed; the promotion stands, eval's next start completes it");
                if let Err(e) = self.save(&pending, p).await {
                    warn!(key = %pending, error = %e, "could not record the pending registration");
                }
                None
            }
        }
    }

    /// Register `p`'s run as a version of `flts-<identifier>` (once per run and
    /// sequence) and move `champion` to it unless a later promotion holds it.
    pub async fn register(&self, p: &ModelSelected) -> Result<ModelVersion, MlflowError> {
        let name = registered_model_name(&p.identifier);
        self.mlflow.create_registered_model(&name, &format!("FLTS champions of dataset {}", p.identifier)).await?;
        let sequence = p.sequence.to_string();
        let existing = self.mlflow.search_model_versions(&name, Some(&p.run_id), 1000).await?;
        let version = match existing.into_iter().find(|v| v.tag(version_tags::SEQUENCE) == Some(sequence.as_str())) {
            Some(v) => v,
            None => {
                let tags = [
                    KeyValue::new(version_tags::IDENTIFIER, &p.identifier),
                    KeyValue::new(version_tags::MODEL_TYPE, p.model_type.as_str()),
                    KeyValue::new(version_tags::CONFIG_HASH, &p.config_hash),
                    KeyValue::new(version_tags::COMPOSITE_SCORE, p.composite_score.to_string()),
                    KeyValue::new(version_tags::SEQUENCE, &sequence),
                ];
                self.mlflow.create_model_version(&name, &model_source(p), &p.run_id, &tags).await?
            }
        };
        let champion = self.mlflow.get_model_version_by_alias(&name, CHAMPION).await?;
        let held_by_later = champion
            .as_ref()
            .and_then(|c| c.tag(version_tags::SEQUENCE)?.parse::<u64>().ok())
            .is_some_and(|s| s > p.sequence);
        if !held_by_later {
            self.mlflow.set_registered_model_alias(&name, CHAMPION, &version.version).await?;
        }
        Ok(version)
    }
}

/// The promotion of run `run_id` of set (identifier, config_hash, model_type)
/// whose SUCCESS is `s` (as [`trusted_success`] returns it), stamped now,
/// with no missing model types.
pub fn selection(
    run_id: &str,
    (identifier, config_hash, model_type): (&str, &str, ModelType),
    s: &TrainingSuccess,
    composite_score: f64,
    sequence: u64,
    decision_object: String,
) -> ModelSelected {
    ModelSelected {
        v: contracts::V1,
        identifier: identifier.to_string(),
        model_uri: format!("runs:/{run_id}/{}", s.model.path),
        model_type,
        run_id: run_id.to_string(),
        config_hash: config_hash.to_string(),
        composite_score,
        test_rmse: s.test_rmse,
        test_mae: s.test_mae,
        test_mse: s.test_mse,
        promotion_time: Utc::now(),
        artifact_uri: s.artifact_uri.clone(),
        model: s.model.clone(),
        model_sha256: s.model_sha256.clone(),
        missing: vec![],
        decision_object,
        sequence,
    }
}

/// Where a promoted model's files are: the folder of its model file under the
/// run's artifact root (e.g. `<artifact_uri>/model`).
pub fn model_source(p: &ModelSelected) -> String {
    let root = p.artifact_uri.trim_end_matches('/');
    match p.model.path.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => format!("{root}/{dir}"),
        _ => root.to_string(),
    }
}

/// What a key under `<identifier>/` holds, for [`Promoter::history`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HistoryKey {
    /// `<identifier>/promotions/<sequence>.json`
    Record,
    /// `<identifier>/<config_hash>/decision.json` or `decision-<n>.json`
    Decision,
}

fn classify(identifier: &str, key: &str) -> Option<HistoryKey> {
    let rest = key.strip_prefix(identifier)?.strip_prefix('/')?;
    let (dir, name) = rest.split_once('/')?;
    if name.contains('/') {
        return None;
    }
    if dir == "promotions" {
        return name.ends_with(".json").then_some(HistoryKey::Record);
    }
    let archived = name
        .strip_prefix("decision-")
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (name == "decision.json" || archived).then_some(HistoryKey::Decision)
}

/// The promotion to roll back to from `current`: the latest recorded one
/// before it that serves another run.
pub fn rollback_target<'a>(history: &'a [Record], current: &ModelSelected) -> Option<&'a Record> {
    history
        .iter()
        .filter(|r| r.promotion.sequence < current.sequence && r.promotion.run_id != current.run_id)
        .max_by_key(|r| r.promotion.sequence)
}

#[cfg(test)]
mod tests;
