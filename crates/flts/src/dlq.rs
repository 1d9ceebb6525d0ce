//! `flts dlq list|show|replay`: inspect dead-lettered records and send them
//! back once the cause is fixed.
//!
//! Replay reads a DLQ in its own consumer group (`flts-dlq-replay`, one per DLQ
//! topic unless `--group` says otherwise) and commits after every record it
//! re-sent, so an interrupted replay resumes where it stopped and a finished
//! one does not send the same records again. Downstream consumers are
//! idempotent, so even a record replayed twice has its effects once.
//!
//! # Records are hostile input
//! Anyone who can write a pipeline topic can shape what lands in a DLQ. So
//! every string taken from a record (identifier, key, code, message, payload
//! preview, decode errors) is passed through [`printable`] before it reaches the
//! terminal: control characters (C0, DEL, C1) and the invisible formatting
//! characters that reorder or hide text (bidi overrides, zero-width) are
//! shown as `\uXXXX`. And replay trusts no envelope's `original_topic`: the
//! DLQ `DLQ-<T>` may only be replayed to `T`, `T` must be a topic some stage
//! consumes ([`contracts::topology::consumed_topics`], under this deployment's
//! names, see [`consumed_topics`]), and every selected envelope must name `T`
//! as its origin; `--to` may only name a consumed topic.

use anyhow::{Context, bail};
use contracts::DlqEnvelope;
use contracts::topics::DLQ_PREFIX;
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
            Some(Err(e)) => {
                eprintln!("{topic}/{partition}@{offset}: not a DLQ envelope ({}); skipped", printable(&e.to_string()))
            }
            None => {}
        }
    }
    Ok(out)
}

/// `s` safe to print on a terminal: control characters (C0 including
/// newline, DEL, C1) and invisible formatting characters (bidi embeddings,
/// overrides and isolates, zero-width characters, the BOM) become `\uXXXX`
/// (`\n`, `\r`, `\t` for those three); everything else is kept.
pub fn printable(s: &str) -> String {
    escape(s, false)
}

/// [`printable`] for multi-line text of our own making (pretty JSON): its
/// newlines stay, everything else is escaped the same way.
fn printable_lines(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_on_a_terminal(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn is_unsafe_on_a_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// One table cell: [`printable`], cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let s = printable(s);
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
    // serde_json escapes C0 characters in strings but not DEL, C1 or bidi ones.
    println!("{}", printable_lines(&serde_json::to_string_pretty(&entry.envelope)?));
    let env = &entry.envelope;
    let (key, payload) = kafka_utils::dlq::original_bytes(env).context("decode original bytes")?;
    if let Some(key) = &key {
        match std::str::from_utf8(key) {
            Ok(text) => println!("\noriginal key ({} bytes): {}", key.len(), printable(text)),
            Err(_) => println!("\noriginal key: {} bytes of binary data", key.len()),
        }
    }
    if let Some(size) = env.key_truncated_from {
        println!(
            "the key was {size} bytes, too large for the DLQ; these are its first {} bytes (sha256 {})",
            key.as_ref().map_or(0, Vec::len),
            printable(env.key_sha256.as_deref().unwrap_or("-"))
        );
    }
    if let Some(size) = env.payload_truncated_from {
        println!(
            "\nthe payload was {size} bytes, too large for the DLQ; these are its first {} bytes (sha256 {})",
            payload.len(),
            printable(env.payload_sha256.as_deref().unwrap_or("-"))
        );
    }
    match std::str::from_utf8(&payload) {
        Ok(text) => println!("\noriginal payload ({} bytes):\n{}", payload.len(), printable(text)),
        Err(_) => println!("\noriginal payload: {} bytes of binary data", payload.len()),
    }
    Ok(())
}

/// Flags of `flts dlq replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Send to this topic instead of the DLQ's own topic (`DLQ-<T>` replays to
    /// `T`); it must be a topic some stage consumes.
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

/// The topics a stage consumes ([`contracts::topology::consumed_topics`]),
/// under this deployment's names: each may be renamed by the environment
/// variable the stages read it from, `<TOPIC>_TOPIC` (e.g.
/// `PREPROCESS_REQUESTS_TOPIC` for preprocess-requests).
pub fn consumed_topics() -> Vec<String> {
    contracts::topology::consumed_topics()
        .into_iter()
        .map(|t| {
            let var = format!("{}_TOPIC", t.to_ascii_uppercase().replace('-', "_"));
            std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| t.to_string())
        })
        .collect()
}

/// The topic the records of `dlq` may be replayed to: `T` for `DLQ-<T>`, when
/// `T` is in `consumed`.
pub fn replay_origin<'a>(dlq: &'a str, consumed: &[String]) -> anyhow::Result<&'a str> {
    let Some(origin) = dlq.strip_prefix(DLQ_PREFIX) else {
        bail!("{} is not a dead-letter topic (those are named {DLQ_PREFIX}<topic>)", printable(dlq));
    };
    if !consumed.iter().any(|c| c == origin) {
        bail!(
            "{} is not the DLQ of a topic a stage consumes ({}); refusing to replay it",
            printable(dlq),
            consumed.join(", ")
        );
    }
    Ok(origin)
}

