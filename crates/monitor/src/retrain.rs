//! Where a retraining request comes from: the latest preprocess request of
//! the identifier still on the preprocess-requests topic (its retention, 7
//! days by default, bounds how far back). The topic is read to its current
//! end without a consumer group commit, so the scan is the same after a
//! restart.

use std::time::{Duration, Instant};

use contracts::PreprocessRequest;
use kafka_utils::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The preprocess request of `identifier` with the latest `requested_at` on `topic`.
pub fn latest_request(kafka: &KafkaArgs, topic: &str, identifier: &str) -> Result<Option<PreprocessRequest>, String> {
    let timeout = Duration::from_secs(10);
    let mut cfg = kafka.client_config("monitor").map_err(|e| e.to_string())?;
    cfg.set("group.id", "monitor-retrain-scan").set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().map_err(|e| format!("create consumer: {e}"))?;
    let meta = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| format!("metadata of {topic}: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in meta.topics().iter().filter(|t| t.name() == topic).flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).map_err(|e| format!("watermarks: {e}"))?;
        if low < high {
            assignment.add_partition_offset(topic, p.id(), Offset::Offset(low)).map_err(|e| e.to_string())?;
            ends.push((p.id(), high));
        }
    }
    if ends.is_empty() {
        return Ok(None);
    }
    consumer.assign(&assignment).map_err(|e| format!("assign {topic}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latest: Option<PreprocessRequest> = None;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("timed out reading {topic}"));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else { continue };
        let msg = msg.map_err(|e| format!("read {topic}: {e}"))?;
        if let Some(i) =
            ends.iter().position(|(p, end)| *p == msg.partition() && msg.offset().saturating_add(1) >= *end)
        {
            ends.swap_remove(i);
        }
        if msg.key() != Some(identifier.as_bytes()) {
            continue;
        }
        // A record that is not a valid request (the preprocess DLQ has it) is skipped.
        if let Ok(r) = contracts::decode::<PreprocessRequest>(msg.payload().unwrap_or_default())
            && r.identifier == identifier
            && latest.as_ref().is_none_or(|l| r.requested_at >= l.requested_at)
        {
            latest = Some(r);
        }
    }
    Ok(latest)
}
