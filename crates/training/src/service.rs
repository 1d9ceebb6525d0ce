//! The trainer stage: `training-data` claim checks in, an MLflow run and
//! `model-training` events out.
//!
//! Per claim check: look for a finished run of this (model type, identifier,
//! config_hash) in MLflow and re-publish its SUCCESS if there is one;
//! otherwise open a run, publish RUNNING, fetch and window the data, fit on a
//! blocking thread (the consumer stays in its group meanwhile: kafka-utils
//! pauses the partition and keeps polling), score, upload the artifacts, log
//! metrics, close the run and publish SUCCESS. The offset is stored only after
//! that. A failure ends in `DLQ-training-data` and a FAILED event.

use std::io::{IsTerminal as _, Write as _};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::error::Code;
use kafka_utils::backoff::{self, Backoff, Stopped};

use anyhow::Context;
use chrono::Utc;
use claim_check::{ClaimCheckStore, S3Args};
use contracts::{ModelArtifact, ModelTraining, ModelType, TrainingData, TrainingStatus, TrainingSuccess, V1};
use kafka_utils::{ConsumerArgs, ConsumerSettings, Handler, HandlerError, KafkaArgs, Producer, Record, StageRunner};
use mlflow_client::{KeyValue, Metric, MlflowArgs, MlflowClient, MlflowError, RunStatus};
use service_kit::admin::AdminArgs;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::input::InputArgs;
use crate::once::OnceArgs;
use crate::{ModelTrainer, Prepared, Progress, WindowArgs, metrics, report};

/// The schedule of the MLflow calls after a fit (its budget is `TRAINER_RETRY_BUDGET_SECS`).
const MLFLOW_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

/// Settings every trainer binary shares (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct TrainerCli {
    /// Consumer group (default: the binary's name, one group per model type).
    #[arg(long, env = "TRAINER_GROUP_ID")]
    pub group_id: Option<String>,
    /// Topic of training claim checks.
    #[arg(long, env = "TRAINING_DATA_TOPIC", default_value = contracts::topics::TRAINING_DATA)]
    pub training_data_topic: String,
    /// Topic of training lifecycle events.
    #[arg(long, env = "MODEL_TRAINING_TOPIC", default_value = contracts::topics::MODEL_TRAINING)]
    pub model_training_topic: String,
    /// MLflow experiment that holds every FLTS run.
    #[arg(long, env = "MLFLOW_EXPERIMENT", default_value = "flts")]
    pub experiment: String,
    /// Seconds to keep retrying MLflow and S3 after a fit before giving up
    /// (the fitted model is kept in memory meanwhile).
    #[arg(long, env = "TRAINER_RETRY_BUDGET_SECS", default_value_t = 120)]
    pub retry_budget_secs: u64,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub once: OnceArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub mlflow: MlflowArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Run a trainer binary: `--once` or the Kafka service until `cancel` fires.
pub async fn run_service<T: ModelTrainer>(
    trainer: T,
    service: &str,
    cli: TrainerCli,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let trainer = Arc::new(trainer);
    if cli.once.once {
        return crate::once::run(trainer, &cli.once, &cli.window, &cli.input, cancel).await;
    }
    cli.kafka.validate().context("check Kafka settings")?;
    cli.s3.validate().context("check S3 settings")?;
    metrics::init(trainer.model_type().as_str());
    let (s3, mlflow) = (&cli.s3, &cli.mlflow);
    let producer = Producer::new(&cli.kafka, service).context("create producer")?;
    let handler = Arc::new(TrainHandler {
        trainer,
        store: ClaimCheckStore::new(s3),
        mlflow: MlflowClient::new(mlflow).context("create MLflow client")?,
        producer: producer.clone(),
        topic: cli.model_training_topic.clone(),
        experiment: cli.experiment.clone(),
        experiment_id: OnceCell::new(),
        window: cli.window.clone(),
        input: cli.input.clone(),
        retry_budget: Duration::from_secs(cli.retry_budget_secs),
        current_run: Mutex::new(None),
        cancel: cancel.clone(),
    });
    let settings = ConsumerSettings {
        service: service.to_string(),
        group_id: cli.group_id.clone().unwrap_or_else(|| contracts::topology::own(service).group().to_string()),
        topics: vec![cli.training_data_topic.clone()],
        args: cli.consumer.clone(),
    };
    let mut stage = StageRunner::start_ready(&cli.kafka, producer, &cli.admin, cancel).await?;
    stage.consume(settings, handler);
    stage.run().await
}