/// `flts dlq replay`
pub async fn replay(kafka: &KafkaArgs, args: &ReplayArgs) -> anyhow::Result<()> {
    let topic = &args.filter.topic;
    let consumed = consumed_topics();
    let origin = replay_origin(topic, &consumed)?;
    if let Some(to) = &args.to
        && !consumed.contains(to)
    {
        bail!("--to {} is not a topic a stage consumes ({}); refusing", printable(to), consumed.join(", "));
    }
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
    // An envelope that claims another origin is forged or misrouted: refuse
    // before sending anything.
    if let Some(e) = pending.iter().find(|e| args.filter.matches(e) && e.envelope.original_topic != origin) {
        bail!(
            "{topic}/{}@{} claims to come from {}, but {topic} holds dead letters of {origin} only; refusing to \
             replay (leave it out with --partition/--from-offset/--until-offset)",
            e.partition,
            e.offset,
            printable(&e.envelope.original_topic)
        );
    }
    // A truncated envelope cannot give the original back: refuse before sending anything.
    let truncated = |e: &&Entry| {
        let env = &e.envelope;
        env.key_truncated_from.is_some() || (fixed.is_none() && env.payload_truncated_from.is_some())
    };
    if let Some(e) = pending.iter().filter(|e| args.filter.matches(e)).find(truncated) {
        let fix = if e.envelope.key_truncated_from.is_some() {
            "its key cannot be given back: produce a fixed record yourself, with a key of a sane size"
        } else {
            "replay a fixed copy with --payload-file"
        };
        bail!(
            "{topic}/{}@{} keeps only the first bytes of its {} (too large for the DLQ); the whole record is at \
             {origin}/{}@{} while retention keeps it: {fix}",
            e.partition,
            e.offset,
            if e.envelope.key_truncated_from.is_some() { "key" } else { "payload" },
            e.envelope.partition,
            e.envelope.offset,
        );
    }
    let producer = if args.execute { Some(Producer::new(kafka, "flts-cli").context("create producer")?) } else { None };
    let mut sent = 0;
    for e in &pending {
        if args.filter.matches(e) {
            let (key, original) = kafka_utils::dlq::original_bytes(&e.envelope).context("decode original bytes")?;
            let payload = fixed.clone().unwrap_or(original);
            let dest = args.to.clone().unwrap_or_else(|| origin.to_string());
            let what = format!(
                "{topic}/{}@{} -> {dest} (key {}, {} bytes; was {}: {})",
                e.partition,
                e.offset,
                key.as_deref().map_or_else(|| "none".to_string(), |k| one_line(&String::from_utf8_lossy(k), 60)),
                payload.len(),
                one_line(&e.envelope.error.code, 40),
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
            let next = e.offset.checked_add(1).context("DLQ offset out of range")?;
            tpl.add_partition_offset(topic, e.partition, Offset::Offset(next))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_every_control_and_invisible_formatting_character() {
        let hostile = "a\u{1b}[2Jb\u{7}c\u{7f}d\u{9b}31me\u{202e}f\u{200b}g\u{2066}h\nline\ri\tj";
        let shown = printable(hostile);
        assert_eq!(shown, "a\\u001b[2Jb\\u0007c\\u007fd\\u009b31me\\u202ef\\u200bg\\u2066h\\nline\\ri\\tj");
        assert!(shown.chars().all(|c| !is_unsafe_on_a_terminal(c) && c != '\n'));
        assert_eq!(printable("site-1 ÄÖ 東京 ✓"), "site-1 ÄÖ 東京 ✓", "printable text is kept");
        assert_eq!(printable_lines("{\n  \"a\": \"\u{9b}\"\n}"), "{\n  \"a\": \"\\u009b\"\n}");
    }

    #[test]
    fn a_dlq_replays_only_to_the_consumed_topic_it_is_named_after() {
        let consumed: Vec<String> = ["preprocess-requests", "training-data"].map(String::from).to_vec();
        assert_eq!(replay_origin("DLQ-training-data", &consumed).expect("a consumed topic's DLQ"), "training-data");
        for bad in ["DLQ-model-selected", "training-data", "DLQ-", "dlq-training-data", "DLQ-DLQ-training-data"] {
            assert!(replay_origin(bad, &consumed).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn every_topic_a_stage_consumes_may_be_renamed_by_its_env_variable() {
        let topics = consumed_topics();
        assert_eq!(topics.len(), contracts::topology::consumed_topics().len());
        assert!(!topics.iter().any(|t| t.starts_with(DLQ_PREFIX)));
    }
}
