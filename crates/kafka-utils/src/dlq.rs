//! Dead-letter envelopes: the original record, as whole as fits, plus why it failed.
//!
//! # An envelope always fits
//! A DLQ write that can never succeed stalls its partition for good: the
//! record's offset is stored only after its envelope is acknowledged. So an
//! envelope is sized against the producer's `message.max.bytes`
//! ([`crate::KafkaArgs::message_max_bytes`]) before it is sent, and everything
//! taken from the record is bounded:
//!
//! - **key**: kept whole up to [`ENVELOPE_KEY_BYTES`] (and an eighth of the
//!   limit); a larger key keeps its first [`TRUNCATED_KEY_BYTES`] with
//!   `key_truncated_from` (its size) and `key_sha256`. The DLQ record is keyed
//!   by the original key when it is kept whole, else by the key's SHA-256
//!   (hex), so the records of one key still share a DLQ partition.
//! - **payload**: kept whole while the envelope fits; otherwise its first
//!   [`TRUNCATED_PAYLOAD_BYTES`] (fewer if the limit is small) with
//!   `payload_truncated_from` and `payload_sha256`. The whole record stays on
//!   its topic at the envelope's partition and offset until retention.
//! - **error**: the code is cut to [`MAX_CODE_CHARS`], the message to
//!   [`MAX_MESSAGE_CHARS`]; the identifier is kept only when it is a valid
//!   dataset identifier.
//! - **headers**: the original headers are not carried; the DLQ record has
//!   only the producer's own two headers.
//!
//! # Permanent producer errors
//! [`write`] never sends the same envelope again after a permanent error
//! ([`crate::producer::is_permanent_code`]: too large, invalid record, not
//! authorized, ...): it sends the [`minimal`] envelope instead (no payload, no
//! key bytes, sizes and hashes only, a short message), and if even that is
//! refused for good, it gives up on the DLQ for this record (logged with the
//! record's position and counted in `flts_kafka_dlq_fallbacks_total`) and the
//! partition moves on. Transient errors are retried with backoff until the
//! broker acknowledges or shutdown comes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::error;

use contracts::{DlqEnvelope, DlqError, FailureKind, V1};

use crate::backoff::{self, Backoff};
use crate::consumer::{ConsumerArgs, HandlerError, Record};
use crate::metrics;
use crate::producer::Producer;

/// Largest key carried whole (and used as the DLQ record's key).
pub const ENVELOPE_KEY_BYTES: usize = 16 * 1024;
/// Key bytes an envelope keeps when the whole key is larger than [`ENVELOPE_KEY_BYTES`].
pub const TRUNCATED_KEY_BYTES: usize = 256;
/// Payload bytes an envelope keeps (at most) when the whole payload does not fit.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 64 * 1024;
/// Characters of the error message an envelope keeps.
pub const MAX_MESSAGE_CHARS: usize = 16 * 1024;
/// Characters of the error code an envelope keeps.
pub const MAX_CODE_CHARS: usize = 64;
/// Characters of the error message the minimal envelope keeps.
const MINIMAL_MESSAGE_CHARS: usize = 512;
/// What a DLQ record needs besides its key and value: Kafka's record framing
/// (under 100 bytes in format v2) and the producer's two headers, with room to spare.
pub const RECORD_OVERHEAD_BYTES: usize = 512;

/// The longest encoded envelope built for librdkafka's default
/// `message.max.bytes` (1,000,000), reached when the DLQ record has no key.
pub const MAX_ENVELOPE_BYTES: usize = 1_000_000 - RECORD_OVERHEAD_BYTES;

/// The largest encoded envelope a DLQ record keyed with `key_len` bytes may
/// carry under a producer limit of `max_message_bytes`.
pub fn envelope_budget(max_message_bytes: usize, key_len: usize) -> usize {
    max_message_bytes.saturating_sub(RECORD_OVERHEAD_BYTES).saturating_sub(key_len)
}

