//! The eval service: the model-training handler, the timeout sweeper and the
//! promotion steps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use claim_check::{ClaimCheckStore, StoreError};
use contracts::{ModelSelected, ModelTraining, ModelType, TrainingStatus, TrainingSuccess, V1};
use kafka_utils::{HandlerError, Producer, Record};
use mlflow_client::{MlflowClient, MlflowError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics;
use crate::score::{self, Weights};
use crate::state::{self, Decision, SetState, Trigger};

/// Eval's own settings (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model types that must report (SUCCESS or FAILED) before a decision.
    #[arg(long, env = "EXPECTED_MODEL_TYPES", value_delimiter = ',', default_value = "GRU,LSTM,PROPHET")]
    pub expected_model_types: Vec<ModelType>,
    /// Seconds after the first report of a set to decide among what arrived.
    #[arg(long, env = "EVAL_TIMEOUT_SECS", default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Weight of test RMSE in the composite score.
    #[arg(long, env = "EVAL_WEIGHT_RMSE", default_value_t = 0.5)]
    pub weight_rmse: f64,
    /// Weight of test MAE in the composite score.
    #[arg(long, env = "EVAL_WEIGHT_MAE", default_value_t = 0.3)]
    pub weight_mae: f64,
    /// Weight of test MSE in the composite score.
    #[arg(long, env = "EVAL_WEIGHT_MSE", default_value_t = 0.2)]
    pub weight_mse: f64,
    /// Require a candidate to beat its trainer's best naive baseline.
    #[arg(long, env = "EVAL_BASELINE_GATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub baseline_gate: bool,
    /// Bucket of the promotion history and the current.json pointers.
    #[arg(long, env = "PROMOTION_BUCKET", default_value = "model-promotion")]
    pub promotion_bucket: String,
}

impl EvalArgs {
    fn weights(&self) -> Weights {
        Weights { rmse: self.weight_rmse, mae: self.weight_mae, mse: self.weight_mse }
    }
}

/// The eval stage's state and clients.
pub struct Eval {
    args: EvalArgs,
    store: ClaimCheckStore,
    mlflow: MlflowClient,
    producer: Producer,
    /// Where promotions are published (model-selected).
    selected_topic: String,
    /// Sets still waiting for reports; the S3 state object is the source of truth.
    pending: Mutex<BTreeMap<(String, String), SetState>>,
}

fn store_err(e: StoreError) -> HandlerError {
    HandlerError::classify(e.is_retryable(), e.code(), e)
}

