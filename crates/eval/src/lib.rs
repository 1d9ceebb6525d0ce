//! FLTS eval stage (seed 002's "Eval Container", made restart-safe).
//!
//! Consumes `model-training`, tracks per (identifier, config_hash) which of
//! `EXPECTED_MODEL_TYPES` reported (FAILED counts as reported), and when the
//! set is complete, or its timeout runs out, scores the candidates, gates them
//! against their naive baselines, records the decision in the model-promotion
//! bucket, updates `current.json` pointers, tags the winning MLflow run and
//! publishes `model-selected`. Errors go to `DLQ-model-training` (the topic they were consumed from).
//!
//! An event counts only as far as its MLflow run confirms it
//! ([`Eval::verify`]): the run must exist in the trainers' experiment, be
//! tagged with the event's set and model type, and for a SUCCESS be finished;
//! metrics, artifact root, model and digest are taken from the run. Anything
//! else is dead-lettered alone. A decided set is decided again when a new
//! SUCCESS arrives. Every promotion carries the next number of the dataset's
//! sequence (`contracts::promotion`), which inference orders by.
//!
//! # Layout
//! - [`score`]: the pure rules (composite score on validation, baseline gate, tie-break).
//! - [`compose`]: the pure rules of what eval composes (ensemble weights, the
//!   naive-baseline fallback); [`predictions`]: the trainers' prediction files, scored.
//! - [`composed`]: the MLflow runs of ensembles and baselines.
//! - [`state`]: the tracking state kept in S3 (the decision record and the
//!   pointers are the promotion contract, `contracts::promotion`).
//! - [`service`]: the handler, the timeout sweeper, recovery at start-up.
//! - [`once`]: `--once`, a decision from event files and run folders, no broker.
//! - [`metrics`]: every `flts_eval_*` metric.

use std::sync::Arc;

use anyhow::Context;
use claim_check::{ClaimCheckStore, S3Args};
use kafka_utils::{ConsumerArgs, ConsumerSettings, KafkaArgs, Producer, StageRunner};
use mlflow_client::{MlflowArgs, MlflowClient};
use service_kit::admin::AdminArgs;
use tokio_util::sync::CancellationToken;

pub mod compose;
pub mod composed;
pub mod metrics;
pub mod once;
pub mod predictions;
pub mod score;
pub mod service;
pub mod state;

pub use service::{Eval, EvalArgs};

/// Wait for every expected model, score, promote, keep the history.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "eval", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Consumer group of the eval stage.
    #[arg(long, env = "EVAL_GROUP_ID", default_value = contracts::topology::own("eval").group())]
    pub group_id: String,
    /// Topic of training lifecycle events.
    #[arg(long, env = "MODEL_TRAINING_TOPIC", default_value = contracts::topics::MODEL_TRAINING)]
    pub model_training_topic: String,
    /// Topic of promotion events.
    #[arg(long, env = "MODEL_SELECTED_TOPIC", default_value = contracts::topics::MODEL_SELECTED)]
    pub model_selected_topic: String,
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
    #[command(flatten)]
    pub once: once::OnceArgs,
}

/// Run the stage until `cancel` fires.
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    if cli.once.once {
        return once::run(&cli.eval, &cli.once);
    }
    cli.kafka.validate().context("check Kafka settings")?;
    cli.s3.validate().context("check S3 settings")?;
    metrics::init();
    let producer = Producer::new(&cli.kafka, "eval").context("create producer")?;
    let mlflow = MlflowClient::new(&cli.mlflow).context("create MLflow client")?;
    let eval = Arc::new(Eval::new(
        cli.eval.clone(),
        ClaimCheckStore::new(&cli.s3),
        mlflow,
        producer.clone(),
        cli.model_selected_topic.clone(),
    ));
    eval.recover().await.context("recover tracking state from the model-promotion bucket")?;

    let settings = ConsumerSettings {
        service: "eval".into(),
        group_id: cli.group_id.clone(),
        topics: vec![cli.model_training_topic.clone()],
        args: cli.consumer.clone(),
    };
    let mut stage = StageRunner::start_ready(&cli.kafka, producer, &cli.admin, cancel).await?;
    let (sweeper, token) = (eval.clone(), stage.cancel_token());
    stage.spawn("timeout sweeper", async move {
        sweeper.sweep(token).await;
        Ok(())
    });
    stage.consume(settings, eval);
    stage.run().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
