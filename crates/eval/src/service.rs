//! The eval service: the model-training handler, the timeout sweeper and the
//! promotion steps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use claim_check::ClaimCheckStore;
use contracts::promotion::{self, run_tags};
use contracts::{ModelSelected, ModelTraining, ModelType, TrainingStatus, TrainingSuccess};
use flts_promotion::{Action, CheckError, Promoter};
use kafka_utils::{HandlerError, Producer, Record};
use mlflow_client::{MlflowClient, Run};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OnceCell};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use contracts::error::{Classified as _, Code};

use crate::metrics;
use crate::predictions::{self, Predictions};
use crate::{compose, composed};

/// Where a trainer run keeps its prediction files (original units, see [`crate::predictions`]).
pub const VALIDATION_PREDICTIONS: &str = "predictions/validation_predictions.parquet";
pub const TEST_PREDICTIONS: &str = "predictions/test_predictions.parquet";
use crate::score::{self, Weights};
use crate::state::{self, Decision, SetState, Trigger};

/// Eval's own settings (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model types that must report (SUCCESS or FAILED) before a decision.
    #[arg(long, env = "EXPECTED_MODEL_TYPES", value_delimiter = ',', default_value = contracts::topology::EXPECTED_MODEL_TYPES)]
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
    /// MLflow experiment the trainers log to: a reported run must belong to it.
    /// Eval's own runs (ensembles, naive baselines) go there too.
    #[arg(long = "experiment", env = "MLFLOW_EXPERIMENT", default_value = "flts")]
    pub experiment: String,
    /// Bucket of the processed data: the dataset scaler (`<identifier>/<config_hash>/scaler.json`)
    /// defines the scaled units ensembles are scored in and baselines are served with.
    #[arg(long, env = "PROCESSED_BUCKET", default_value = contracts::topology::buckets::PROCESSED_DATA)]
    pub processed_bucket: String,
}

impl EvalArgs {
    pub fn weights(&self) -> Weights {
        Weights { rmse: self.weight_rmse, mae: self.weight_mae, mse: self.weight_mse }
    }
}

/// The eval stage's state and clients.
pub struct Eval {
    args: EvalArgs,
    store: ClaimCheckStore,
    mlflow: MlflowClient,
    /// The promotion path eval shares with `flts promote` and `flts rollback`.
    promoter: Promoter,
    /// Sets still waiting for reports; the S3 state object is the source of truth.
    pending: Mutex<BTreeMap<(String, String), SetState>>,
    /// Id of the trainers' experiment, looked up once.
    experiment_id: OnceCell<String>,
}

/// A refused event: dead-lettered alone, counted by code.
fn refuse(code: Code, message: String) -> HandlerError {
    metrics::REFUSED.with_label_values(&[code.as_str()]).inc();
    HandlerError::permanent(code, message)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

fn status_name(status: &TrainingStatus) -> &'static str {
    match status {
        TrainingStatus::Running { .. } => "RUNNING",
        TrainingStatus::Success(_) => "SUCCESS",
        TrainingStatus::Failed { .. } => "FAILED",
    }
}

/// Refuse a SUCCESS whose claims differ from what its run records.
fn compare(claimed: &TrainingSuccess, trusted: &TrainingSuccess, what: &str) -> Result<(), HandlerError> {
    for (key, c, t) in [
        ("test_rmse", claimed.test_rmse, trusted.test_rmse),
        ("test_mae", claimed.test_mae, trusted.test_mae),
        ("test_mse", claimed.test_mse, trusted.test_mse),
    ] {
        if !close(c, t) {
            return Err(refuse(Code::MetricsMismatch, format!("{what}: event says {key} = {c}, MLflow has {t}")));
        }
    }
    if claimed.artifact_uri != trusted.artifact_uri {
        return Err(refuse(
            Code::ArtifactMismatch,
            format!(
                "{what}: event says artifact_uri {:?}, the run's is {:?}",
                claimed.artifact_uri, trusted.artifact_uri
            ),
        ));
    }
    if claimed.model != trusted.model || claimed.baselines != trusted.baselines || claimed.protocol != trusted.protocol
    {
        return Err(refuse(
            Code::ModelMismatch,
            format!("{what}: the event's model, baselines or protocol differ from the run's success.json"),
        ));
    }
    if claimed.model_sha256.as_ref().is_some_and(|d| Some(d) != trusted.model_sha256.as_ref()) {
        return Err(refuse(
            Code::DigestMismatch,
            format!("{what}: the event's model_sha256 differs from the run's tag"),
        ));
    }
    Ok(())
}

