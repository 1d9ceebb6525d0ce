//! `flts topics create|list`.

use std::time::Duration;

use anyhow::Context;
use kafka_utils::KafkaArgs;
use kafka_utils::admin::{self, Created, TopicArgs};
use kafka_utils::backoff::{self, Backoff, Stopped};
use tokio_util::sync::CancellationToken;

/// Create the pipeline topics, retrying for a minute while the broker is still starting.
pub async fn create(kafka: &KafkaArgs, args: &TopicArgs) -> anyhow::Result<()> {
    let specs = args.pipeline_specs();
    let schedule = Backoff::new(Duration::from_millis(250), Duration::from_secs(2)).budget(Duration::from_secs(60));
    let results = backoff::retry(
        schedule,
        &CancellationToken::new(),
        || admin::ensure_topics(kafka, &specs),
        |e, wait| tracing::warn!(error = %e, "broker not ready; retrying in {wait:?}"),
    )
    .await
    .map_err(|stopped| match stopped {
        Stopped::Permanent(e) | Stopped::Exhausted(e, _) => anyhow::Error::new(e),
        Stopped::Cancelled => anyhow::anyhow!("cancelled"),
    })
    .context("create pipeline topics")?;
    let created = results.iter().filter(|r| matches!(r, Created::Created(_))).count();
    println!("{created} topics created, {} already existed", results.len() - created);
    Ok(())
}

/// Print every topic with its partition count.
pub fn list(kafka: &KafkaArgs) -> anyhow::Result<()> {
    let topics = admin::list_topics(kafka, Duration::from_secs(10)).context("list topics")?;
    for (name, partitions) in topics {
        println!("{name}\t{partitions}");
    }
    Ok(())
}