/// MLflow tags that identify a run of this pipeline.
use contracts::promotion::run_tags::{
    CONFIG_HASH as TAG_CONFIG_HASH, IDENTIFIER as TAG_IDENTIFIER, MODEL_SHA256 as TAG_MODEL_SHA256,
    MODEL_TYPE as TAG_MODEL_TYPE, SUCCESS_ARTIFACT,
};

pub struct TrainHandler<T> {
    trainer: Arc<T>,
    store: ClaimCheckStore,
    mlflow: MlflowClient,
    producer: Producer,
    topic: String,
    experiment: String,
    experiment_id: OnceCell<String>,
    window: WindowArgs,
    input: InputArgs,
    retry_budget: Duration,
    /// Run opened for the record in hand (one record at a time), for the FAILED event.
    current_run: Mutex<Option<String>>,
    cancel: CancellationToken,
}

impl<T: ModelTrainer> Handler for TrainHandler<T> {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        *self.current_run.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let msg: TrainingData = record.decode()?;
        contracts::topics::validate_identifier(&msg.identifier).map_err(HandlerError::decode)?;
        self.input.check_claims(&self.store, &msg)?;
        let model_type = self.trainer.model_type();
        let experiment_id = self
            .experiment_id
            .get_or_try_init(|| self.mlflow.get_or_create_experiment(&self.experiment))
            .await
            .map_err(HandlerError::from)?
            .clone();

        if let Some(success) = self.finished_run(&experiment_id, &msg).await? {
            info!(identifier = %msg.identifier, config_hash = %msg.config_hash, %model_type, run_id = %success.run_id,
                "already trained: re-publishing its SUCCESS");
            metrics::REPUBLISHED.inc();
            return self.publish(&success).await;
        }

        let run = self
            .mlflow
            .create_run(
                &experiment_id,
                &format!(
                    "{}-{}-{}",
                    model_type.as_str().to_lowercase(),
                    msg.identifier,
                    &msg.config_hash[..12.min(msg.config_hash.len())]
                ),
                &[
                    vec![
                        KeyValue::new(TAG_IDENTIFIER, &msg.identifier),
                        KeyValue::new(TAG_CONFIG_HASH, &msg.config_hash),
                        KeyValue::new(TAG_MODEL_TYPE, model_type.as_str()),
                    ],
                    crate::mlmodel::source_tags(model_type),
                ]
                .concat(),
            )
            .await
            .map_err(HandlerError::from)?;
        let run_id = run.info.run_id.clone();
        *self.current_run.lock().unwrap_or_else(|p| p.into_inner()) = Some(run_id.clone());
        let result = self.train_in_run(&msg, &run_id, &run.info.artifact_uri).await;
        if let Err(e) = &result {
            let status = if e.disposition == kafka_utils::Disposition::Cancelled {
                RunStatus::Killed
            } else {
                RunStatus::Failed
            };
            if let Err(err) = self.mlflow.update_run(&run_id, status).await {
                warn!(%run_id, error = %err, "could not mark the MLflow run as {status:?}");
            }
        }
        result
    }

    async fn on_dead_letter(&self, record: &Record, error: &HandlerError) {
        // The envelope is in the DLQ; tell eval this model type will not report
        // SUCCESS for this set, so it does not wait for it until its timeout.
        // A record that did not decode names no set: whatever identifier it
        // claims, it must not close another dataset's set.
        if error.disposition == kafka_utils::Disposition::Decode {
            warn!(code = %error.code, "undecodable record dead-lettered: no FAILED event (it names no set)");
            return;
        }
        let peek: serde_json::Value = serde_json::from_slice(&record.payload).unwrap_or_default();
        let (Some(identifier), Some(config_hash)) = (peek["identifier"].as_str(), peek["config_hash"].as_str()) else {
            warn!("dead-lettered record names no identifier/config_hash: no FAILED event");
            return;
        };
        let run_id = self.current_run.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
        let event = ModelTraining {
            v: V1,
            identifier: identifier.to_string(),
            model_type: self.trainer.model_type(),
            config_hash: config_hash.to_string(),
            run_id,
            status: TrainingStatus::Failed {
                reason: error.message(),
                error_kind: error.code.to_string(),
                failed_at: Utc::now(),
            },
        };
        metrics::RUNS.with_label_values(&["failed"]).inc();
        if let Err(e) = self.publish(&event).await {
            warn!(error = %e.message(), "could not publish the FAILED event");
        }
    }
}

