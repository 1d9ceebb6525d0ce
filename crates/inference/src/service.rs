//! The Kafka side: model-selected and model-training events swap the served
//! model, inference-data claim checks run batch inference and publish
//! performance-eval. Offsets are committed by the consumer loop only after a
//! handler returned `Ok`, i.e. after results are stored and the summary is
//! acknowledged.
//!
//! A claim check for an identifier no model is served for yet is parked in S3
//! ([`crate::pending`]) and run by the next model installed for it: the
//! model-event handlers and the start-up load call [`Service::run_parked`].
//! One lock orders "no model, so park" against "model installed, so run what
//! is parked": a request is either run at once or found by the drain.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use claim_check::StoreError;
use contracts::error::Code;
use contracts::promotion::Confirmation;
use contracts::{FailureKind, InferenceData, ModelSelected, ModelTraining};
use kafka_utils::backoff::{self, Stopped, Wait};
use kafka_utils::{Backoff, ConsumerArgs, HandlerError, Producer, Record, dlq};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::batch::{self, BatchArgs};
use crate::metrics;
use crate::pending::{self, Parked};
use model_runtime::loader::{LoadError, Loader};
use model_runtime::model::{Model, ModelSpec};
use model_runtime::registry::Registry;

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
    /// The consumer settings (the DLQ writer's retry schedule).
    consumer: ConsumerArgs,
    /// The process's shutdown.
    cancel: CancellationToken,
    /// Held while parking a request and while running parked ones.
    parking: tokio::sync::Mutex<()>,
}

/// Start-up S3 reads are retried until they work or shutdown comes.
const STARTUP_RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

fn check_ids(identifier: &str, config_hash: &str) -> Result<(), HandlerError> {
    contracts::topics::validate_identifier(identifier)
        .map_err(|e| HandlerError::permanent(Code::InvalidIdentifier, e))?;
    contracts::topics::validate_config_hash(config_hash)
        .map_err(|e| HandlerError::permanent(Code::InvalidConfigHash, e))?;
    Ok(())
}