fn mlflow_err(e: MlflowError) -> HandlerError {
    if e.is_retryable() {
        HandlerError::retryable("mlflow_unavailable", e)
    } else if e.is_not_found() {
        HandlerError::permanent("run_not_found", e)
    } else {
        HandlerError::permanent("mlflow_error", e)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

impl Eval {
    pub fn new(
        args: EvalArgs,
        store: ClaimCheckStore,
        mlflow: MlflowClient,
        producer: Producer,
        selected_topic: String,
    ) -> Self {
        Eval { args, store, mlflow, producer, selected_topic, pending: Mutex::new(BTreeMap::new()) }
    }

    async fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HandlerError> {
        match self.store.get_object(&self.args.promotion_bucket, key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                HandlerError::permanent("corrupt_state", format!("s3://{}/{key}: {e}", self.args.promotion_bucket))
            }),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HandlerError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| HandlerError::permanent("encode", e))?;
        self.store
            .put(&self.args.promotion_bucket, key, Bytes::from(bytes), "application/json")
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Handle one model-training event.
    pub async fn absorb(&self, ev: ModelTraining) -> Result<(), HandlerError> {
        let (id, hash) = (ev.identifier.clone(), ev.config_hash.clone());
        let mut pending = self.pending.lock().await;
        if let Some(decision) = self.load::<Decision>(&state::decision_key(&id, &hash)).await? {
            pending.remove(&(id.clone(), hash.clone()));
            if decision.published {
                info!(identifier = %id, config_hash = %hash, model_type = %ev.model_type, "set already decided; event changes nothing");
                return Ok(());
            }
            return self.finish(decision).await;
        }
        let key = (id.clone(), hash.clone());
        let (mut set, known) = match pending.remove(&key) {
            Some(s) => (s, true),
            None => match self.load::<SetState>(&state::state_key(&id, &hash)).await? {
                Some(s) => (s, true),
                None => (SetState::new(&id, &hash), false),
            },
        };
        // Persist before the offset is committed: a restart must not lose it.
        if set.absorb(&ev) || !known {
            self.save(&set.state_key(), &set).await?;
        }
        if set.missing(&self.args.expected_model_types).is_empty() {
            self.decide(set, Trigger::Complete).await?;
        } else {
            info!(identifier = %id, config_hash = %hash, missing = ?set.missing(&self.args.expected_model_types), "waiting for more models");
            pending.insert(key, set);
        }
        metrics::PENDING.set(pending.len() as i64);
        Ok(())
    }

    /// Check the event's metrics against the run in MLflow.
    async fn verify(&self, ev: &ModelTraining, s: &TrainingSuccess) -> Result<(), HandlerError> {
        let run = self.mlflow.get_run(&ev.run_id).await.map_err(mlflow_err)?;
        for (key, claimed) in [("test_rmse", s.test_rmse), ("test_mae", s.test_mae), ("test_mse", s.test_mse)] {
            match run.metric(key) {
                None => {
                    return Err(HandlerError::permanent(
                        "metrics_missing",
                        format!("{} run {} has no {key} in MLflow", ev.model_type, ev.run_id),
                    ));
                }
                Some(logged) if !close(logged, claimed) => {
                    return Err(HandlerError::permanent(
                        "metrics_mismatch",
                        format!(
                            "{} run {}: event says {key} = {claimed}, MLflow has {logged}",
                            ev.model_type, ev.run_id
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Score the set, record the decision, then promote.
    async fn decide(&self, set: SetState, trigger: Trigger) -> Result<(), HandlerError> {
        for ev in set.reports.values() {
            if let TrainingStatus::Success(s) = &ev.status {
                self.verify(ev, s).await?;
            }
        }
        let outcome = score::decide(&set.reports, &self.args.weights(), self.args.baseline_gate);
        let missing = set.missing(&self.args.expected_model_types);
        let decision_object = state::decision_key(&set.identifier, &set.config_hash);
        let promotion = outcome.winner.and_then(|i| {
            let c = &outcome.candidates[i];
            let ev = set.reports.get(&c.model_type)?;
            let TrainingStatus::Success(s) = &ev.status else { return None };
            Some(ModelSelected {
                v: V1,
                identifier: set.identifier.clone(),
                model_uri: format!("runs:/{}/{}", ev.run_id, s.model.path),
                model_type: c.model_type,
                run_id: ev.run_id.clone(),
                config_hash: set.config_hash.clone(),
                composite_score: c.score.unwrap_or_default(),
                test_rmse: s.test_rmse,
                test_mae: s.test_mae,
                test_mse: s.test_mse,
                promotion_time: Utc::now(),
                artifact_uri: s.artifact_uri.clone(),
                model: s.model.clone(),
                missing: missing.clone(),
                decision_object: decision_object.clone(),
            })
        });
        let decision = Decision {
            identifier: set.identifier.clone(),
            config_hash: set.config_hash.clone(),
            decided_at: Utc::now(),
            trigger,
            expected: self.args.expected_model_types.clone(),
            missing,
            weights: self.args.weights(),
            baseline_gate: self.args.baseline_gate,
            outcome,
            promotion,
            published: false,
        };
        self.save(&decision_object, &decision).await?;
        self.finish(decision).await
    }

    /// The idempotent tail of a decision: pointers, MLflow tag, publish, mark.
    async fn finish(&self, mut decision: Decision) -> Result<(), HandlerError> {
        let outcome_label = if decision.promotion.is_some() { "promoted" } else { "not_promoted" };
        if let Some(p) = decision.promotion.clone() {
            self.save(&state::current_key(&p.identifier), &p).await?;
            self.save(state::GLOBAL_CURRENT_KEY, &p).await?;
            self.mlflow
                .set_tag(&p.run_id, "flts.promoted_at", &p.promotion_time.to_rfc3339())
                .await
                .map_err(mlflow_err)?;
            self.producer.send_json(&self.selected_topic, Some(&p.identifier), &p).await.map_err(|e| {
                if e.is_retryable() {
                    HandlerError::retryable("publish_failed", e)
                } else {
                    HandlerError::permanent("publish_failed", e)
                }
            })?;
            info!(identifier = %p.identifier, config_hash = %p.config_hash, model_type = %p.model_type, run_id = %p.run_id,
                score = p.composite_score, trigger = ?decision.trigger, missing = ?decision.missing, "model promoted");
        } else {
            warn!(identifier = %decision.identifier, config_hash = %decision.config_hash, reason = %decision.outcome.reason, "nothing promoted");
        }
        decision.published = true;
        let key = state::decision_key(&decision.identifier, &decision.config_hash);
        self.save(&key, &decision).await?;
        let trigger = match decision.trigger {
            Trigger::Complete => "complete",
            Trigger::Timeout => "timeout",
        };
        metrics::DECISIONS.with_label_values(&[outcome_label, trigger]).inc();
        Ok(())
    }

    /// Rebuild the pending sets from the bucket and finish half-done decisions.
    pub async fn recover(&self) -> Result<(), HandlerError> {
        let keys = self.store.list(&self.args.promotion_bucket, "").await.map_err(store_err)?;
        let names: std::collections::BTreeSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let mut pending = self.pending.lock().await;
        for key in &names {
            if let Some(prefix) = key.strip_suffix("/decision.json") {
                if let Some(d) = self.load::<Decision>(key).await?.filter(|d| !d.published) {
                    info!(set = prefix, "finishing a decision interrupted before publishing");
                    self.finish(d).await?;
                }
            } else if let Some(prefix) = key.strip_suffix("/state.json") {
                if names.contains(format!("{prefix}/decision.json").as_str()) {
                    continue;
                }
                if let Some(s) = self.load::<SetState>(key).await? {
                    pending.insert((s.identifier.clone(), s.config_hash.clone()), s);
                }
            }
        }
        metrics::PENDING.set(pending.len() as i64);
        info!(pending = pending.len(), "recovered tracking state");
        Ok(())
    }

    /// Decide every set whose timeout ran out, until `cancel`.
    pub async fn sweep(self: Arc<Self>, cancel: CancellationToken) {
        let timeout = chrono::Duration::seconds(self.args.timeout_secs as i64);
        let tick = Duration::from_secs((self.args.timeout_secs / 4).clamp(1, 30));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = cancel.cancelled() => return,
            }
            let mut pending = self.pending.lock().await;
            let due: Vec<(String, String)> =
                pending.iter().filter(|(_, s)| Utc::now() - s.first_seen >= timeout).map(|(k, _)| k.clone()).collect();
            for key in due {
                let Some(set) = pending.remove(&key) else { continue };
                info!(identifier = %key.0, config_hash = %key.1, missing = ?set.missing(&self.args.expected_model_types), "timeout: deciding among what arrived");
                if let Err(e) = self.decide(set.clone(), Trigger::Timeout).await {
                    warn!(identifier = %key.0, error = %e, "timeout decision failed; retrying next tick");
                    pending.insert(key, set);
                }
            }
            metrics::PENDING.set(pending.len() as i64);
        }
    }
}

impl kafka_utils::Handler for Eval {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let ev: ModelTraining = record.decode()?;
        for field in [&ev.identifier, &ev.config_hash] {
            contracts::topics::validate_identifier(field)
                .map_err(|e| HandlerError::permanent("invalid_identifier", e))?;
        }
        let status = match ev.status {
            TrainingStatus::Running { .. } => "RUNNING",
            TrainingStatus::Success(_) => "SUCCESS",
            TrainingStatus::Failed { .. } => "FAILED",
        };
        metrics::EVENTS.with_label_values(&[status]).inc();
        self.absorb(ev).await
    }
}