impl<T: ModelTrainer> TrainHandler<T> {
    /// A finished run of this set, rebuilt as its SUCCESS event.
    async fn finished_run(
        &self,
        experiment_id: &str,
        msg: &TrainingData,
    ) -> Result<Option<ModelTraining>, HandlerError> {
        contracts::topics::validate_config_hash(&msg.config_hash).map_err(HandlerError::decode)?;
        let filter = mlflow_client::Filter::new()
            .tag_eq(TAG_IDENTIFIER, &msg.identifier)
            .and_then(|f| f.tag_eq(TAG_CONFIG_HASH, &msg.config_hash))
            .and_then(|f| f.tag_eq(TAG_MODEL_TYPE, self.trainer.model_type().as_str()))
            .and_then(|f| f.attribute_eq("status", "FINISHED"))
            .map_err(HandlerError::from)?;
        let runs = self
            .mlflow
            .search_runs(&[experiment_id.to_string()], &filter.as_str(), &["attributes.start_time DESC"], 1)
            .await
            .map_err(HandlerError::from)?;
        let Some(run) = runs.into_iter().next() else { return Ok(None) };
        let bytes = self
            .mlflow
            .download_artifact(&run.info.artifact_uri, SUCCESS_ARTIFACT)
            .await
            .map_err(HandlerError::from)?;
        let event: ModelTraining = serde_json::from_slice(&bytes)
            .map_err(|e| HandlerError::permanent(Code::BadSuccessArtifact, format!("run {}: {e}", run.info.run_id)))?;
        Ok(Some(event))
    }