impl Service {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<Registry>,
        loader: Loader,
        producer: Producer,
        topics: Topics,
        fast_path: bool,
        batch: BatchArgs,
        consumer: ConsumerArgs,
        cancel: CancellationToken,
    ) -> Self {
        let parking = tokio::sync::Mutex::new(());
        Service { registry, loader, producer, topics, fast_path, batch, consumer, cancel, parking }
    }

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
    /// (or only `identifiers`) and run the requests parked for them, before
    /// any event is consumed. Transient S3 failures are retried until
    /// `cancel` (then it returns what it loaded); a broken model is logged and
    /// skipped.
    pub async fn load_promotions(&self, identifiers: &[String], cancel: &CancellationToken) -> anyhow::Result<usize> {
        let listed = backoff::retry(
            STARTUP_RETRY,
            cancel,
            || async {
                if identifiers.is_empty() { self.loader.promoted_identifiers().await } else { Ok(identifiers.to_vec()) }
            },
            |e, wait| warn!(error = %e, "cannot list promotions yet; retrying in {wait:?}"),
        )
        .await;
        let ids = match listed {
            Ok(ids) => ids,
            Err(Stopped::Cancelled) => return Ok(0),
            Err(Stopped::Permanent(e) | Stopped::Exhausted(e, _)) => return Err(e.into()),
        };
        let mut loaded = 0;
        for id in ids {
            let current = backoff::retry(
                STARTUP_RETRY,
                cancel,
                || self.load_current(&id),
                |e, wait| warn!(identifier = %id, error = %e, "promotion not loaded yet; retrying in {wait:?}"),
            )
            .await;
            match current {
                Ok(Some(_)) => loaded += 1,
                Ok(None) => info!(identifier = %id, "no promotion recorded"),
                Err(Stopped::Cancelled) => return Ok(loaded),
                Err(Stopped::Permanent(e) | Stopped::Exhausted(e, _)) => {
                    error!(identifier = %id, error = %e, "promoted model cannot be served")
                }
            }
            // Requests parked before this instance stopped run now, before any event.
            let mut schedule = STARTUP_RETRY.start();
            loop {
                match self.run_parked(&id).await {
                    Ok(_) => {}
                    Err(e) if e.disposition == kafka_utils::Disposition::Cancelled => return Ok(loaded),
                    Err(e) if e.disposition == kafka_utils::Disposition::Retryable => {
                        warn!(identifier = %id, error = %e, "parked requests not run yet; retrying");
                        match schedule.wait(cancel).await {
                            Wait::Retry(_) => continue,
                            Wait::Cancelled | Wait::Exhausted => return Ok(loaded),
                        }
                    }
                    Err(e) => error!(identifier = %id, error = %e, "parked requests cannot be run"),
                }
                break;
            }
        }
        Ok(loaded)
    }

    /// Run, then delete, every request parked for `identifier`, on the model
    /// served for it now (nothing when none is). Returns how many ran. A
    /// request that fails for good goes to `DLQ-<inference-data>` as if it had
    /// failed when it arrived; a retryable failure stops the drain and leaves
    /// it (and the rest) parked for the caller to retry.
    pub async fn run_parked(&self, identifier: &str) -> Result<usize, HandlerError> {
        if self.registry.get(Some(identifier)).is_err() {
            return Ok(0);
        }
        let _parking = self.parking.lock().await;
        let bucket = &self.batch.logs_bucket;
        let store = self.loader.store();
        let keys = store.list(bucket, &pending::prefix(identifier)).await?;
        let mut ran = 0;
        for (key, _) in keys.iter().filter(|(k, _)| pending::is_parked_key(k)) {
            let bytes = match store.get_object(bucket, key).await {
                Ok(b) => b,
                Err(StoreError::NotFound { .. }) => continue, // already run (by another replica)
                Err(e) => return Err(e.into()),
            };
            let outcome = match serde_json::from_slice::<Parked>(&bytes) {
                Ok(parked) => {
                    let model =
                        self.registry.get(Some(identifier)).map_err(|e| HandlerError::retryable(Code::NoModel, e))?;
                    info!(identifier, key = %key, version = %model.info.version, offset = parked.offset, "running a parked request");
                    match self.forecast(&parked.request, model).await {
                        Ok(()) => Ok(()),
                        Err(e) if e.disposition == kafka_utils::Disposition::Retryable => return Err(e),
                        Err(e) => Err((parked_record(&parked, identifier), FailureKind::Permanent, e)),
                    }
                }
                Err(e) => {
                    let record = Record {
                        topic: self.topics.inference_data.clone(),
                        partition: -1,
                        offset: -1,
                        key: Some(identifier.as_bytes().to_vec()),
                        payload: bytes.to_vec(),
                        headers: vec![],
                    };
                    Err((record, FailureKind::Decode, HandlerError::decode(format!("s3://{bucket}/{key}: {e}"))))
                }
            };
            if let Err((record, kind, e)) = outcome {
                error!(identifier, key = %key, error = %e, "parked request failed for good; dead-lettering it");
                if !self.dead_letter(&record, kind, &e, 1).await {
                    // Shutdown came first: the request stays parked for the next start.
                    return Err(HandlerError::cancelled());
                }
                metrics::PARKED.with_label_values(&["dead_lettered"]).inc();
            } else {
                metrics::PARKED.with_label_values(&["run"]).inc();
                ran += 1;
            }
            store.delete(bucket, key).await?;
        }
        Ok(ran)
    }

    /// Dead-letter a parked request the way the consumer loop dead-letters a
    /// record ([`kafka_utils::dlq::write`] to `DLQ-<its topic>`, retried until
    /// acknowledged, counted in `flts_kafka_records_dead_lettered_total`).
    /// False when shutdown came first.
    pub(crate) async fn dead_letter(
        &self,
        record: &Record,
        kind: FailureKind,
        e: &HandlerError,
        attempts: u32,
    ) -> bool {
        let env = dlq::envelope(record, kind, e, attempts, "inference", self.producer.max_message_bytes());
        let topic = contracts::topics::dlq_topic(&record.topic);
        match dlq::write(&self.producer, &topic, record, &env, &self.consumer, &self.cancel).await {
            dlq::Written::Cancelled => false,
            dlq::Written::Sent | dlq::Written::Minimal => {
                let label = if kind == FailureKind::Decode { "decode" } else { "permanent" };
                kafka_utils::metrics::DEAD_LETTERED.with_label_values(&[record.topic.as_str(), label]).inc();
                true
            }
            dlq::Written::Dropped => true,
        }
    }

    /// Write `data` to `pending/` (no model is served for it yet).
    async fn park(&self, record: &Record, data: &InferenceData) -> Result<(), HandlerError> {
        let parked = Parked {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            parked_at: Utc::now(),
            request: data.clone(),
        };
        let body = serde_json::to_vec(&parked).map_err(|e| HandlerError::permanent(Code::EncodeFailed, e))?;
        let key = pending::key(data);
        self.loader.store().put(&self.batch.logs_bucket, &key, Bytes::from(body), "application/json").await?;
        metrics::PARKED.with_label_values(&["parked"]).inc();
        info!(identifier = %data.identifier, config_hash = %data.config_hash, key = %key,
            "no model is served for this identifier yet: request parked until one is installed");
        Ok(())
    }

    /// Batch inference with `model`, then the summary to performance-eval.
    async fn forecast(&self, data: &InferenceData, model: Arc<Model>) -> Result<(), HandlerError> {
        let eval = batch::run(self.loader.store(), &self.batch, data, model).await?;
        self.producer.send_json(&self.topics.performance_eval, Some(&eval.identifier), &eval).await?;
        Ok(())
    }

    /// A model-selected record is a notification: what is served is eval's
    /// pointer (`<identifier>/current.json`), and a record the pointer does
    /// not confirm is refused ([`contracts::promotion::confirm`]).
    async fn on_selected(&self, ev: ModelSelected) -> Result<(), HandlerError> {
        check_ids(&ev.identifier, &ev.config_hash)?;
        model_runtime::loader::check_limits(&ModelSpec::from_selected(&ev))?;
        info!(identifier = %ev.identifier, model_type = %ev.model_type, run_id = %ev.run_id, sequence = ev.sequence, "promotion received");
        let pointer = self.loader.current(&ev.identifier).await?;
        match contracts::promotion::confirm(&ev, pointer.as_ref()) {
            Confirmation::Current => {}
            Confirmation::Superseded { record, pointer } => {
                info!(identifier = %ev.identifier, record, pointer, "a later promotion is recorded: serving that one");
            }
            Confirmation::Unconfirmed(why) => {
                metrics::UNCONFIRMED_PROMOTIONS.inc();
                error!(identifier = %ev.identifier, run_id = %ev.run_id, "refusing an unconfirmed promotion: {why}");
                return Err(HandlerError::permanent(Code::UnconfirmedPromotion, why));
            }
        }
        let Some(pointer) = pointer else { return Ok(()) };
        self.offer(&ModelSpec::from_selected(&pointer)).await?;
        self.run_parked(&ev.identifier).await?;
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
        self.offer(&spec).await?;
        // RUN_INFERENCE_ON_TRAIN_SUCCESS: the fresh model serves parked requests too.
        self.run_parked(&ev.identifier).await?;
        Ok(())
    }

    async fn on_inference_data(&self, record: &Record, data: InferenceData) -> Result<(), HandlerError> {
        check_ids(&data.identifier, &data.config_hash)?;
        let served = match self.registry.get(Some(&data.identifier)) {
            Ok(m) => Some(m),
            Err(_) => self.load_current(&data.identifier).await?,
        };
        let model = match served {
            Some(m) => m,
            None => {
                let _parking = self.parking.lock().await;
                // A model installed since then drains `pending/` only after this lock.
                match self.registry.get(Some(&data.identifier)) {
                    Ok(m) => m,
                    Err(_) => return self.park(record, &data).await,
                }
            }
        };
        self.forecast(&data, model).await
    }
}

/// The record a parked request was read from, for its DLQ envelope.
fn parked_record(parked: &Parked, identifier: &str) -> Record {
    Record {
        topic: parked.topic.clone(),
        partition: parked.partition,
        offset: parked.offset,
        key: Some(identifier.as_bytes().to_vec()),
        payload: serde_json::to_vec(&parked.request).unwrap_or_default(),
        headers: vec![],
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
            self.on_inference_data(record, record.decode()?).await
        } else {
            Err(HandlerError::permanent(Code::UnexpectedTopic, format!("inference does not read `{}`", record.topic)))
        }
    }
}
