//! `flts dlq list|show|replay`: inspect dead-lettered records and send them
//! back once the cause is fixed.
//!
//! Replay reads a DLQ in its own consumer group (`flts-dlq-replay`, one per DLQ
//! topic unless `--group` says otherwise) and commits after every record it
//! re-sent, so an interrupted replay resumes where it stopped and a finished
//! one does not send the same records again. Downstream consumers are
//! idempotent, so even a record replayed twice has its effects once.

use anyhow::{Context, bail};
use contracts::DlqEnvelope;
use kafka_utils::{KafkaArgs, Producer};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::read::{consumer, read_to_end};

/// Which DLQ records a command acts on.
#[derive(Debug, Clone, clap::Args)]
pub struct Filter {
    /// DLQ topic, e.g. `DLQ-training-data`.
    #[arg(long)]
    pub topic: String,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// First DLQ offset to consider (inclusive).
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Last DLQ offset to consider (inclusive).
    #[arg(long)]
    pub until_offset: Option<i64>,
    /// Only records with this (original) key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only records of this dataset identifier.
    #[arg(long)]
    pub identifier: Option<String>,
    /// Only records whose error kind (decode, permanent, retries_exhausted) or code matches.
    #[arg(long)]
    pub kind: Option<String>,
}

/// One DLQ record, decoded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub partition: i32,
    pub offset: i64,
    pub envelope: DlqEnvelope,
}

impl Filter {
    /// Short stable hash of the filter, naming its replay group.
    fn hash(&self) -> String {
        let text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.partition, self.from_offset, self.until_offset, self.key, self.identifier, self.kind
        );
        claim_check::sha256_hex(text.as_bytes())[..12].to_string()
    }

    fn matches(&self, e: &Entry) -> bool {
        let env = &e.envelope;
        let key = kafka_utils::dlq::original_bytes(env).ok().and_then(|(k, _)| k);
        self.partition.is_none_or(|p| p == e.partition)
            && self.from_offset.is_none_or(|o| e.offset >= o)
            && self.until_offset.is_none_or(|o| e.offset <= o)
            && self.key.as_ref().is_none_or(|k| key.as_deref() == Some(k.as_bytes()))
            && self.identifier.as_ref().is_none_or(|id| env.identifier.as_deref() == Some(id))
            && self.kind.as_ref().is_none_or(|k| {
                let kind = serde_json::to_value(env.error.kind).ok();
                kind.as_ref().and_then(|v| v.as_str()) == Some(k) || env.error.code == *k
            })
    }
}

/// The DLQ envelopes of `topic` (see [`read_to_end`]); records that are not
/// envelopes are reported and skipped.
fn read_entries(consumer: &BaseConsumer, topic: &str, from_committed: bool) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for msg in read_to_end(consumer, topic, from_committed)? {
        let (partition, offset) = (msg.partition(), msg.offset());
        match msg.payload().map(contracts::decode::<DlqEnvelope>) {
            Some(Ok(envelope)) => out.push(Entry { partition, offset, envelope }),
            Some(Err(e)) => eprintln!("{topic}/{partition}@{offset}: not a DLQ envelope ({e}); skipped"),
            None => {}
        }
    }
    Ok(out)
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > max { format!("{}…", s.chars().take(max).collect::<String>()) } else { s }
}