    async fn train_in_run(&self, msg: &TrainingData, run_id: &str, artifact_uri: &str) -> Result<(), HandlerError> {
        let model_type = self.trainer.model_type();
        let train_start = Utc::now();
        self.publish(&self.event(msg, run_id, TrainingStatus::Running { train_start })).await?;

        let (train, test, _dataset_scaler) = self.input.fetch(&self.store, msg).await?;
        let data = self.input.prepare(&train, &test, Some(&msg.config_hash), &self.window)?;
        let params = self.trainer.params();
        let mut logged_params: Vec<KeyValue> = params.iter().map(|(k, v)| KeyValue::new(k, v)).collect();
        logged_params.extend([
            KeyValue::new("input_seq_len", data.spec.input_len.to_string()),
            KeyValue::new("output_seq_len", data.spec.output_len.to_string()),
            KeyValue::new("validation_fraction", self.window.validation_fraction.to_string()),
            KeyValue::new("validation_blocks", self.window.validation_blocks.to_string()),
            KeyValue::new("features", data.meta.roles.features.join(",")),
            KeyValue::new("targets", data.meta.roles.targets.join(",")),
            KeyValue::new("train_windows", data.train_windows.n.to_string()),
            KeyValue::new("test_windows", data.test_windows.n.to_string()),
        ]);
        self.retry("log params", || self.mlflow.log_batch(run_id, &[], &logged_params, &[])).await?;

        info!(identifier = %msg.identifier, %model_type, %run_id, train_windows = data.train_windows.n,
            test_windows = data.test_windows.n, "training");
        let started = Instant::now();
        let Fitted { base: data, chosen, scored: trained } =
            fit(self.trainer.clone(), data, self.cancel.clone()).await?;
        let train_end = Utc::now();
        metrics::FIT_SECONDS.with_label_values(&[model_type.as_str()]).observe(started.elapsed().as_secs_f64());

        let eval = report::evaluate(&data, &trained).map_err(|e| HandlerError::permanent(Code::BadPredictions, e))?;
        let card = report::CardInput {
            model_type,
            identifier: &msg.identifier,
            run_id,
            params: &params,
            train_start,
            train_end,
        };
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (format!("model/{}", trained.model_file.0), trained.model_file.1.clone()),
            ("model/scaler.json".into(), chosen.data.meta.scaler.to_json().into_bytes()),
            ("model/model_card.md".into(), chosen.model_card(report::model_card(&card, &data, &trained, &eval), &data)),
            (
                "predictions/validation_predictions.parquet".into(),
                report::validation_parquet(&data, &trained)
                    .map_err(|e| HandlerError::permanent(Code::BadPredictions, e))?,
            ),
            (
                "predictions/test_predictions.csv".into(),
                report::predictions_csv(&data, &trained)
                    .map_err(|e| HandlerError::permanent(Code::BadPredictions, e))?
                    .into_bytes(),
            ),
            (
                "predictions/test_predictions.parquet".into(),
                report::predictions_parquet(&data, &trained)
                    .map_err(|e| HandlerError::permanent(Code::BadPredictions, e))?,
            ),
        ];
        if let Some(png) = report::loss_curve_png(model_type, &trained) {
            push_plot(&mut files, "model/loss_curve.png", png);
        }
        push_plot(&mut files, "model/forecast.png", report::forecast_png(model_type, &data, &trained));
        files.extend(trained.extra_files.iter().map(|(name, bytes)| (format!("model/{name}"), bytes.clone())));
        files.extend(crate::mlmodel::model_files(&crate::mlmodel::ModelDescription {
            run_id: Some(run_id),
            model_type,
            data: &chosen.data,
            trained: &chosen.trained,
            created: train_end,
        }));