impl Eval {
    pub fn new(
        args: EvalArgs,
        store: ClaimCheckStore,
        mlflow: MlflowClient,
        producer: Producer,
        selected_topic: String,
    ) -> Self {
        flts_promotion::init_metrics();
        let promoter = Promoter::new(store.clone(), &args.promotion_bucket, mlflow.clone(), producer, selected_topic);
        Eval { args, store, mlflow, promoter, pending: Mutex::new(BTreeMap::new()), experiment_id: OnceCell::new() }
    }

    async fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HandlerError> {
        self.promoter.load(key).await
    }

    async fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HandlerError> {
        self.promoter.save(key, value).await
    }

    /// Handle one verified model-training event.
    pub async fn absorb(&self, ev: ModelTraining) -> Result<(), HandlerError> {
        let (id, hash) = (ev.identifier.clone(), ev.config_hash.clone());
        let mut pending = self.pending.lock().await;
        if let Some(decision) = self.load::<Decision>(&state::decision_key(&id, &hash)).await? {
            pending.remove(&(id.clone(), hash.clone()));
            if !decision.published {
                self.finish(decision.clone()).await?;
            }
            // A decided set is decided again when a SUCCESS it has not seen
            // arrives (a set closed by failures is not closed for good).
            let mut set = self
                .load::<SetState>(&state::state_key(&id, &hash))
                .await?
                .unwrap_or_else(|| SetState::new(&id, &hash).tracked_by(self.promoter.selected_topic()));
            if !set.is_new_success(&ev) {
                info!(identifier = %id, config_hash = %hash, model_type = %ev.model_type, "set already decided; event changes nothing");
                return Ok(());
            }
            set.absorb(&ev);
            self.save(&set.state_key(), &set).await?;
            info!(identifier = %id, config_hash = %hash, model_type = %ev.model_type, run_id = %ev.run_id, "a decided set has a new SUCCESS: deciding again");
            return self.decide(set, Trigger::Update).await;
        }
        let key = (id.clone(), hash.clone());
        let (mut set, known) = match pending.remove(&key) {
            Some(s) => (s, true),
            None => match self.load::<SetState>(&state::state_key(&id, &hash)).await? {
                Some(s) => (s, true),
                None => (SetState::new(&id, &hash).tracked_by(self.promoter.selected_topic()), false),
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

    async fn experiment_id(&self) -> Result<String, HandlerError> {
        self.experiment_id
            .get_or_try_init(|| self.mlflow.get_or_create_experiment(&self.args.experiment))
            .await
            .cloned()
            .map_err(HandlerError::from)
    }

    /// Check `ev` against its MLflow run and return what eval will act on:
    /// the event rebuilt from the run (its metrics, artifact root, digest and
    /// the SUCCESS payload the trainer stored in it), never the event's own
    /// claims. An event whose run does not exist, belongs to another
    /// experiment or set, or disagrees with the run is refused.
    pub async fn verify(&self, ev: &ModelTraining) -> Result<ModelTraining, HandlerError> {
        let what = format!(
            "{} event for {}/{} names run {:?}",
            status_name(&ev.status),
            ev.identifier,
            ev.config_hash,
            ev.run_id
        );
        let run_id_ok =
            !ev.run_id.is_empty() && ev.run_id.len() <= 64 && ev.run_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !run_id_ok {
            return Err(refuse(
                Code::UnverifiableEvent,
                format!("{what}: not an MLflow run id, so it cannot be checked"),
            ));
        }
        let run = match self.mlflow.get_run(&ev.run_id).await {
            Ok(run) => run,
            Err(e) if e.is_not_found() => {
                return Err(refuse(Code::RunNotFound, format!("{what}: no such run in MLflow ({e})")));
            }
            Err(e) => return Err(e.into()),
        };
        let experiment = self.experiment_id().await?;
        if run.info.experiment_id != experiment {
            return Err(refuse(
                Code::RunNotInExperiment,
                format!(
                    "{what}: the run is in experiment {}, the trainers log to {} ({})",
                    run.info.experiment_id, experiment, self.args.experiment
                ),
            ));
        }
        for (tag, claimed) in [
            (run_tags::IDENTIFIER, ev.identifier.as_str()),
            (run_tags::CONFIG_HASH, ev.config_hash.as_str()),
            (run_tags::MODEL_TYPE, ev.model_type.as_str()),
        ] {
            if run.tag(tag) != Some(claimed) {
                return Err(refuse(
                    Code::RunMismatch,
                    format!("{what}: the run's tag {tag} is {:?}, the event says {claimed:?}", run.tag(tag)),
                ));
            }
        }
        match &ev.status {
            TrainingStatus::Running { .. } => Ok(ev.clone()),
            TrainingStatus::Failed { .. } => {
                if run.info.status == "FINISHED" {
                    return Err(refuse(
                        Code::RunMismatch,
                        format!("{what}: the event says FAILED but the run FINISHED"),
                    ));
                }
                Ok(ev.clone())
            }
            TrainingStatus::Success(claimed) => {
                let trusted = self.trusted_success(ev, &run, &what).await?;
                compare(claimed, &trusted, &what)?;
                Ok(ModelTraining { status: TrainingStatus::Success(Box::new(trusted)), ..ev.clone() })
            }
        }
    }

    /// The SUCCESS payload as the run records it: the trainer's `success.json`
    /// artifact, with the run's own metrics, artifact root and digest tag.
    async fn trusted_success(
        &self,
        ev: &ModelTraining,
        run: &Run,
        what: &str,
    ) -> Result<TrainingSuccess, HandlerError> {
        let set = (ev.identifier.as_str(), ev.config_hash.as_str(), ev.model_type);
        if run.info.run_id != ev.run_id {
            return Err(refuse(Code::RunMismatch, format!("{what}: MLflow returned run {}", run.info.run_id)));
        }
        flts_promotion::trusted_success(&self.mlflow, run, set, what).await.map_err(|e| match e {
            CheckError::Refused { code, message } => refuse(code, message),
            CheckError::Mlflow(e) => e.into(),
        })
    }

    /// Score the set, record the decision, then promote.
    async fn decide(&self, set: SetState, trigger: Trigger) -> Result<(), HandlerError> {
        let mut outcome = score::decide(&set.reports, &self.args.weights(), self.args.baseline_gate);
        let missing = set.missing(&self.args.expected_model_types);
        let (plan, composed) = self.compose(&set, &mut outcome, missing.is_empty()).await?;
        let decision_object = state::decision_key(&set.identifier, &set.config_hash);
        let previous = self.load::<Decision>(&decision_object).await?;
        let winner_run = outcome.winner.map(|i| outcome.candidates[i].run_id.clone());
        let unchanged = previous.as_ref().zip(winner_run.as_deref()).and_then(|(d, run)| d.kept_promotion(run));
        let sequence = match (&winner_run, &unchanged) {
            (Some(_), None) => self.promoter.next_sequence(&set.identifier).await?,
            _ => 0,
        };
        let promotion = outcome.winner.and_then(|i| {
            let c = &outcome.candidates[i];
            let s = if c.status == compose::COMPOSED {
                composed.as_ref()?
            } else {
                let TrainingStatus::Success(s) = &set.reports.get(&c.model_type)?.status else { return None };
                s
            };
            let selected = flts_promotion::selection(
                &c.run_id,
                (&set.identifier, &set.config_hash, c.model_type),
                s,
                c.score.unwrap_or_default(),
                sequence,
                decision_object.clone(),
            );
            Some(ModelSelected { missing: missing.clone(), ..selected })
        });
        // A decision taken again that keeps the promoted run keeps its
        // promotion, and publishes it if the previous decision did not get
        // that far (a timeout decision whose publish failed is retried here).
        let (promotion, published) = match unchanged {
            Some((p, published)) => (Some(p), published),
            None => (promotion, false),
        };
        let revision = match &previous {
            Some(prev) => {
                let archived = promotion::archived_decision_key(&set.identifier, &set.config_hash, prev.revision);
                self.save(&archived, prev).await?;
                prev.revision + 1
            }
            None => 0,
        };
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
            published,
            revision,
            ensemble: plan.ensemble,
            fallback: plan.fallback,
            naive_test_nrmse: plan.naive_test_nrmse,
            published_to: Some(self.promoter.selected_topic().to_string()),
        };
        self.save(&decision_object, &decision).await?;
        if published {
            info!(identifier = %decision.identifier, config_hash = %decision.config_hash, "decided again: the promoted model stays");
            return Ok(());
        }
        self.finish(decision).await
    }

    /// Read the prediction files and the dataset scaler of `set`, plan what
    /// to compose ([`compose::plan`]) and build the composed winner's run.
    /// Returns the plan and the composed winner's SUCCESS payload. A composed
    /// model that cannot be built leaves the decision as the rules alone make
    /// it (the reason says why); only a retryable failure is returned.
    async fn compose(
        &self,
        set: &SetState,
        outcome: &mut score::Outcome,
        complete: bool,
    ) -> Result<(compose::Plan, Option<TrainingSuccess>), HandlerError> {
        let scaler = self.dataset_scaler(set).await?;
        let mut files = BTreeMap::new();
        for (m, ev) in &set.reports {
            if let TrainingStatus::Success(s) = &ev.status {
                // Listed first: MLflow answers a download of a missing file with a 500.
                let listed = self.mlflow.list_artifacts(&ev.run_id, "predictions").await?;
                let has = |path: &str| listed.iter().any(|f| f.path == path && !f.is_dir);
                let read = |path: &'static str| {
                    let present = has(path);
                    async move { if present { self.predictions(s, path).await } else { Ok(None) } }
                };
                let validation = read(VALIDATION_PREDICTIONS).await?;
                let test = read(TEST_PREDICTIONS).await?;
                files.insert(*m, compose::Files { validation, test });
            }
        }
        let history = self.training_actuals(set).await?;
        let original = outcome.clone();
        let weights = self.args.weights();
        let inputs = compose::Inputs {
            reports: &set.reports,
            weights: &weights,
            gate: self.args.baseline_gate,
            complete,
            files: &files,
            scales: scaler.as_ref().map(|(_, scales)| scales),
            history: &history,
        };
        let mut plan = compose::plan(&inputs, outcome);
        let Some(build) = plan.build.clone() else { return Ok((plan, None)) };
        let built = match &scaler {
            None => Err(composed::ComposeError::Invalid("the dataset scaler is unavailable".into())),
            Some((bytes, _)) => {
                let experiment = self.experiment_id().await?;
                let set_ref = composed::SetRef {
                    identifier: &set.identifier,
                    config_hash: &set.config_hash,
                    reports: &set.reports,
                };
                composed::build_run(&self.mlflow, &experiment, &set_ref, &build, bytes).await
            }
        };
        match built {
            Ok((run_id, success)) => {
                if let Some(i) = outcome.winner {
                    outcome.candidates[i].run_id = run_id.clone();
                }
                if let (compose::Build::Ensemble { .. }, Some(e)) = (&build, plan.ensemble.as_mut()) {
                    e.run_id = Some(run_id);
                }
                Ok((plan, Some(success)))
            }
            Err(composed::ComposeError::Mlflow(e)) if e.is_retryable() => Err(e.into()),
            Err(e) => {
                warn!(identifier = %set.identifier, config_hash = %set.config_hash, error = %e, "could not build the composed model");
                let what = outcome.winner.map(|i| outcome.candidates[i].model_type.to_string()).unwrap_or_default();
                *outcome = original;
                outcome.reason.push_str(&format!(" ({what} could not be built: {e})"));
                plan.build = None;
                plan.fallback = None;
                Ok((plan, None))
            }
        }
    }

    /// The dataset scaler's bytes and each column's scale; `None` when absent or unreadable.
    async fn dataset_scaler(&self, set: &SetState) -> Result<Option<(Vec<u8>, BTreeMap<String, f64>)>, HandlerError> {
        let key = format!("{}/{}/scaler.json", set.identifier, set.config_hash);
        let bytes = match self.store.get_object(&self.args.processed_bucket, &key).await {
            Ok(b) => b.to_vec(),
            Err(e) if e.is_retryable() => return Err(e.into()),
            // Absent, or not readable with eval's credentials: decide without it.
            Err(e) => {
                warn!(bucket = %self.args.processed_bucket, %key, error = %e, "no dataset scaler: no ensemble or baseline for this set");
                return Ok(None);
            }
        };
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|s| series::Scaler::from_json(s).map_err(|e| e.to_string()));
        match parsed {
            Ok(scaler) => {
                let scales = scaler.columns.iter().map(|c| (c.name.clone(), c.scale)).collect();
                Ok(Some((bytes, scales)))
            }
            Err(e) => {
                warn!(%key, error = %e, "unreadable dataset scaler: no ensemble or baseline for this set");
                Ok(None)
            }
        }
    }

