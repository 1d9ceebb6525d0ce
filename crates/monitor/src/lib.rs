//! FLTS monitor stage: is the served model still as good as its test said?
//!
//! Consumes `performance-eval` (inference's summary of each batch of served
//! forecasts scored against the actuals that arrived with the data) and keeps,
//! per identifier and served model (MLflow run), a rolling RMSE of those
//! forecasts. It compares it with the model's own test RMSE (the `test_rmse`
//! its trainer logged on the MLflow run, same scaled units); when the ratio
//! stays above `MONITOR_DRIFT_RATIO` for `MONITOR_DRIFT_FOR_SECS`, it
//! publishes a `model-drift` event and raises `flts_monitor_drift_active`.
//! With `MONITOR_RETRAIN_ON_DRIFT` (off by default) it first sends the
//! identifier's latest preprocess request again, forced, so the pipeline
//! retrains on that data. Records it cannot judge go to `DLQ-performance-eval`.
//!
//! Inference publishes no per-request results (its HTTP forecasts have no
//! actuals), so performance-eval is the only input. The rolling windows live
//! in memory: after a restart each model's window fills again from the
//! records that follow.
//!
//! # Layout
//! - [`drift`]: the rolling error and the degradation rule (pure).
//! - [`service`]: the handler, the MLflow lookup, drift events, retraining.
//! - [`retrain`]: the latest preprocess request of an identifier.
//! - [`metrics`]: every `flts_monitor_*` metric.

use std::sync::Arc;

use anyhow::Context;
use kafka_utils::{ConsumerArgs, ConsumerSettings, KafkaArgs, Producer, StageRunner};
use mlflow_client::{MlflowArgs, MlflowClient};
use service_kit::admin::AdminArgs;
use tokio_util::sync::CancellationToken;

pub mod drift;
pub mod metrics;
pub mod retrain;
pub mod service;

pub use service::{Monitor, MonitorArgs, Topics};

/// Watch served forecasts against each model's test error; raise drift events.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "monitor", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub monitor: MonitorArgs,
    /// Consumer group of the monitor.
    #[arg(long, env = "MONITOR_GROUP_ID", default_value = "monitor")]
    pub group_id: String,
    /// Topic of batch inference summaries.
    #[arg(long, env = "PERFORMANCE_EVAL_TOPIC", default_value = contracts::topics::PERFORMANCE_EVAL)]
    pub performance_eval_topic: String,
    /// Topic of drift events.
    #[arg(long, env = "MODEL_DRIFT_TOPIC", default_value = contracts::topics::MODEL_DRIFT)]
    pub model_drift_topic: String,
    /// Topic of preprocess requests (read and written only with MONITOR_RETRAIN_ON_DRIFT).
    #[arg(long, env = "PREPROCESS_REQUESTS_TOPIC", default_value = contracts::topics::PREPROCESS_REQUESTS)]
    pub preprocess_requests_topic: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    #[command(flatten)]
    pub mlflow: MlflowArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Run the stage until `cancel` fires.
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    cli.kafka.validate().context("check Kafka settings")?;
    anyhow::ensure!(
        cli.monitor.drift_ratio.is_finite() && cli.monitor.drift_ratio > 0.0,
        "MONITOR_DRIFT_RATIO must be a positive number"
    );
    metrics::init();
    let producer = Producer::new(&cli.kafka, "monitor").context("create producer")?;
    let mlflow = MlflowClient::new(&cli.mlflow).context("create MLflow client")?;
    let topics = Topics {
        model_drift: cli.model_drift_topic.clone(),
        preprocess_requests: cli.preprocess_requests_topic.clone(),
    };
    let monitor = Arc::new(Monitor::new(cli.monitor.clone(), cli.kafka.clone(), mlflow, producer.clone(), topics));

    let settings = ConsumerSettings {
        service: "monitor".into(),
        group_id: cli.group_id.clone(),
        topics: vec![cli.performance_eval_topic.clone()],
        args: cli.consumer.clone(),
    };
    let mut stage = StageRunner::start_ready(&cli.kafka, producer, &cli.admin, cancel).await?;
    stage.consume(settings, monitor);
    stage.run().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