/// Whether an envelope (and the DLQ record's key) carries a key of `key_len`
/// bytes whole under a producer limit of `max_message_bytes`.
fn keeps_key_whole(key_len: usize, max_message_bytes: usize) -> bool {
    key_len <= ENVELOPE_KEY_BYTES.min(max_message_bytes / 8)
}

/// The key of the DLQ record of `record`: its own key when the envelope
/// carries it whole, else the key's SHA-256 (hex).
pub fn dlq_key(record: &Record, max_message_bytes: usize) -> Option<Vec<u8>> {
    record
        .key
        .as_ref()
        .map(|k| if keeps_key_whole(k.len(), max_message_bytes) { k.clone() } else { sha256_hex(k).into_bytes() })
}

/// The key of the DLQ record of a [`minimal`] envelope: short keys as they
/// are, others as their SHA-256 (hex, 64 bytes).
fn minimal_dlq_key(record: &Record) -> Option<Vec<u8>> {
    record.key.as_ref().map(|k| if k.len() <= 64 { k.clone() } else { sha256_hex(k).into_bytes() })
}

/// Build the envelope of `record` so that its encoding, keyed by
/// [`dlq_key`], fits a producer limit of `max_message_bytes`. When even a
/// truncated payload does not fit, this is the [`minimal`] envelope (which
/// [`write`] then keys by the key's hash).
pub fn envelope(
    record: &Record,
    kind: FailureKind,
    err: &HandlerError,
    attempts: u32,
    service: &str,
    max_message_bytes: usize,
) -> DlqEnvelope {
    let key_len = dlq_key(record, max_message_bytes).map_or(0, |k| k.len());
    let budget = envelope_budget(max_message_bytes, key_len);
    let mut env = DlqEnvelope {
        v: V1,
        identifier: valid_identifier(&record.payload),
        original_topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key_base64: None,
        payload_base64: B64.encode(&record.payload),
        payload_truncated_from: None,
        payload_sha256: None,
        key_truncated_from: None,
        key_sha256: None,
        error: DlqError {
            kind,
            code: truncate_chars(err.code.as_str(), MAX_CODE_CHARS),
            message: truncate_chars(&err.message(), MAX_MESSAGE_CHARS),
        },
        attempts,
        service: service.to_string(),
        failed_at: chrono::Utc::now(),
    };
    if let Some(key) = &record.key {
        if keeps_key_whole(key.len(), max_message_bytes) {
            env.key_base64 = Some(B64.encode(key));
        } else {
            env.key_base64 = Some(B64.encode(&key[..key.len().min(TRUNCATED_KEY_BYTES)]));
            env.key_truncated_from = Some(len_u64(key.len()));
            env.key_sha256 = Some(sha256_hex(key));
        }
    }
    if encoded_len(&env) > budget {
        // Keep as much of the payload as fits, at most TRUNCATED_PAYLOAD_BYTES.
        env.payload_base64 = String::new();
        env.payload_truncated_from = Some(len_u64(record.payload.len()));
        env.payload_sha256 = Some(sha256_hex(&record.payload));
        let room = budget.saturating_sub(encoded_len(&env));
        let kept = record.payload.len().min(TRUNCATED_PAYLOAD_BYTES).min(room / 4 * 3);
        env.payload_base64 = B64.encode(&record.payload[..kept]);
    }
    if encoded_len(&env) > budget { minimal(record, &env) } else { env }
}

