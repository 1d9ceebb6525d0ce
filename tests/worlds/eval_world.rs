//! The eval stage's test world, shared by `tests/eval.rs` and
//! `tests/hostile_promotion.rs`: topics, a dataset, and model-training events
//! backed by real MLflow runs made the way a trainer makes them (tags,
//! metrics, model digest, `success.json`, FINISHED).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use claim_check::ClaimCheckStore;
use contracts::promotion::run_tags;
use contracts::*;
use eval::state::{Decision, SetState};
use flts_tests::*;
use kafka_utils::{ConsumerArgs, Producer};
use mlflow_client::{KeyValue, Metric, MlflowClient, RunStatus};
use rdkafka::message::Message as _;
use tokio_util::sync::CancellationToken;

pub const BUCKET: &str = "model-promotion";
/// The experiment the test "trainers" log to and eval is told to trust.
pub const EXPERIMENT: &str = "flts-tests-eval";

/// A config hash as preprocess makes them (64 hex digits), unique per call.
pub fn hex_hash(seed: &str) -> String {
    claim_check::sha256_hex(unique(seed).as_bytes())
}

/// One test's world: its own topics, dataset identifier and config hash.
pub struct World {
    pub training: String,
    pub selected: String,
    pub identifier: String,
    pub config_hash: String,
    pub experiment: String,
    pub mlflow: MlflowClient,
}

impl World {
    pub async fn new(name: &str) -> Self {
        let mlflow = MlflowClient::new(&stack().mlflow).expect("client");
        let w = World {
            training: unique(&format!("t-{name}-training")),
            selected: unique(&format!("t-{name}-selected")),
            identifier: unique(&format!("site-{name}")),
            config_hash: hex_hash("hash"),
            experiment: mlflow.get_or_create_experiment(EXPERIMENT).await.expect("experiment"),
            mlflow,
        };
        create_topic_with_dlq(&w.training, 1).await;
        create_topic_with_dlq(&w.selected, 1).await;
        w
    }

    /// Another dataset on the same topics.
    pub fn sibling(&self, name: &str) -> World {
        World {
            training: self.training.clone(),
            selected: self.selected.clone(),
            identifier: unique(&format!("site-{name}")),
            config_hash: hex_hash("hash"),
            experiment: self.experiment.clone(),
            mlflow: self.mlflow.clone(),
        }
    }

    pub fn cli(&self, expected: &str, timeout_secs: u64) -> eval::Cli {
        eval::Cli {
            eval: eval::EvalArgs {
                expected_model_types: expected.split(',').map(|m| m.parse().expect("model type")).collect(),
                timeout_secs,
                weight_rmse: 0.5,
                weight_mae: 0.3,
                weight_mse: 0.2,
                baseline_gate: true,
                promotion_bucket: BUCKET.into(),
                experiment: EXPERIMENT.into(),
                processed_bucket: "processed-data".into(),
            },
            group_id: unique("g-eval"),
            model_training_topic: self.training.clone(),
            model_selected_topic: self.selected.clone(),
            kafka: stack().kafka.clone(),
            consumer: ConsumerArgs {
                handler_backoff_ms: 50,
                commit_interval_ms: 200,
                session_timeout_ms: 6_000,
                ..Default::default()
            },
            s3: stack().s3.clone(),
            mlflow: stack().mlflow.clone(),
            admin: service_kit::admin::AdminArgs { metrics_addr: "127.0.0.1:0".parse().expect("addr") },
            once: Default::default(),
        }
    }

    /// A run tagged the way a trainer tags it, in `experiment`.
    pub async fn run(&self, experiment: &str, model_type: ModelType) -> mlflow_client::Run {
        self.mlflow
            .create_run(
                experiment,
                model_type.as_str(),
                &[
                    KeyValue::new(run_tags::IDENTIFIER, &self.identifier),
                    KeyValue::new(run_tags::CONFIG_HASH, &self.config_hash),
                    KeyValue::new(run_tags::MODEL_TYPE, model_type.as_str()),
                ],
            )
            .await
            .expect("run")
    }

