//! `flts status`: consumer lag per stage and the current promotion per dataset.

use std::time::Duration;

use anyhow::Context;
use claim_check::ClaimCheckStore;
use contracts::ModelSelected;
use kafka_utils::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Consumer groups of the pipeline's stages (their defaults).
pub const STAGE_GROUPS: [&str; 6] =
    ["preprocess", "train-gru", "train-lstm", "prophet", "eval-promoter", "batch-forecasting-v2"];

/// One row of the lag table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: i64,
}

/// Committed offset and end offset of every partition `group` has committed on.
pub fn group_lag(kafka: &KafkaArgs, group: &str, topics: &[String]) -> anyhow::Result<Vec<Lag>> {
    let timeout = Duration::from_secs(10);
    let mut cfg = kafka.client_config("flts-cli")?;
    cfg.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().context("create consumer")?;
    let meta = consumer.fetch_metadata(None, timeout).context("fetch metadata")?;
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics().iter().filter(|t| topics.iter().any(|n| n == t.name())) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout).context("fetch committed offsets")?;
    let mut out = Vec::new();
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout).context("fetch watermarks")?;
            out.push(Lag {
                group: group.into(),
                topic: e.topic().into(),
                partition: e.partition(),
                committed: o,
                end: high,
            });
        }
    }
    Ok(out)
}

/// `flts status`
pub async fn run(kafka: &KafkaArgs, store: &ClaimCheckStore, groups: &[String], bucket: &str) -> anyhow::Result<()> {
    let topics: Vec<String> = contracts::topics::all_topics();
    let mut groups: Vec<String> = groups.to_vec();
    if groups.is_empty() {
        groups = STAGE_GROUPS.iter().map(|g| g.to_string()).collect();
    }
    println!("{:<16} {:<22} {:>4} {:>10} {:>10} {:>8}", "GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG");
    for g in &groups {
        let rows = group_lag(kafka, g, &topics).with_context(|| format!("lag of group {g}"))?;
        if rows.is_empty() {
            println!("{g:<16} (no committed offsets)");
        }
        for r in rows {
            println!(
                "{:<16} {:<22} {:>4} {:>10} {:>10} {:>8}",
                r.group,
                r.topic,
                r.partition,
                r.committed,
                r.end,
                (r.end - r.committed).max(0)
            );
        }
    }
    println!("\nCurrent promotions (s3://{bucket}/<identifier>/current.json):");
    let mut found = 0;
    for (key, _) in store.list(bucket, "").await.context("list promotions")? {
        if !key.ends_with("/current.json") {
            continue;
        }
        let bytes = store.get_object(bucket, &key).await.with_context(|| format!("read {key}"))?;
        match serde_json::from_slice::<ModelSelected>(&bytes) {
            Ok(p) => {
                found += 1;
                println!(
                    "  {:<20} {:<8} run {} score {:.6} rmse {:.6} at {}",
                    p.identifier,
                    p.model_type,
                    p.run_id,
                    p.composite_score,
                    p.test_rmse,
                    p.promotion_time.format("%Y-%m-%d %H:%M:%S")
                );
            }
            Err(e) => println!("  {key}: unreadable ({e})"),
        }
    }
    if found == 0 {
        println!("  none yet");
    }
    Ok(())
}
