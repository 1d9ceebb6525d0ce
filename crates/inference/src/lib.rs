//! FLTS inference service (seed 002's "Inference Container", built to stay
//! fast and correct under load).
//!
//! At start-up it serves every promotion recorded in the model-promotion
//! bucket (`<identifier>/current.json`), so a restart serves the promoted
//! model before any event arrives. Then two consumers run:
//! - **model events** (`model-selected`, and `model-training` when
//!   `RUN_INFERENCE_ON_TRAIN_SUCCESS` is on), followed by every replica
//!   without a consumer group ([`follow`]), so each sees every promotion and
//!   none leaves a group behind. A model-selected record only says "look":
//!   the promotion served is eval's pointer, ordered by eval's sequence
//!   number, and the model file must have the SHA-256 recorded at training.
//!   The model is loaded (ONNX through tract, Prophet from its saved
//!   parameters) and swapped in atomically; requests in flight finish on the
//!   old one. Promotions always win over the fast path ([`registry::supersedes`]).
//! - **inference-data**, in the shared group: batch inference over the test
//!   set, JSONL + PNG to `inference-logs`, a summary to `performance-eval`;
//!   the offset is committed after both are durable. A test set that arrives
//!   before any model is served for its identifier (preprocess publishes long
//!   before eval promotes) is parked in `inference-logs/pending/` and run by
//!   the next model installed for it, at start-up too ([`pending`]).
//!
//! The HTTP API ([`http`]) forecasts raw windows with the served model behind
//! a bounded work queue (429 when full). Errors of the consumers go to
//! `DLQ-<topic>`.
//!
//! # Layout
//! - [`model`]: a served model, its scaling, raw rows in, original units out.
//! - [`net`]: the forward pass ([`net::Net`]) and its tract ONNX implementation.
//! - [`prophet`]: Prophet models from `prophet.json`.
//! - [`loader`]: artifacts from the MLflow artifact store in S3, `current.json`.
//! - [`registry`]: the served models and the precedence rules.
//! - [`batch`]: batch inference over an inference-data test set.
//! - [`follow`]: the model events, followed without a consumer group.
//! - [`pending`]: requests parked until a model for their identifier is served.
//! - [`http`]: the HTTP API and its backpressure.
//! - [`service`]: the Kafka handler and start-up loading.
//! - [`synthetic`]: hand-built ONNX models with a reference forward pass (tests, benches).
//! - [`metrics`]: every `flts_inference_*` metric.

use std::sync::Arc;

use anyhow::Context;
use claim_check::{ClaimCheckStore, S3Args};
use kafka_utils::{ConsumerArgs, ConsumerSettings, KafkaArgs, Producer};
use service_kit::admin::{self, AdminArgs, Readiness};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod batch;
pub mod follow;
pub mod http;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod net;
pub mod pending;
pub mod prophet;
pub mod registry;
pub mod service;
pub mod synthetic;

pub use batch::BatchArgs;
pub use http::HttpArgs;
pub use loader::{ArtifactDestination, Loader};
pub use registry::Registry;
pub use service::{Service, Topics};

/// Serve the promoted model over HTTP, batch-forecast test sets, report to performance-eval.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "inference", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Load a freshly trained model from a model-training SUCCESS at once (the
    /// fast path); a promotion of the same config always wins over it.
    #[arg(long, env = "RUN_INFERENCE_ON_TRAIN_SUCCESS", default_value_t = false, action = clap::ArgAction::Set)]
    pub run_inference_on_train_success: bool,
    /// Datasets to serve at start-up (comma-separated); empty: every identifier
    /// with a `<identifier>/current.json` in the promotion bucket.
    #[arg(long, env = "INFERENCE_IDENTIFIERS", value_delimiter = ',')]
    pub identifiers: Vec<String>,
    /// Bucket of the promotion pointers (`<identifier>/current.json`, written by eval).
    #[arg(long, env = "PROMOTION_BUCKET", default_value = "model-promotion")]
    pub promotion_bucket: String,
    /// Where MLflow stores `mlflow-artifacts:/` artifacts (its `--artifacts-destination`).
    #[arg(long, env = "MLFLOW_ARTIFACTS_DESTINATION", default_value = "s3://mlflow")]
    pub mlflow_artifacts_destination: ArtifactDestination,
    /// Consumer group for inference-data (shared by every replica: each test set is forecast once).
    #[arg(long, env = "INFERENCE_GROUP_ID", default_value = contracts::topology::own("inference").group_for(contracts::topics::INFERENCE_DATA).expect("inference reads inference-data"))]
    pub group_id: String,
    /// Topic of processed test sets to forecast.
    #[arg(long, env = "INFERENCE_DATA_TOPIC", default_value = contracts::topics::INFERENCE_DATA)]
    pub inference_data_topic: String,
    /// Topic of training lifecycle events (read only with the fast path on).
    #[arg(long, env = "MODEL_TRAINING_TOPIC", default_value = contracts::topics::MODEL_TRAINING)]
    pub model_training_topic: String,
    /// Topic of promotion events.
    #[arg(long, env = "MODEL_SELECTED_TOPIC", default_value = contracts::topics::MODEL_SELECTED)]
    pub model_selected_topic: String,
    /// Topic for batch inference summaries.
    #[arg(long, env = "PERFORMANCE_EVAL_TOPIC", default_value = contracts::topics::PERFORMANCE_EVAL)]
    pub performance_eval_topic: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl Cli {
    fn topics(&self) -> Topics {
        Topics {
            inference_data: self.inference_data_topic.clone(),
            model_training: self.model_training_topic.clone(),
            model_selected: self.model_selected_topic.clone(),
            performance_eval: self.performance_eval_topic.clone(),
        }
    }
}