/// The smallest envelope of `record`: no key or payload bytes, only their
/// sizes and SHA-256, and the first characters of the message. Well under a
/// kilobyte plus the original topic name, so it fits any limit kafka-utils
/// accepts ([`crate::config::MIN_MESSAGE_MAX_BYTES`]).
pub fn minimal(record: &Record, env: &DlqEnvelope) -> DlqEnvelope {
    let mut message = truncate_chars(&env.error.message, MINIMAL_MESSAGE_CHARS);
    message.push_str(" [minimal envelope: the full one could not be written]");
    DlqEnvelope {
        key_base64: record.key.as_ref().map(|_| String::new()),
        key_truncated_from: record.key.as_ref().map(|k| len_u64(k.len())),
        key_sha256: record.key.as_deref().map(sha256_hex),
        payload_base64: String::new(),
        payload_truncated_from: Some(len_u64(record.payload.len())),
        payload_sha256: Some(sha256_hex(&record.payload)),
        error: DlqError { kind: env.error.kind, code: truncate_chars(&env.error.code, MAX_CODE_CHARS), message },
        ..env.clone()
    }
}

/// The original (key, payload) bytes of an envelope, for replay. A truncated
/// envelope gives back only the prefixes it kept.
pub fn original_bytes(env: &DlqEnvelope) -> Result<(Option<Vec<u8>>, Vec<u8>), base64::DecodeError> {
    let key = env.key_base64.as_deref().map(|k| B64.decode(k)).transpose()?;
    Ok((key, B64.decode(&env.payload_base64)?))
}

/// Whether an envelope lacks part of the original key or payload.
pub fn is_truncated(env: &DlqEnvelope) -> bool {
    env.payload_truncated_from.is_some() || env.key_truncated_from.is_some()
}

/// How a DLQ write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The envelope was acknowledged.
    Sent,
    /// The envelope was refused for good; the [`minimal`] one was acknowledged.
    Minimal,
    /// Even the minimal envelope was refused for good: nothing is in the DLQ.
    Dropped,
    /// Shutdown came first (the record's offset stays unstored: redelivered).
    Cancelled,
}

/// Send `env` (the envelope of `record`) to `dlq`, keyed by [`dlq_key`] (by
/// the key's hash for a [`minimal`] envelope):
/// transient failures are retried with backoff until the broker acknowledges
/// or `cancel` fires; a permanent one never is (see the module docs).
pub async fn write(
    producer: &Producer,
    dlq: &str,
    record: &Record,
    env: &DlqEnvelope,
    args: &ConsumerArgs,
    cancel: &CancellationToken,
) -> Written {
    let mut env = env.clone();
    let mut is_minimal = is_minimal_envelope(&env);
    // The handler's schedule without its attempt limit: a DLQ write is retried until acknowledged.
    let mut schedule = Backoff { max_attempts: None, ..args.retry_backoff() }.start();
    loop {
        let key = if is_minimal { minimal_dlq_key(record) } else { dlq_key(record, producer.max_message_bytes()) };
        let sent = match serde_json::to_vec(&env) {
            Ok(payload) => producer.send_bytes(dlq, key.as_deref(), &payload, &[]).await.map_err(|e| {
                let permanent = e.is_permanent();
                (e.to_string(), permanent)
            }),
            Err(e) => Err((format!("cannot encode DLQ envelope: {e}"), true)),
        };
        let (reason, permanent) = match sent {
            Ok(_) => return if is_minimal { Written::Minimal } else { Written::Sent },
            Err(failure) => failure,
        };
        let (topic, partition, offset) = (&record.topic, record.partition, record.offset);
        if permanent && !is_minimal {
            error!(%dlq, %topic, partition, offset, error = %reason,
                "DLQ write refused for good; sending the minimal envelope instead");
            metrics::DLQ_FALLBACKS.with_label_values(&[dlq, "minimal"]).inc();
            env = minimal(record, &env);
            is_minimal = true;
            continue;
        }
        if permanent {
            error!(%dlq, %topic, partition, offset, error = %reason,
                "even the minimal DLQ envelope was refused for good; the record is skipped without a dead letter \
                 (it stays at its topic/partition/offset until retention)");
            metrics::DLQ_FALLBACKS.with_label_values(&[dlq, "dropped"]).inc();
            return Written::Dropped;
        }
        // A schedule without limits always has a next wait.
        let wait = schedule.next_delay().unwrap_or(std::time::Duration::from_millis(args.handler_backoff_max_ms));
        error!(%dlq, attempt = schedule.failures(), error = %reason, "DLQ write failed; retrying in {wait:?}");
        if !backoff::sleep(wait, cancel).await {
            return Written::Cancelled;
        }
    }
}