        let mut epoch_metrics = Vec::new();
        for p in &trained.history {
            epoch_metrics.push(Metric::now("train_loss", p.train_loss, p.step as i64));
            epoch_metrics.push(Metric::now("val_loss", p.val_loss, p.step as i64));
        }
        let final_metrics: Vec<Metric> = report::metric_list(&eval, &data.baselines, &trained)
            .into_iter()
            .chain(chosen.metric_list(&data))
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| Metric::now(k, v, 0))
            .collect();
        epoch_metrics.extend(final_metrics);

        let model_sha256 = claim_check::sha256_hex(&trained.model_file.1);
        let success = self.event(
            msg,
            run_id,
            TrainingStatus::Success(Box::new(success_payload(
                &data,
                &chosen,
                &trained,
                &eval,
                (train_start, train_end),
                artifact_uri,
                &model_sha256,
            ))),
        );
        files.push((SUCCESS_ARTIFACT.into(), serde_json::to_vec_pretty(&success).unwrap_or_default()));
        // The model's digest, tagged on the run: eval promotes it from there and
        // inference refuses a model file that does not match it.
        let digest_tag = [KeyValue::new(TAG_MODEL_SHA256, &model_sha256)];
        self.retry("tag model digest", || self.mlflow.log_batch(run_id, &[], &[], &digest_tag)).await?;

        // The model is fitted: from here on only MLflow and S3 can fail, and
        // they are retried within the budget instead of refitting.
        for (path, bytes) in &files {
            self.retry("upload artifact", || self.mlflow.upload_artifact(artifact_uri, path, bytes.clone())).await?;
        }
        self.retry("log metrics", || self.mlflow.log_batch(run_id, &epoch_metrics, &[], &[])).await?;
        self.retry("close run", || self.mlflow.update_run(run_id, RunStatus::Finished)).await?;
        self.publish(&success).await?;
        metrics::RUNS.with_label_values(&["success"]).inc();
        info!(identifier = %msg.identifier, %model_type, %run_id, test_rmse = eval.scaled.rmse,
            baseline_rmse = data.baselines.last_value.rmse, "trained");
        Ok(())
    }

    fn event(&self, msg: &TrainingData, run_id: &str, status: TrainingStatus) -> ModelTraining {
        ModelTraining {
            v: V1,
            identifier: msg.identifier.clone(),
            model_type: self.trainer.model_type(),
            config_hash: msg.config_hash.clone(),
            run_id: run_id.to_string(),
            status,
        }
    }

    async fn publish(&self, event: &ModelTraining) -> Result<(), HandlerError> {
        send(&self.producer, &self.topic, event).await
    }

    /// Retry a retryable MLflow call on the trainers' schedule within the budget.
    async fn retry<F, Fut, R>(&self, what: &str, call: F) -> Result<R, HandlerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, MlflowError>>,
    {
        let on_retry = |e: &MlflowError, wait: Duration| {
            warn!(error = %e, "{what} failed; retrying in {wait:?}");
            metrics::MLFLOW_RETRIES.inc();
        };
        match backoff::retry(MLFLOW_RETRY.budget(self.retry_budget), &self.cancel, call, on_retry).await {
            Ok(r) => Ok(r),
            Err(Stopped::Cancelled) => Err(HandlerError::cancelled()),
            Err(Stopped::Permanent(e)) => Err(e.into()),
            // Past the budget the fitted model is given up: dead-letter the
            // claim check (it can be replayed) instead of letting the
            // consumer retry the whole handler, which would fit again.
            Err(Stopped::Exhausted(e, _)) => Err(HandlerError::permanent(
                Code::MlflowUnavailable,
                format!("{what}: {e} (still failing after the {}s retry budget)", self.retry_budget.as_secs()),
            )),
        }
    }
}

async fn send<M: contracts::Message>(producer: &Producer, topic: &str, event: &M) -> Result<(), HandlerError> {
    producer.send_json(topic, Some(event.identifier()), event).await.map(|_| ()).map_err(HandlerError::from)
}

/// The SUCCESS payload of a finished fit (the service's event, and the
/// `event.json` of `--once`).
pub(crate) fn success_payload(
    data: &Prepared,
    chosen: &crate::candidates::Chosen,
    trained: &crate::Trained,
    eval: &series::Evaluation,
    (train_start, train_end): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
    artifact_uri: &str,
    model_sha256: &str,
) -> TrainingSuccess {
    TrainingSuccess {
        test_rmse: eval.scaled.rmse,
        test_mae: eval.scaled.mae,
        test_mse: eval.scaled.mse,
        train_start,
        train_end,
        artifact_uri: artifact_uri.to_string(),
        model: ModelArtifact {
            format: trained.format,
            path: format!("model/{}", trained.model_file.0),
            scaler_path: "model/scaler.json".into(),
            input_len: data.spec.input_len as u32,
            output_len: data.spec.output_len as u32,
            features: data.meta.roles.features.clone(),
            targets: data.meta.roles.targets.clone(),
        },
        model_sha256: Some(model_sha256.to_string()),
        protocol: trained.protocol,
        baselines: data.baselines.clone(),
        validation: Some(chosen.validation_summary(data)),
    }
}

/// A finished fit: the dataset's view, the chosen candidate, and the chosen
/// fit with its predictions in the dataset's scaled units (what is scored
/// and reported).
pub(crate) struct Fitted {
    pub base: Prepared,
    pub chosen: crate::candidates::Chosen,
    pub scored: crate::Trained,
}