/// Run the service until `cancel` fires.
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    cli.kafka.validate().context("check Kafka settings")?;
    cli.s3.validate().context("check S3 settings")?;
    metrics::init();
    let producer = Producer::new(&cli.kafka, "inference").context("create producer")?;
    let ready = Readiness::default();
    let registry = Arc::new(Registry::new(ready.clone()));
    let loader = Loader::new(
        ClaimCheckStore::new(&cli.s3),
        cli.mlflow_artifacts_destination.clone(),
        cli.promotion_bucket.clone(),
    );
    let service = Arc::new(Service::new(
        registry.clone(),
        loader,
        producer.clone(),
        cli.topics(),
        cli.run_inference_on_train_success,
        cli.batch.clone(),
    ));

    // HTTP first: /healthz answers and /readyz says "not ready" while models load.
    let listener = http::bind(cli.http.http_addr).await?;
    let api = http::router(http::Api::new(registry.clone(), cli.http.clone()), ready.clone());
    let http_task = tokio::spawn(http::serve(listener, api, cli.http.header_timeout(), cancel.clone()));
    let admin_task = tokio::spawn(admin::serve(cli.admin.metrics_addr, admin::router(ready.clone()), cancel.clone()));

    // Model events are followed without a group (see [`follow`]): their end
    // offsets first, then the pointers, then everything after those offsets.
    let mut model_topics = vec![cli.model_selected_topic.clone()];
    if cli.run_inference_on_train_success {
        model_topics.push(cli.model_training_topic.clone());
    }
    let Some(start) = follow::wait_end_offsets(&cli.kafka, &model_topics, &cancel).await else {
        return Ok(());
    };
    let loaded = service.load_promotions(&cli.identifiers, &cancel).await.context("load promoted models")?;
    info!(loaded, "promoted models loaded; following model events");
    let models =
        follow::run(cli.kafka.clone(), start, service.clone(), producer.clone(), cli.consumer.clone(), cancel.clone());
    let data = ConsumerSettings {
        service: "inference".into(),
        group_id: cli.group_id.clone(),
        topics: vec![cli.inference_data_topic.clone()],
        args: cli.consumer.clone(),
    };
    let (models_result, data_result) = tokio::join!(
        async {
            let result = models.await;
            cancel.cancel();
            result
        },
        run_consumer(&cli.kafka, data, producer.clone(), service.clone(), cancel.clone()),
    );
    cancel.cancel();
    let _ = producer.flush(std::time::Duration::from_secs(10));
    http_task.await.context("HTTP task")?.context("HTTP API")?;
    admin_task.await.context("admin server task")?.context("admin server")?;
    models_result.context("model-event follower")?;
    data_result.context("inference-data consumer")?;
    Ok(())
}

/// One consumer loop; when it stops (error or shutdown) the whole service stops.
async fn run_consumer(
    kafka: &KafkaArgs,
    settings: ConsumerSettings,
    producer: Producer,
    service: Arc<Service>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let result = kafka_utils::consumer::run(kafka, settings, producer, service, cancel.clone()).await;
    cancel.cancel();
    result?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