    /// A SUCCESS event backed by a real, finished MLflow run that records the
    /// same metrics, the model digest and the event itself as `success.json`.
    pub async fn success(&self, model_type: ModelType, rmse: f64, baseline_rmse: f64) -> ModelTraining {
        self.success_with(model_type, rmse, baseline_rmse, None).await
    }

    /// The dataset scaler (`down`: offset 0, scale [`SCALE`]) where preprocess
    /// puts it: eval scores ensembles in its units and serves baselines with it.
    pub async fn put_dataset_scaler(&self) -> Vec<u8> {
        let bytes = dataset_scaler();
        let key = format!("{}/{}/scaler.json", self.identifier, self.config_hash);
        ClaimCheckStore::new(&stack().s3)
            .put("processed-data", &key, bytes.clone().into(), "application/json")
            .await
            .expect("put dataset scaler");
        bytes
    }

    /// A SUCCESS as an issue-18 trainer reports it: validation scores computed
    /// from its prediction files, which the run holds like a trainer's
    /// (`predictions/{validation,test}_predictions.parquet`, original units).
    /// `val_errors`/`test_errors` are added to the actuals; the validation
    /// baselines have RMSE `val_baseline` (scaled).
    pub async fn success_forecasting(
        &self,
        model_type: ModelType,
        val_errors: &[f64],
        test_errors: &[f64],
        val_baseline: f64,
    ) -> ModelTraining {
        let (val_bytes, val_metrics) = predictions(0, val_errors);
        let (test_bytes, test_metrics) = predictions(val_errors.len() as i64, test_errors);
        let m = |r: f64| Metrics { mse: r * r, rmse: r, mae: r * 0.8 };
        let validation = Validation {
            metrics: val_metrics,
            baselines: Baselines { last_value: m(val_baseline), seasonal_naive: None },
            windows: val_errors.len() as u32,
            candidates: 2,
            choice: [("seed".to_string(), "1".to_string())].into(),
        };
        let files = vec![
            ("predictions/validation_predictions.parquet".to_string(), val_bytes),
            ("predictions/test_predictions.parquet".to_string(), test_bytes),
        ];
        let mut ev = self.success_with(model_type, test_metrics.rmse, 1.0, Some((validation, files))).await;
        if let TrainingStatus::Success(s) = &mut ev.status {
            assert!((s.test_mse - test_metrics.mse).abs() < 1e-9);
        }
        ev
    }

