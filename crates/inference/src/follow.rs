//! Following the model events without a consumer group.
//!
//! Every replica must see every promotion, so model events cannot be shared
//! out by one consumer group; a group per replica (named after the host)
//! left an orphan group behind every recreated container. Instead each
//! replica restores what it serves from eval's pointers in S3 at start-up
//! (`<identifier>/current.json`, [`crate::Service::load_promotions`]) and
//! then *follows* the model topics from where they ended before that
//! restore: partitions are assigned directly, nothing is committed, and no
//! group exists on the broker. Nothing is missed in between: the end offsets
//! are read first, and eval writes a pointer before it publishes the
//! promotion, so a promotion published before the end offsets were read is in
//! the pointer, and one published after is followed.
//!
//! A record is handled like the consumer loop does (retry a retryable
//! failure with backoff up to `HANDLER_MAX_ATTEMPTS`, then, or at once for a
//! permanent one, dead-letter it into `DLQ-<topic>`); since nothing is
//! committed, a restart starts again from the end and the pointers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use contracts::FailureKind;
use kafka_utils::{Backoff, ConsumerArgs, Disposition, Handler as _, KafkaArgs, Record, backoff};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Service;

/// Where following starts: (topic, partition, offset) of every partition.
pub type StartOffsets = Vec<(String, i32, i64)>;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

fn config(kafka: &KafkaArgs) -> anyhow::Result<rdkafka::ClientConfig> {
    let mut cfg = kafka.client_config("inference-follower")?;
    // librdkafka wants a group id for a consumer; with assign() and no commit
    // none is created on the broker.
    cfg.set("group.id", "inference-follower-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    Ok(cfg)
}

/// The end offset of every partition of `topics`, now (blocking).
pub fn end_offsets(kafka: &KafkaArgs, topics: &[String]) -> anyhow::Result<StartOffsets> {
    let consumer: BaseConsumer = config(kafka)?.create().context("create follower consumer")?;
    let mut out = Vec::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic.as_str()), METADATA_TIMEOUT)
            .with_context(|| format!("metadata of {topic}"))?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        if partitions.is_empty() {
            anyhow::bail!("topic {topic} has no partitions (does it exist?)");
        }
        for p in partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, METADATA_TIMEOUT)
                .with_context(|| format!("end offset of {topic}/{p}"))?;
            out.push((topic.clone(), p, high));
        }
    }
    Ok(out)
}

/// [`end_offsets`], retried with backoff while the broker or a topic is not
/// there yet; `None` when `cancel` came first.
pub async fn wait_end_offsets(
    kafka: &KafkaArgs,
    topics: &[String],
    cancel: &CancellationToken,
) -> Option<StartOffsets> {
    let retry = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut schedule = retry.start();
    loop {
        let (k, t) = (kafka.clone(), topics.to_vec());
        let result = tokio::task::spawn_blocking(move || end_offsets(&k, &t))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("end-offset task failed: {e}")));
        let e = match result {
            Ok(start) => return Some(start),
            Err(e) => e,
        };
        // No attempt limit or budget: there is always a next wait.
        let wait = schedule.next_delay().unwrap_or(retry.cap);
        warn!(error = format!("{e:#}"), "cannot read the model topics' end offsets yet; retrying in {wait:?}");
        if !backoff::sleep(wait, cancel).await {
            return None;
        }
    }
}

/// Follow the model topics from `start` until `cancel`.
pub async fn run(
    kafka: KafkaArgs,
    start: StartOffsets,
    service: Arc<Service>,
    args: ConsumerArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = config(&kafka)?.create().context("create follower consumer")?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in &start {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)).context("assign offset")?;
    }
    consumer.assign(&tpl).context("assign model-event partitions")?;
    info!(partitions = start.len(), "following model events (no consumer group, nothing committed)");
    loop {
        let record = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = consumer.recv() => match m {
                Ok(m) => Record {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect())
                        .unwrap_or_default(),
                },
                Err(e) => {
                    warn!(error = %e, "model-event follower: poll failed; continuing");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        handle(&record, &service, &args, &cancel).await;
    }
}

/// One record: retry what may pass later (the consumer's schedule,
/// [`ConsumerArgs::retry_backoff`]), dead-letter the rest through the common
/// path ([`Service::dead_letter`]).
async fn handle(record: &Record, service: &Service, args: &ConsumerArgs, cancel: &CancellationToken) {
    let mut schedule = args.retry_backoff().start();
    loop {
        let err = match service.handle(record).await {
            Ok(()) => return,
            Err(e) => e,
        };
        let kind = match err.disposition {
            Disposition::Cancelled => return,
            Disposition::Retryable => match schedule.next_delay() {
                Some(wait) => {
                    warn!(topic = %record.topic, offset = record.offset, attempt = schedule.failures(), error = %err.message(), "model event failed; retrying in {wait:?}");
                    if backoff::sleep(wait, cancel).await {
                        continue;
                    }
                    return;
                }
                None => FailureKind::RetriesExhausted,
            },
            Disposition::Decode => FailureKind::Decode,
            Disposition::Permanent => FailureKind::Permanent,
        };
        warn!(topic = %record.topic, offset = record.offset, code = %err.code, error = %err.message(), "model event dead-lettered");
        service.dead_letter(record, kind, &err, schedule.failures() + 1).await;
        return;
    }
}
