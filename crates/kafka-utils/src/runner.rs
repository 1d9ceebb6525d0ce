//! One stage runner: a stage's `run` is its settings, its handlers and this.
//!
//! [`StageRunner::start`] binds the admin server first (`/metrics`,
//! `/healthz`, `/readyz`), so a taken port fails the start at once rather than
//! after the consumer exits. The stage then adds its consumers
//! ([`StageRunner::consume`]) and any other long-running task
//! ([`StageRunner::spawn`]: a sweeper, an HTTP API), and [`StageRunner::run`]
//! waits. Every task shares one cancellation token: the shutdown signal, or
//! the first task to end (with an error or not), cancels the others; every
//! task is awaited, the producer is flushed, and the first error is returned,
//! which stops the process with a non-zero exit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use service_kit::admin::{self, AdminArgs, Readiness};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::consumer::{self, ConsumerSettings, Handler};
use crate::{KafkaArgs, Producer};

/// The tasks of one stage process.
pub struct StageRunner {
    kafka: KafkaArgs,
    producer: Producer,
    cancel: CancellationToken,
    tasks: JoinSet<(String, anyhow::Result<()>)>,
}

impl StageRunner {
    /// Bind and start the admin server with `router` (usually
    /// `admin::router(ready)`); `producer` is the stage's own, also used for
    /// dead letters.
    pub async fn start(
        kafka: &KafkaArgs,
        producer: Producer,
        admin_args: &AdminArgs,
        router: axum::Router,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let listener = admin::bind(admin_args.metrics_addr).await?;
        let mut runner = StageRunner { kafka: kafka.clone(), producer, cancel: cancel.clone(), tasks: JoinSet::new() };
        runner.spawn("admin server", admin::serve_on(listener, router, cancel));
        Ok(runner)
    }

    /// [`StageRunner::start`] with the plain admin routes, marked ready.
    pub async fn start_ready(
        kafka: &KafkaArgs,
        producer: Producer,
        admin_args: &AdminArgs,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let ready = Readiness::default();
        ready.set(true);
        Self::start(kafka, producer, admin_args, admin::router(ready), cancel).await
    }

    /// The token every task of this stage stops on.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Run the at-least-once consumer loop of `settings` with `handler`.
    pub fn consume<H: Handler>(&mut self, settings: ConsumerSettings, handler: Arc<H>) {
        let what = format!("consumer of {:?} in group {}", settings.topics, settings.group_id);
        let (kafka, producer, cancel) = (self.kafka.clone(), self.producer.clone(), self.cancel.clone());
        self.spawn(what, async move {
            let summary = consumer::run(&kafka, settings, producer, handler, cancel).await?;
            info!(processed = summary.processed, dead_lettered = summary.dead_lettered, "consumer stopped");
            Ok(())
        });
    }

    /// Run another task of the stage until the shutdown token fires.
    pub fn spawn(&mut self, what: impl Into<String>, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let what = what.into();
        self.tasks.spawn(async move { (what, task.await) });
    }

    /// Wait for every task. The first to end cancels the rest; the first
    /// error (a panic counts) is returned with the task's name.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let mut first: Option<anyhow::Error> = None;
        while let Some(joined) = self.tasks.join_next().await {
            self.cancel.cancel();
            let (what, result) = joined.unwrap_or_else(|e| ("a task".into(), Err(anyhow::anyhow!("panicked: {e}"))));
            if let Err(e) = result {
                error!(task = %what, error = format!("{e:#}"), "stage task failed; stopping");
                first.get_or_insert(e.context(what));
            }
        }
        let flushed = self.producer.flush(Duration::from_secs(10));
        match first {
            Some(e) => Err(e),
            None => flushed.context("flush the producer at shutdown"),
        }
    }
}