    /// The training part's actuals of the set's targets (processed
    /// `train.parquet`, unscaled), where the naive forecasts look back on
    /// test; empty when absent or unreadable.
    async fn training_actuals(&self, set: &SetState) -> Result<predictions::History, HandlerError> {
        let Some(targets) = set.reports.values().find_map(|ev| match &ev.status {
            TrainingStatus::Success(s) => Some(s.model.targets.clone()),
            _ => None,
        }) else {
            return Ok(Default::default());
        };
        let key = format!("{}/{}/train.parquet", set.identifier, set.config_hash);
        match self.store.get_object(&self.args.processed_bucket, &key).await {
            Ok(bytes) => Ok(predictions::history_of_processed(&bytes, &targets).unwrap_or_else(|e| {
                warn!(%key, error = %e, "unreadable training part: naive NRMSE from the prediction files only");
                Default::default()
            })),
            Err(e) if e.is_retryable() => Err(e.into()),
            Err(e) => {
                info!(%key, error = %e, "no training part: naive NRMSE from the prediction files only");
                Ok(Default::default())
            }
        }
    }

    /// A run's prediction file `path`, read; `None` when it has none or it is unreadable.
    async fn predictions(&self, s: &TrainingSuccess, path: &str) -> Result<Option<Predictions>, HandlerError> {
        let bytes = match self.mlflow.download_artifact(&s.artifact_uri, path).await {
            Ok(b) => b,
            Err(e) => return Err(e.into()),
        };
        match Predictions::read(&bytes, &s.model.targets) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                warn!(artifact_uri = %s.artifact_uri, path, error = %e, "unreadable prediction file");
                Ok(None)
            }
        }
    }

    /// The idempotent tail of a decision: pointers, MLflow tag, publish, mark.
    async fn finish(&self, mut decision: Decision) -> Result<(), HandlerError> {
        let outcome_label = if decision.promotion.is_some() { "promoted" } else { "not_promoted" };
        if let Some(p) = decision.promotion.clone() {
            // History record, pointer (only forward), MLflow tag, model-selected,
            // then the registry: the path `flts promote` takes too.
            self.promoter.publish(&p, Action::Eval, &decision.outcome.reason, "eval").await?;
            match p.model_type {
                ModelType::Baseline => metrics::BASELINE_PROMOTIONS.inc(),
                ModelType::Ensemble => metrics::ENSEMBLE_PROMOTIONS.inc(),
                _ => {}
            }
            info!(identifier = %p.identifier, config_hash = %p.config_hash, model_type = %p.model_type, run_id = %p.run_id,
                sequence = p.sequence, score = p.composite_score, trigger = ?decision.trigger, missing = ?decision.missing, "model promoted");
        } else {
            warn!(identifier = %decision.identifier, config_hash = %decision.config_hash, reason = %decision.outcome.reason, "nothing promoted");
        }
        decision.published = true;
        let key = state::decision_key(&decision.identifier, &decision.config_hash);
        self.save(&key, &decision).await?;
        metrics::DECISIONS.with_label_values(&[outcome_label, decision.trigger.as_str()]).inc();
        Ok(())
    }

    /// Rebuild the pending sets from the bucket and finish half-done decisions.
    pub async fn recover(&self) -> Result<(), HandlerError> {
        let keys = self.store.list(&self.args.promotion_bucket, "").await.map_err(HandlerError::from)?;
        let names: std::collections::BTreeSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let mut pending = self.pending.lock().await;
        // Only this eval's sets and decisions: another eval may share the bucket.
        let topic = self.promoter.selected_topic();
        for key in &names {
            if flts_promotion::is_registry_pending_key(key) {
                // A registration that failed after its promotion is completed here.
                if let Some(p) = self.load::<ModelSelected>(key).await? {
                    self.promoter.ensure_registered(&p).await;
                }
            } else if let Some(prefix) = key.strip_suffix("/decision.json") {
                if let Some(d) = self.load::<Decision>(key).await?.filter(|d| d.is_unfinished_for(topic)) {
                    info!(set = prefix, "finishing a decision interrupted before publishing");
                    self.finish(d).await?;
                }
            } else if let Some(prefix) = key.strip_suffix("/state.json") {
                if names.contains(format!("{prefix}/decision.json").as_str()) {
                    continue;
                }
                if let Some(s) = self.load::<SetState>(key).await?.filter(|s| s.is_tracked_by(topic)) {
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
        contracts::topics::validate_identifier(&ev.identifier).map_err(|e| refuse(Code::InvalidIdentifier, e))?;
        contracts::topics::validate_config_hash(&ev.config_hash).map_err(|e| refuse(Code::InvalidConfigHash, e))?;
        metrics::EVENTS.with_label_values(&[status_name(&ev.status)]).inc();
        // Only what MLflow confirms counts: an event that fails the check is
        // dead-lettered alone and never joins (or closes) its set.
        let trusted = self.verify(&ev).await?;
        self.absorb(trusted).await
    }
}