    async fn success_with(
        &self,
        model_type: ModelType,
        rmse: f64,
        baseline_rmse: f64,
        extra: Option<(Validation, Vec<Artifact>)>,
    ) -> ModelTraining {
        let (validation, files) = match extra {
            Some((v, f)) => (Some(v), f),
            None => (None, vec![]),
        };
        let run = self.run(&self.experiment, model_type).await;
        let (mae, mse) = (rmse * 0.8, rmse * rmse);
        let metrics =
            [Metric::now("test_rmse", rmse, 0), Metric::now("test_mae", mae, 0), Metric::now("test_mse", mse, 0)];
        let model_bytes = format!("model of {}", run.info.run_id).into_bytes();
        let digest = claim_check::sha256_hex(&model_bytes);
        let tags = [KeyValue::new(run_tags::MODEL_SHA256, &digest)];
        self.mlflow.log_batch(&run.info.run_id, &metrics, &[], &tags).await.expect("log metrics");
        let m = |r: f64| Metrics { mse: r * r, rmse: r, mae: r * 0.8 };
        let at = |h| Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).single().expect("valid");
        let ev = ModelTraining {
            v: V1,
            identifier: self.identifier.clone(),
            model_type,
            config_hash: self.config_hash.clone(),
            run_id: run.info.run_id.clone(),
            status: TrainingStatus::Success(Box::new(TrainingSuccess {
                test_rmse: rmse,
                test_mae: mae,
                test_mse: mse,
                train_start: at(1),
                train_end: at(2),
                artifact_uri: run.info.artifact_uri.clone(),
                model: ModelArtifact {
                    format: if model_type == ModelType::Prophet { ModelFormat::ProphetJson } else { ModelFormat::Onnx },
                    path: "model/model.bin".into(),
                    scaler_path: "model/scaler.json".into(),
                    input_len: 10,
                    output_len: 1,
                    features: vec!["down".into()],
                    targets: vec!["down".into()],
                },
                model_sha256: Some(digest),
                protocol: EvalProtocol::OneStepAhead,
                baselines: Baselines { last_value: m(baseline_rmse), seasonal_naive: None },
                validation,
            })),
        };
        let uri = &run.info.artifact_uri;
        self.mlflow.upload_artifact(uri, "model/model.bin", model_bytes).await.expect("upload model");
        for (path, bytes) in files.into_iter().chain([("model/scaler.json".to_string(), dataset_scaler())]) {
            self.mlflow.upload_artifact(uri, &path, bytes).await.expect("upload artifact");
        }
        let success = serde_json::to_vec(&ev).expect("json");
        self.mlflow.upload_artifact(uri, run_tags::SUCCESS_ARTIFACT, success).await.expect("upload success.json");
        self.mlflow.update_run(&run.info.run_id, RunStatus::Finished).await.expect("finish run");
        ev
    }

    /// A FAILED event backed by a real MLflow run that failed.
    pub async fn failed(&self, model_type: ModelType) -> ModelTraining {
        let run = self.run(&self.experiment, model_type).await;
        self.mlflow.update_run(&run.info.run_id, RunStatus::Failed).await.expect("fail run");
        ModelTraining {
            v: V1,
            identifier: self.identifier.clone(),
            model_type,
            config_hash: self.config_hash.clone(),
            run_id: run.info.run_id,
            status: TrainingStatus::Failed {
                reason: "loss became NaN at epoch 3".into(),
                error_kind: "nan_loss".into(),
                failed_at: Utc::now(),
            },
        }
    }

    pub async fn send(&self, ev: &ModelTraining) {
        self.send_bytes(&serde_json::to_vec(ev).expect("json")).await;
    }

    pub async fn send_bytes(&self, payload: &[u8]) {
        Producer::new(&stack().kafka, "test")
            .expect("producer")
            .send_bytes(&self.training, Some(self.identifier.as_bytes()), payload, &[])
            .await
            .expect("ack");
    }

    /// The set's decision record, published or not.
    pub async fn decision(&self) -> Option<Decision> {
        let store = ClaimCheckStore::new(&stack().s3);
        let key = eval::state::decision_key(&self.identifier, &self.config_hash);
        let bytes = store.get_object(BUCKET, &key).await.ok()?;
        Some(serde_json::from_slice(&bytes).expect("decision JSON"))
    }

    /// The set's tracking state as eval persisted it.
    pub async fn state(&self) -> Option<SetState> {
        let store = ClaimCheckStore::new(&stack().s3);
        let key = eval::state::state_key(&self.identifier, &self.config_hash);
        let bytes = store.get_object(BUCKET, &key).await.ok()?;
        Some(serde_json::from_slice(&bytes).expect("state JSON"))
    }

    pub async fn wait_decision(&self, timeout: Duration) -> Decision {
        self.wait_decision_where(timeout, |_| true).await
    }

    /// The first published decision that `accept`s, within `timeout`.
    pub async fn wait_decision_where(&self, timeout: Duration, accept: impl Fn(&Decision) -> bool) -> Decision {
        let what = format!("a published decision for {}", self.identifier);
        wait_until(timeout, &what, async || self.decision().await.filter(|d| d.published && accept(d))).await
    }

    pub async fn pointer(&self) -> Option<ModelSelected> {
        let store = ClaimCheckStore::new(&stack().s3);
        let bytes = store.get_object(BUCKET, &promotion::current_key(&self.identifier)).await.ok()?;
        Some(serde_json::from_slice(&bytes).expect("current.json"))
    }

    /// This world's dataset's events on its model-selected topic.
    pub fn selected_events(&self, at_least: usize, wait: Duration) -> Vec<ModelSelected> {
        let mut events = self.selected_topic_events(at_least, wait);
        events.retain(|s| s.identifier == self.identifier);
        events
    }

    /// Every event on this world's model-selected topic, whatever its dataset.
    pub fn selected_topic_events(&self, at_least: usize, wait: Duration) -> Vec<ModelSelected> {
        read_topic(&self.selected, at_least, wait)
            .iter()
            .map(|m| decode(m.payload().unwrap_or_default()).expect("model-selected"))
            .collect()
    }

    /// Dead letters of eval (DLQ of the topic it consumes) about this world's dataset.
    pub fn dead_letters(&self, at_least: usize, wait: Duration) -> Vec<DlqEnvelope> {
        envelopes(&read_topic(&topics::dlq_topic(&self.training), at_least, wait))
    }
}

