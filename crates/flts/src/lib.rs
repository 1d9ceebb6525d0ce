//! `flts`, the operator CLI of the FLTS pipeline.
//!
//! # Layout
//! - [`Cli`] / [`Command`]: the clap command tree.
//! - [`topics`]: `flts topics create|list` (bootstrap the pipeline's topics and
//!   their DLQs, idempotently; the same code the docker-compose one-shot
//!   service and `scripts/stack up` run).

use clap::{Parser, Subcommand};
use kafka_utils::KafkaArgs;
use kafka_utils::admin::TopicArgs;

pub mod topics;

/// Operate an FLTS pipeline: topics, status, DLQ replay.
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
}

/// `flts topics ...`
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every pipeline topic and its DLQ; existing topics are left alone.
    Create(TopicArgs),
    /// List the topics on the broker with their partition counts.
    List,
}

/// Run one CLI invocation.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topics(TopicsCommand::Create(args)) => topics::create(&cli.kafka, &args).await,
        Command::Topics(TopicsCommand::List) => topics::list(&cli.kafka),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