/// `flts dlq list`
pub fn list(kafka: &KafkaArgs, filter: &Filter) -> anyhow::Result<()> {
    let c = consumer(kafka, "flts-dlq-inspect")?;
    let entries = read_entries(&c, &filter.topic, false)?;
    println!(
        "{:<4} {:<8} {:<25} {:<20} {:<18} {:<24} MESSAGE",
        "PART", "OFFSET", "FAILED AT", "IDENTIFIER", "KIND", "CODE"
    );
    let mut shown = 0;
    for e in entries.iter().filter(|e| filter.matches(e)) {
        let env = &e.envelope;
        let kind =
            serde_json::to_value(env.error.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        println!(
            "{:<4} {:<8} {:<25} {:<20} {:<18} {:<24} {}",
            e.partition,
            e.offset,
            env.failed_at.format("%Y-%m-%d %H:%M:%S"),
            one_line(env.identifier.as_deref().unwrap_or("-"), 20),
            kind,
            one_line(&env.error.code, 24),
            one_line(&env.error.message, 100)
        );
        shown += 1;
    }
    println!("{shown} of {} records in {}", entries.len(), filter.topic);
    Ok(())
}

/// `flts dlq show`
pub fn show(kafka: &KafkaArgs, topic: &str, partition: i32, offset: i64) -> anyhow::Result<()> {
    let c = consumer(kafka, "flts-dlq-inspect")?;
    let entry = read_entries(&c, topic, false)?
        .into_iter()
        .find(|e| e.partition == partition && e.offset == offset)
        .with_context(|| format!("no DLQ record at {topic}/{partition}@{offset}"))?;
    println!("{}", serde_json::to_string_pretty(&entry.envelope)?);
    let (_, payload) = kafka_utils::dlq::original_bytes(&entry.envelope).context("decode original bytes")?;
    if let Some(size) = entry.envelope.payload_truncated_from {
        println!("\nthe payload was {size} bytes, too large for the DLQ; these are its first {} bytes", payload.len());
    }
    match std::str::from_utf8(&payload) {
        Ok(text) => println!("\noriginal payload ({} bytes):\n{text}", payload.len()),
        Err(_) => println!("\noriginal payload: {} bytes of binary data", payload.len()),
    }
    Ok(())
}

/// Flags of `flts dlq replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Send to this topic instead of each record's original topic.
    #[arg(long)]
    pub to: Option<String>,
    /// Replace the payload with this file's bytes (a fixed copy); the filter
    /// must then select exactly one record.
    #[arg(long)]
    pub payload_file: Option<std::path::PathBuf>,
    /// Consumer group that records replay progress (default: one per DLQ topic
    /// and filter, `flts-dlq-replay.<topic>.<filter hash>`, so rerunning the same
    /// replay resumes it and a different filter starts from the beginning).
    #[arg(long)]
    pub group: Option<String>,
    /// Really send. Without it, print what would be sent (dry run).
    #[arg(long)]
    pub execute: bool,
}

/// `flts dlq replay`
pub async fn replay(kafka: &KafkaArgs, args: &ReplayArgs) -> anyhow::Result<()> {
    let topic = &args.filter.topic;
    let group = args.group.clone().unwrap_or_else(|| format!("flts-dlq-replay.{topic}.{}", args.filter.hash()));
    let c = consumer(kafka, &group)?;
    let pending = read_entries(&c, topic, true)?;
    let selected = pending.iter().filter(|e| args.filter.matches(e)).count();
    let fixed = match &args.payload_file {
        Some(path) => {
            if selected != 1 {
                bail!("--payload-file replaces one record's payload, but the filter selects {selected}");
            }
            Some(std::fs::read(path).with_context(|| format!("read {}", path.display()))?)
        }
        None => None,
    };
    // A truncated envelope cannot give the original back: refuse before sending anything.
    if fixed.is_none()
        && let Some(e) = pending.iter().find(|e| args.filter.matches(e) && e.envelope.payload_truncated_from.is_some())
    {
        bail!(
            "{topic}/{}@{} keeps only the first bytes of a {}-byte payload (too large for the DLQ); the whole \
             record is at {}/{}@{} while retention keeps it: replay a fixed copy with --payload-file",
            e.partition,
            e.offset,
            e.envelope.payload_truncated_from.unwrap_or_default(),
            e.envelope.original_topic,
            e.envelope.partition,
            e.envelope.offset
        );
    }
    let producer = if args.execute { Some(Producer::new(kafka, "flts-cli").context("create producer")?) } else { None };
    let mut sent = 0;
    for e in &pending {
        if args.filter.matches(e) {
            let (key, original) = kafka_utils::dlq::original_bytes(&e.envelope).context("decode original bytes")?;
            let payload = fixed.clone().unwrap_or(original);
            let dest = args.to.clone().unwrap_or_else(|| e.envelope.original_topic.clone());
            let what = format!(
                "{topic}/{}@{} -> {dest} (key {:?}, {} bytes; was {}: {})",
                e.partition,
                e.offset,
                key.as_deref().map(String::from_utf8_lossy),
                payload.len(),
                e.envelope.error.code,
                one_line(&e.envelope.error.message, 80)
            );
            let Some(producer) = &producer else {
                println!("would send {what}");
                continue;
            };
            let origin = format!("{topic}/{}/{}", e.partition, e.offset);
            producer
                .send_bytes(&dest, key.as_deref(), &payload, &[("flts-replayed-from", origin.as_bytes())])
                .await
                .with_context(|| format!("send {what}"))?;
            println!("sent {what}");
            sent += 1;
        }
        if producer.is_some() {
            // Progress is committed per record (replayed or filtered out) so a
            // rerun continues after it.
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, e.partition, Offset::Offset(e.offset + 1))?;
            c.commit(&tpl, CommitMode::Sync).context("commit replay progress")?;
        }
    }
    if args.execute {
        println!("{sent} records replayed from {topic}; progress committed in group {group}");
    } else {
        println!(
            "dry run: {} of {} pending records would be replayed (add --execute to send)",
            selected,
            pending.len()
        );
    }
    Ok(())
}
