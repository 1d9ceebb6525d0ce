//! The Kafka side: model-selected and model-training events swap the served
//! model, inference-data claim checks run batch inference and publish
//! performance-eval. Offsets are committed by the consumer loop only after a
//! handler returned `Ok`, i.e. after results are stored and the summary is
//! acknowledged.

use std::sync::Arc;
use std::time::Duration;

use contracts::{InferenceData, ModelSelected, ModelTraining};
use kafka_utils::{HandlerError, Producer, Record};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::batch::{self, BatchArgs, BatchError};
use crate::loader::{LoadError, Loader};
use crate::model::{Model, ModelSpec};
use crate::registry::Registry;

/// Topic names the service reads and writes.
#[derive(Debug, Clone)]
pub struct Topics {
    pub inference_data: String,
    pub model_training: String,
    pub model_selected: String,
    pub performance_eval: String,
}

impl Default for Topics {
    fn default() -> Self {
        use contracts::topics::*;
        Topics {
            inference_data: INFERENCE_DATA.into(),
            model_training: MODEL_TRAINING.into(),
            model_selected: MODEL_SELECTED.into(),
            performance_eval: PERFORMANCE_EVAL.into(),
        }
    }
}

/// The service's clients and state, shared by both consumers.
pub struct Service {
    pub registry: Arc<Registry>,
    pub loader: Loader,
    pub producer: Producer,
    pub topics: Topics,
    /// Load a fresh SUCCESS model at once (RUN_INFERENCE_ON_TRAIN_SUCCESS).
    pub fast_path: bool,
    pub batch: BatchArgs,
}

fn load_err(e: LoadError) -> HandlerError {
    HandlerError::classify(e.is_retryable(), e.code(), e)
}

fn batch_err(e: BatchError) -> HandlerError {
    HandlerError::classify(e.is_retryable(), e.code(), e)
}

fn check_ids(identifier: &str, config_hash: &str) -> Result<(), HandlerError> {
    for field in [identifier, config_hash] {
        contracts::topics::validate_identifier(field).map_err(|e| HandlerError::permanent("invalid_identifier", e))?;
    }
    Ok(())
}

impl Service {
    /// Load and install `spec` unless the served model takes precedence.
    pub async fn offer(&self, spec: &ModelSpec) -> Result<Option<Arc<Model>>, LoadError> {
        if let Err(skip) = self.registry.admits(spec) {
            info!(identifier = %spec.identifier, version = %spec.version(), source = spec.source.as_str(), reason = %skip.0, "model not installed");
            return Ok(None);
        }
        let model = self.loader.load(spec).await?;
        match self.registry.install(model.clone()) {
            Ok(_) => Ok(Some(model)),
            Err(skip) => {
                info!(identifier = %spec.identifier, version = %spec.version(), reason = %skip.0, "model not installed");
                Ok(None)
            }
        }
    }

    /// Serve the promotion recorded in `<identifier>/current.json`, if any.
    pub async fn load_current(&self, identifier: &str) -> Result<Option<Arc<Model>>, LoadError> {
        match self.loader.current(identifier).await? {
            Some(p) => self.offer(&ModelSpec::from_selected(&p)).await,
            None => Ok(None),
        }
    }

    /// At start-up: serve every promotion recorded in the promotion bucket
    /// (or only `identifiers`), before any event is consumed. Transient S3
    /// failures are retried until `cancel` (then it returns what it loaded);
    /// a broken model is logged and skipped.
    pub async fn load_promotions(&self, identifiers: &[String], cancel: &CancellationToken) -> anyhow::Result<usize> {
        let mut backoff = Duration::from_millis(500);
        let ids = loop {
            let listed = if identifiers.is_empty() {
                self.loader.promoted_identifiers().await
            } else {
                Ok(identifiers.to_vec())
            };
            match listed {
                Ok(ids) => break ids,
                Err(e) if e.is_retryable() => {
                    warn!(error = %e, "cannot list promotions yet; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => return Ok(0),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut loaded = 0;
        for id in ids {
            let mut backoff = Duration::from_millis(500);
            loop {
                match self.load_current(&id).await {
                    Ok(Some(_)) => loaded += 1,
                    Ok(None) => info!(identifier = %id, "no promotion recorded"),
                    Err(e) if e.is_retryable() => {
                        warn!(identifier = %id, error = %e, "promotion not loaded yet; retrying in {backoff:?}");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = cancel.cancelled() => return Ok(loaded),
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                    Err(e) => error!(identifier = %id, error = %e, "promoted model cannot be served"),
                }
                break;
            }
        }
        Ok(loaded)
    }

    async fn on_selected(&self, ev: ModelSelected) -> Result<(), HandlerError> {
        check_ids(&ev.identifier, &ev.config_hash)?;
        info!(identifier = %ev.identifier, model_type = %ev.model_type, run_id = %ev.run_id, "promotion received");
        self.offer(&ModelSpec::from_selected(&ev)).await.map_err(load_err)?;
        Ok(())
    }

    async fn on_training(&self, ev: ModelTraining) -> Result<(), HandlerError> {
        check_ids(&ev.identifier, &ev.config_hash)?;
        let Some(spec) = ModelSpec::from_training(&ev) else {
            debug!(identifier = %ev.identifier, model_type = %ev.model_type, "not a SUCCESS event");
            return Ok(());
        };
        if !self.fast_path {
            debug!(identifier = %ev.identifier, "fast path off: SUCCESS event ignored");
            return Ok(());
        }
        self.offer(&spec).await.map_err(load_err)?;
        Ok(())
    }

    async fn on_inference_data(&self, data: InferenceData) -> Result<(), HandlerError> {
        check_ids(&data.identifier, &data.config_hash)?;
        let model = match self.registry.get(Some(&data.identifier)) {
            Ok(m) => m,
            Err(_) => match self.load_current(&data.identifier).await.map_err(load_err)? {
                Some(m) => m,
                None => {
                    return Err(HandlerError::retryable(
                        "no_model",
                        format!("no model is promoted for `{}` yet", data.identifier),
                    ));
                }
            },
        };
        let eval = batch::run(self.loader.store(), &self.batch, &data, model).await.map_err(batch_err)?;
        self.producer.send_json(&self.topics.performance_eval, Some(&eval.identifier), &eval).await.map_err(|e| {
            if e.is_retryable() {
                HandlerError::retryable("publish_failed", e)
            } else {
                HandlerError::permanent("publish_failed", e)
            }
        })?;
        Ok(())
    }
}

impl kafka_utils::Handler for Service {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let t = &self.topics;
        if record.topic == t.model_selected {
            self.on_selected(record.decode()?).await
        } else if record.topic == t.model_training {
            self.on_training(record.decode()?).await
        } else if record.topic == t.inference_data {
            self.on_inference_data(record.decode()?).await
        } else {
            Err(HandlerError::permanent("unexpected_topic", format!("inference does not read `{}`", record.topic)))
        }
    }
}