/// Train every candidate (preprocessing choices of the dataset's config times
/// the trainer's seeds) on a blocking thread and keep the best on validation;
/// per-epoch progress goes to the log and metrics, and shutdown interrupts
/// the fits at the next epoch.
pub(crate) async fn fit<T: ModelTrainer>(
    trainer: Arc<T>,
    base: Prepared,
    cancel: CancellationToken,
) -> Result<Fitted, HandlerError> {
    let model_type = trainer.model_type();
    let (method, params) = series::outliers::settings_from_config(&base.meta.config)
        .map_err(|e| HandlerError::permanent(Code::BadData, format!("processed config: {e}")))?;
    let specs = crate::candidates::specs(method, &trainer.seeds());
    let joined = tokio::task::spawn_blocking(move || {
        let display = std::sync::Mutex::new(ProgressDisplay::new(model_type, std::io::stderr().is_terminal()));
        let progress = |label: &str, p: &Progress| {
            display.lock().unwrap_or_else(|e| e.into_inner()).show(label, p);
            metrics::EPOCHS.with_label_values(&[model_type.as_str()]).inc();
            if cancel.is_cancelled() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let result = crate::candidates::fit_candidates(trainer.as_ref(), &base, &specs, &params, &progress);
        display.lock().unwrap_or_else(|e| e.into_inner()).finish();
        result.map(|chosen| {
            let scored = chosen.scored();
            Fitted { base, chosen, scored }
        })
    })
    .await
    .map_err(|e| HandlerError::permanent(Code::TrainerPanic, e.to_string()))?;
    Ok(joined?)
}

/// Per-epoch progress: a bar redrawn in place on a terminal, one log line per
/// epoch otherwise (services, CI, pipes).
pub(crate) struct ProgressDisplay {
    model_type: ModelType,
    terminal: bool,
    drawn: bool,
}

impl ProgressDisplay {
    pub(crate) fn new(model_type: ModelType, terminal: bool) -> ProgressDisplay {
        ProgressDisplay { model_type, terminal, drawn: false }
    }

    fn show(&mut self, candidate: &str, p: &Progress) {
        if !self.terminal {
            info!(model_type = %self.model_type, candidate, step = p.step, total = p.total, train_loss = p.train_loss,
                val_loss = p.val_loss, seconds = format!("{:.2}", p.seconds), "epoch");
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{} ({candidate})", progress_bar(self.model_type, p));
        let _ = err.flush();
        self.drawn = true;
    }

    /// End the bar's line (a fit may stop early, before the last step).
    fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

/// One line of the terminal progress bar, e.g.
/// `GRU [########............] 4/10 train 0.01234 val 0.02345 (1.20 s/epoch)`.
pub(crate) fn progress_bar(model_type: ModelType, p: &Progress) -> String {
    const WIDTH: usize = 20;
    let filled = (p.step * WIDTH).checked_div(p.total).unwrap_or(WIDTH).min(WIDTH);
    format!(
        "{model_type} [{}{}] {}/{} train {:.5} val {:.5} ({:.2} s/epoch)",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        p.step,
        p.total,
        p.train_loss,
        p.val_loss,
        p.seconds
    )
}

fn push_plot(files: &mut Vec<(String, Vec<u8>)>, name: &str, png: Result<Vec<u8>, String>) {
    match png {
        Ok(bytes) => files.push((name.to_string(), bytes)),
        // A plot is for people; a rendering problem must not fail the run.
        Err(e) => warn!(plot = name, error = %e, "could not render plot"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_shows_the_epoch_and_both_losses() {
        let p =
            Progress { step: 4, total: 10, train_loss: 0.01234, val_loss: 0.5, seconds: 1.234, val_predictions: None };
        assert_eq!(
            progress_bar(ModelType::Gru, &p),
            "GRU [########............] 4/10 train 0.01234 val 0.50000 (1.23 s/epoch)"
        );
        let done = Progress { step: 10, ..p.clone() };
        assert!(progress_bar(ModelType::Lstm, &done).starts_with("LSTM [####################] 10/10"));
        let odd = Progress { step: 3, total: 0, ..p };
        assert!(progress_bar(ModelType::Gru, &odd).contains("[####################] 3/0"), "no division by zero");
    }
}
