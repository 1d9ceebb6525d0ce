//! `flts topics create|list`.

use std::time::{Duration, Instant};

use anyhow::Context;
use kafka_utils::KafkaArgs;
use kafka_utils::admin::{self, Created, TopicArgs};

/// Create the pipeline topics, retrying while the broker is still starting.
pub async fn create(kafka: &KafkaArgs, args: &TopicArgs) -> anyhow::Result<()> {
    let specs = args.pipeline_specs();
    let deadline = Instant::now() + Duration::from_secs(60);
    let results = loop {
        match admin::ensure_topics(kafka, &specs).await {
            Ok(r) => break r,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tracing::warn!(error = %e, "broker not ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("create pipeline topics"),
        }
    };
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
