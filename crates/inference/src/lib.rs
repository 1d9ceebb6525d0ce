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
//!   old one. Promotions always win over the fast path ([`model_runtime::registry::supersedes`]).
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
//! The model runtime (loaders, ONNX and Prophet nets, ensembles, the registry
//! of served models) is the `model_runtime` crate; this crate is the service:
//! - [`batch`]: batch inference over an inference-data test set.
//! - [`follow`]: the model events, followed without a consumer group.
//! - [`pending`]: requests parked until a model for their identifier is served.
//! - [`http`]: the HTTP API and its backpressure.
//! - [`service`]: the Kafka handler and start-up loading.
//! - [`once`]: `--once`, one local file forecast with a local model directory, no broker.
//! - [`metrics`]: every `flts_inference_*` metric (the runtime's included).

use std::sync::Arc;

use anyhow::Context;
use claim_check::{ClaimCheckStore, S3Args};
use kafka_utils::{ConsumerArgs, ConsumerSettings, KafkaArgs, Producer, StageRunner};
use service_kit::admin::{self, AdminArgs, Readiness};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod batch;
pub mod follow;
pub mod http;
pub mod metrics;
pub mod once;
pub mod pending;
pub mod service;

pub use batch::BatchArgs;
pub use http::HttpArgs;
use model_runtime::{ArtifactDestination, Loader, Registry};
pub use service::{Service, Topics};

/// Serve the promoted model over HTTP, batch-forecast test sets, report to performance-eval.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "inference", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub once: once::OnceArgs,
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

/// Run the service until `cancel` fires (or one of its tasks ends: the HTTP
/// API, the admin server, the model-event follower, the inference-data consumer).
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    if cli.once.once {
        let (once, batch) = (cli.once.clone(), cli.batch.clone());
        return tokio::task::spawn_blocking(move || once::run(&once, &batch).map(|_| ()))
            .await
            .context("--once task")?;
    }
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
        cli.consumer.clone(),
        cancel.clone(),
    ));

    // HTTP and admin first: /healthz answers and /readyz says "not ready" while models load.
    let listener = http::bind(cli.http.http_addr).await?;
    let mut stage =
        StageRunner::start(&cli.kafka, producer, &cli.admin, admin::router(ready.clone()), cancel.clone()).await?;
    let api = http::router(http::Api::new(registry.clone(), cli.http.clone()), ready.clone());
    stage.spawn("HTTP API", http::serve(listener, api, cli.http.header_timeout(), cancel.clone()));

    // Model events are followed without a group (see [`follow`]): their end
    // offsets first, then the pointers, then everything after those offsets.
    let mut model_topics = vec![cli.model_selected_topic.clone()];
    if cli.run_inference_on_train_success {
        model_topics.push(cli.model_training_topic.clone());
    }
    let Some(start) = follow::wait_end_offsets(&cli.kafka, &model_topics, &cancel).await else {
        return stage.run().await;
    };
    let loaded = match service.load_promotions(&cli.identifiers, &cancel).await {
        Ok(n) => n,
        Err(e) => {
            cancel.cancel();
            let _ = stage.run().await;
            return Err(e.context("load promoted models"));
        }
    };
    info!(loaded, "promoted models loaded; following model events");
    stage.spawn(
        "model-event follower",
        follow::run(cli.kafka.clone(), start, service.clone(), cli.consumer.clone(), cancel.clone()),
    );
    let data = ConsumerSettings {
        service: "inference".into(),
        group_id: cli.group_id.clone(),
        topics: vec![cli.inference_data_topic.clone()],
        args: cli.consumer.clone(),
    };
    stage.consume(data, service);
    stage.run().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn once_needs_no_broker_settings() {
        use clap::Parser as _;
        let cli =
            super::Cli::try_parse_from(["inference", "--once", "--model", "m", "--input", "in.csv", "--output", "out"])
                .unwrap();
        assert!(cli.once.once);
        assert_eq!(cli.once.model_dir.as_deref(), Some(std::path::Path::new("m")));
        assert!(super::Cli::try_parse_from(["inference", "--model", "m"]).is_err(), "--model needs --once");
    }
}