fn is_minimal_envelope(env: &DlqEnvelope) -> bool {
    env.payload_base64.is_empty() && env.payload_truncated_from.is_some_and(|n| n > 0)
}

/// The identifier a JSON payload names, when it is a valid dataset identifier
/// (anything else could be any size or content: it is left out).
fn valid_identifier(payload: &[u8]) -> Option<String> {
    contracts::decode::peek_identifier(payload).filter(|id| contracts::topics::validate_identifier(id).is_ok())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str(" [truncated]");
    out
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn encoded_len(env: &DlqEnvelope) -> usize {
    serde_json::to_vec(env).map_or(usize::MAX, |v| v.len())
}

#[cfg(test)]
mod tests {
    use contracts::error::Code;

    use super::*;

    const LIMIT: usize = 1_000_000;

    fn record(key: Option<Vec<u8>>, payload: Vec<u8>) -> Record {
        Record { topic: "training-data".into(), partition: 2, offset: 41, key, payload, headers: vec![] }
    }

    /// The bytes librdkafka checks against `message.max.bytes`, with our headers.
    fn wire_len(record: &Record, env: &DlqEnvelope, limit: usize) -> usize {
        let key = if is_minimal_envelope(env) { minimal_dlq_key(record) } else { dlq_key(record, limit) };
        let key = key.map_or(0, |k| k.len());
        serde_json::to_vec(env).expect("encodes").len() + key + RECORD_OVERHEAD_BYTES
    }

    #[test]
    fn envelope_keeps_the_original_bytes() {
        let record = record(Some(b"site-7".to_vec()), b"{\"identifier\":\"site-7\",\"v\":9,\xff}".to_vec());
        let err = HandlerError::decode("bad");
        let env = envelope(&record, FailureKind::Decode, &err, 1, "train-gru", LIMIT);
        let (key, payload) = original_bytes(&env).expect("valid base64");
        assert_eq!(key.as_deref(), Some(&b"site-7"[..]));
        assert_eq!(payload, record.payload);
        assert_eq!(env.original_topic, "training-data");
        assert_eq!((env.partition, env.offset), (2, 41));
        assert_eq!(env.error.code, "decode");
        // Not valid JSON (the 0xff byte), so no identifier is claimed.
        assert_eq!(env.identifier, None);
        assert!(!is_truncated(&env));
        assert_eq!((env.payload_sha256.as_deref(), env.key_sha256.as_deref()), (None, None));
    }

    #[test]
    fn the_envelope_of_a_huge_record_still_fits_and_says_it_is_truncated() {
        let payload = format!("{{\"identifier\":\"big\",\"pad\":\"{}\"}}", "x".repeat(950_000)).into_bytes();
        let record = record(Some(b"big".to_vec()), payload.clone());
        let err = HandlerError::permanent(Code::BadInput, "y".repeat(2_000_000));
        let env = envelope(&record, FailureKind::Permanent, &err, 1, "preprocess", LIMIT);
        assert!(wire_len(&record, &env, LIMIT) <= LIMIT, "{} bytes", wire_len(&record, &env, LIMIT));
        assert_eq!(env.payload_truncated_from, Some(payload.len() as u64));
        assert_eq!(env.payload_sha256.as_deref(), Some(sha256_hex(&payload).as_str()));
        let (key, kept) = original_bytes(&env).expect("valid base64");
        assert_eq!(key.as_deref(), Some(&b"big"[..]));
        assert_eq!(kept, payload[..TRUNCATED_PAYLOAD_BYTES]);
        assert_eq!(env.identifier.as_deref(), Some("big"));
        assert!(env.error.message.ends_with("[truncated]"));
        assert!(env.error.message.chars().count() <= MAX_MESSAGE_CHARS + 20);
    }

    #[test]
    fn a_300_kb_key_with_a_large_undecodable_value_fits_with_the_keys_size_and_hash() {
        // Issue 17, seen: key 300 kB, value 300 kB. Carried whole, the key
        // (once as the DLQ key, once in base64) and the payload made 1.1 MB.
        let key = vec![b'k'; 300_000];
        let record = record(Some(key.clone()), vec![0xff; 300_000]);
        let env = envelope(&record, FailureKind::Decode, &HandlerError::decode("bad"), 1, "train-gru", LIMIT);
        assert!(wire_len(&record, &env, LIMIT) <= LIMIT, "{} bytes", wire_len(&record, &env, LIMIT));
        assert_eq!(env.key_truncated_from, Some(300_000));
        assert_eq!(env.key_sha256.as_deref(), Some(sha256_hex(&key).as_str()));
        assert_eq!(dlq_key(&record, LIMIT), Some(sha256_hex(&key).into_bytes()));
        let (kept_key, payload) = original_bytes(&env).expect("base64");
        assert_eq!(kept_key.map(|k| k.len()), Some(TRUNCATED_KEY_BYTES));
        assert_eq!(payload, record.payload, "the value still fits whole");
        assert!(is_truncated(&env));
    }

    #[test]
    fn envelopes_fit_every_limit_kafka_utils_accepts() {
        let big_key = Some(vec![b'k'; ENVELOPE_KEY_BYTES]);
        for limit in [crate::config::MIN_MESSAGE_MAX_BYTES, 20_000, 100_000, LIMIT] {
            for (key, payload) in [(None, vec![b'p'; 2_000_000]), (big_key.clone(), vec![b'p'; 50_000])] {
                let record = record(key, payload);
                let err = HandlerError::permanent(Code::BadData, "m".repeat(100_000));
                let env = envelope(&record, FailureKind::Permanent, &err, 1, "s", limit);
                let wire = wire_len(&record, &env, limit);
                assert!(wire <= limit, "limit {limit}: {wire} bytes");
                assert!(env.error.code.chars().count() <= MAX_CODE_CHARS + 12);
            }
        }
    }

    #[test]
    fn the_minimal_envelope_keeps_sizes_and_hashes_only() {
        let record = record(Some(b"site-1".to_vec()), b"{\"identifier\":\"site-1\"}".to_vec());
        let err = HandlerError::permanent(Code::BadData, "z".repeat(5_000));
        let full = envelope(&record, FailureKind::Permanent, &err, 3, "eval", LIMIT);
        let min = minimal(&record, &full);
        assert_eq!(min.payload_base64, "");
        assert_eq!(min.payload_truncated_from, Some(record.payload.len() as u64));
        assert_eq!(min.payload_sha256.as_deref(), Some(sha256_hex(&record.payload).as_str()));
        assert_eq!((min.key_truncated_from, min.key_sha256.clone()), (Some(6), Some(sha256_hex(b"site-1"))));
        assert_eq!((min.attempts, min.identifier.as_deref()), (3, Some("site-1")));
        assert!(serde_json::to_vec(&min).expect("encodes").len() < 1_500);
        assert!(is_truncated(&min));
    }

    #[test]
    fn an_identifier_that_is_not_a_valid_one_is_left_out() {
        let huge = format!("{{\"identifier\":\"{}\"}}", "a".repeat(100_000)).into_bytes();
        let control = b"{\"identifier\":\"site\\u001b[2J\"}".to_vec();
        for payload in [huge, control] {
            let env = envelope(&record(None, payload), FailureKind::Decode, &HandlerError::decode("x"), 1, "s", LIMIT);
            assert_eq!(env.identifier, None);
        }
    }
}
