//! `flts`, the operator CLI of the FLTS pipeline.
//!
//! # Layout
//! - [`Cli`] / [`Command`]: the clap command tree.
//! - [`topics`]: `flts topics create|list` (bootstrap the pipeline's topics and
//!   their DLQs, idempotently; the same code the docker-compose one-shot
//!   service and `scripts/stack up` run).
//! - [`status`]: consumer lag per stage and the current promotions.
//! - [`submit`]: send a dataset to the preprocess stage.
//! - [`dlq`]: list, show and replay dead-lettered records.
//! - [`report`]: generate sample data; wait for a dataset's promotion and inference and report,
//!   with a timeline of the stages.
//! - [`topology`]: the stages, topics, groups and buckets (`contracts::topology`) for people and scripts.
//! - [`promote`]: `flts promote` / `flts rollback`, through eval's promotion path (crate `promotion`).
//! - [`read`]: read a topic to its current end (shared by `dlq` and `report`).

use claim_check::{ClaimCheckStore, S3Args};
use clap::{Parser, Subcommand};
use kafka_utils::KafkaArgs;
use kafka_utils::admin::TopicArgs;

pub mod dlq;
pub mod promote;
pub mod read;
pub mod report;
pub mod status;
pub mod submit;
pub mod topics;
pub mod topology;

/// Operate an FLTS pipeline: topics, status, submissions, DLQ replay.
#[derive(Debug, Parser)]
#[command(name = "flts", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pipeline topics and their DLQs.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Lag of every stage's consumer group and the current promotion per dataset.
    Status {
        /// Consumer groups to show (default: every stage's group, and the groups
        /// on the broker named after one, such as per-replica groups).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Topics to show the lag on (default: each group's own topics and any
        /// pipeline topic it committed on).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Bucket of the promotion history.
        #[arg(long, env = "PROMOTION_BUCKET", default_value = "model-promotion")]
        promotion_bucket: String,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Submit a dataset (local file or s3:// URI) to the preprocess stage.
    Submit(submit::SubmitArgs),
    /// Write a generated sample dataset (realistic base-station traffic) as CSV.
    Generate(report::GenerateArgs),
    /// Wait for a dataset's promotion and batch inference, then print what happened.
    Report(report::ReportArgs),
    /// Serve a chosen FINISHED run of a dataset (a new promotion, same path as eval's).
    Promote(promote::PromoteArgs),
    /// Serve the previous champion of a dataset again (a new promotion of the earlier run).
    Rollback(promote::RollbackArgs),
    /// Inspect and replay dead-lettered records.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The pipeline's shape: stages, topics, groups, buckets (for people and scripts).
    Topology {
        #[arg(value_enum, default_value = "table")]
        view: topology::View,
    },
}

/// `flts topics ...`
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every pipeline topic and its DLQ; existing topics are left alone.
    Create(TopicArgs),
    /// List the topics on the broker with their partition counts.
    List,
}

/// `flts dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a DLQ's records with their error summary.
    List(dlq::Filter),
    /// Show one record's envelope and original payload.
    Show {
        /// DLQ topic.
        #[arg(long)]
        topic: String,
        /// Partition of the record.
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// Offset of the record.
        #[arg(long)]
        offset: i64,
    },
    /// Send records back to their original topic (dry run unless --execute).
    Replay(dlq::ReplayArgs),
}

/// Run one CLI invocation.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let kafka = &cli.kafka;
    match cli.command {
        Command::Topics(TopicsCommand::Create(args)) => topics::create(kafka, &args).await,
        Command::Topics(TopicsCommand::List) => topics::list(kafka),
        Command::Status { groups, topics, promotion_bucket, s3 } => {
            status::run(kafka, &ClaimCheckStore::new(&s3), &groups, &topics, &promotion_bucket).await
        }
        Command::Submit(args) => submit::run(kafka, &ClaimCheckStore::new(&args.s3), &args).await,
        Command::Generate(args) => report::generate(&args),
        Command::Report(args) => report::report(kafka, &args).await,
        Command::Promote(args) => promote::promote(kafka, &args).await,
        Command::Rollback(args) => promote::rollback(kafka, &args).await,
        Command::Dlq(DlqCommand::List(filter)) => dlq::list(kafka, &filter),
        Command::Dlq(DlqCommand::Show { topic, partition, offset }) => dlq::show(kafka, &topic, partition, offset),
        Command::Dlq(DlqCommand::Replay(args)) => dlq::replay(kafka, &args).await,
        Command::Topology { view } => {
            print!("{}", topology::render(view));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