/// What `probe` returns first within `timeout` (polled every 200 ms); the
/// test fails naming `what` if nothing comes.
pub async fn wait_until<T>(timeout: Duration, what: &str, probe: impl AsyncFn() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Another eval on the same bucket, with a world of its own whose one-GRU set
/// it promotes (`timeout_secs` is its timeout). eval recovers before it
/// consumes, so when this returns its start-up recovery has run.
pub async fn another_eval_promoting_its_own(
    name: &str,
    timeout_secs: u64,
) -> (World, CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let other = World::new(name).await;
    let (cancel, task) = start(other.cli("GRU", timeout_secs));
    other.send(&other.success(ModelType::Gru, 0.3, 1.0).await).await;
    other.wait_decision(Duration::from_secs(60)).await;
    (other, cancel, task)
}

/// A run artifact: its path and bytes.
pub type Artifact = (String, Vec<u8>);

/// The scale of `down` in the test datasets' scaler.
pub const SCALE: f64 = 10.0;

/// The dataset scaler of the test datasets, as JSON.
pub fn dataset_scaler() -> Vec<u8> {
    let scaler = series::Scaler {
        kind: series::ScalerKind::MinMax,
        columns: vec![series::ScalerColumn::new("down".into(), 0.0, SCALE)],
    };
    scaler.to_json().into_bytes()
}

/// Hourly actuals of `down` from hour `start_h` with `errors` added to the
/// forecasts, as a trainer's prediction Parquet, and the scaled metrics.
pub fn predictions(start_h: i64, errors: &[f64]) -> (Vec<u8>, Metrics) {
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("valid").timestamp_millis();
    let n = errors.len() as i64;
    let timestamps: Vec<i64> = (start_h..start_h + n).map(|h| base + h * 3_600_000).collect();
    let actual: Vec<f64> = (start_h..start_h + n).map(|h| 100.0 + 30.0 * (h as f64 / 3.0).sin()).collect();
    let predicted: Vec<f64> = actual.iter().zip(errors).map(|(a, e)| a + e).collect();
    let frame = series::Frame::new(
        timestamps,
        vec![series::Column::new("down_predicted", predicted), series::Column::new("down_actual", actual)],
    )
    .expect("frame");
    let bytes = dataset::write_raw_parquet(&frame, "timestamp").expect("parquet");
    let mse = errors.iter().map(|e| (e / SCALE).powi(2)).sum::<f64>() / n as f64;
    let mae = errors.iter().map(|e| (e / SCALE).abs()).sum::<f64>() / n as f64;
    (bytes, Metrics { mse, rmse: mse.sqrt(), mae })
}

pub fn start(cli: eval::Cli) -> (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    (cancel, tokio::spawn(async move { eval::run(cli, c).await }))
}

/// Cancel an eval started with [`start`] and wait for it to stop cleanly: a
/// stage that does not stop within 60 s of its cancel fails the test (seen
/// once: its consumer kept polling) instead of hanging the suite.
pub async fn stop(cancel: CancellationToken, task: tokio::task::JoinHandle<anyhow::Result<()>>) {
    cancel.cancel();
    match tokio::time::timeout(std::time::Duration::from_secs(60), task).await {
        Ok(joined) => joined.expect("join").expect("eval ran cleanly"),
        Err(_) => panic!("eval did not stop within 60 s of its cancel"),
    }
}

pub fn spawn_eval(w: &World, group: &str) -> StageProcess {
    let mut cmd = StageProcess::command("eval");
    cmd.env("EVAL_GROUP_ID", group)
        .env("MODEL_TRAINING_TOPIC", &w.training)
        .env("MODEL_SELECTED_TOPIC", &w.selected)
        .env("MLFLOW_EXPERIMENT", EXPERIMENT)
        .env("KAFKA_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS.to_string())
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("RUST_LOG", "info");
    StageProcess::spawn_logged(cmd)
}
