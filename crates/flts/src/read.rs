//! Read a topic from the beginning (or a group's committed offsets) up to the
//! end offsets it has now: what `dlq` and `report` look at.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka_utils::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// A consumer in `group` that never commits by itself.
pub fn consumer(kafka: &KafkaArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    let mut cfg = kafka.client_config("flts-cli")?;
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    cfg.create().context("create consumer")
}

/// Every message of `topic` up to the end offsets of now, sorted by partition
/// and offset; from the beginning or, with `from_committed`, from the
/// consumer group's committed offsets.
pub fn read_to_end(consumer: &BaseConsumer, topic: &str, from_committed: bool) -> anyhow::Result<Vec<OwnedMessage>> {
    let timeout = Duration::from_secs(10);
    let meta = consumer.fetch_metadata(Some(topic), timeout).context("fetch metadata")?;
    let Some(t) = meta.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
        bail!("topic {topic} does not exist");
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).context("fetch watermarks")?;
        let mut start = low;
        if from_committed {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, p.id());
            let committed = consumer.committed_offsets(tpl, timeout).context("fetch committed offsets")?;
            if let Some(Offset::Offset(o)) = committed.elements().first().map(|e| e.offset()) {
                start = o.max(low);
            }
        }
        if start < high {
            assignment.add_partition_offset(topic, p.id(), Offset::Offset(start))?;
            ends.push((p.id(), high));
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&assignment).context("assign partitions")?;
    let mut done = vec![false; ends.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.iter().any(|d| !d) {
        if Instant::now() > deadline {
            bail!("timed out reading {topic}");
        }
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else { continue };
        let msg = msg.with_context(|| format!("read {topic}"))?;
        let (partition, offset) = (msg.partition(), msg.offset());
        if let Some(i) = ends.iter().position(|(p, _)| *p == partition) {
            // Offsets come from the broker: checked, like any record metadata.
            if offset.saturating_add(1) >= ends[i].1 {
                done[i] = true;
            }
            if offset >= ends[i].1 {
                continue;
            }
        }
        out.push(msg.detach());
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(out)
}
