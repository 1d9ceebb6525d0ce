//! Dead-letter envelopes: the original record, whole, plus why it failed.
//!
//! An envelope must itself fit in a Kafka record. The payload grows by a third
//! in base64, so the envelope of a record close to the size limit would not:
//! librdkafka refuses it locally (`MessageSizeTooLarge`, the producer's
//! `message.max.bytes` defaults to 1,000,000) and the DLQ write could never
//! succeed, which would stall the partition. [`envelope`] therefore keeps the
//! whole payload only while the envelope stays under [`MAX_ENVELOPE_BYTES`];
//! past that it keeps the first [`TRUNCATED_PAYLOAD_BYTES`] and records the
//! original size in `payload_truncated_from` (the record itself stays on its
//! topic at the envelope's partition and offset until retention removes it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio_util::sync::CancellationToken;
use tracing::error;

use contracts::{DlqEnvelope, DlqError, FailureKind, V1};

use crate::consumer::{ConsumerArgs, HandlerError, Record};
use crate::producer::Producer;

/// Largest encoded envelope sent whole: under librdkafka's default
/// `message.max.bytes` (1,000,000) with room for the key and headers.
pub const MAX_ENVELOPE_BYTES: usize = 900_000;
/// Payload bytes an envelope keeps when the whole payload does not fit.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 64 * 1024;
/// Characters of the error message kept when even a truncated envelope is too large.
const TRUNCATED_MESSAGE_CHARS: usize = 16 * 1024;

/// Build the envelope for `record`; it always fits in [`MAX_ENVELOPE_BYTES`]
/// unless the record's key alone is larger.
pub fn envelope(record: &Record, kind: FailureKind, err: &HandlerError, attempts: u32, service: &str) -> DlqEnvelope {
    let mut env = DlqEnvelope {
        v: V1,
        identifier: contracts::decode::peek_identifier(&record.payload),
        original_topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key_base64: record.key.as_ref().map(|k| B64.encode(k)),
        payload_base64: B64.encode(&record.payload),
        payload_truncated_from: None,
        error: DlqError { kind, code: err.code.clone(), message: err.message() },
        attempts,
        service: service.to_string(),
        failed_at: chrono::Utc::now(),
    };
    if encoded_len(&env) > MAX_ENVELOPE_BYTES {
        let kept = record.payload.len().min(TRUNCATED_PAYLOAD_BYTES);
        env.payload_base64 = B64.encode(&record.payload[..kept]);
        env.payload_truncated_from = Some(record.payload.len() as u64);
        if encoded_len(&env) > MAX_ENVELOPE_BYTES {
            let mut message: String = env.error.message.chars().take(TRUNCATED_MESSAGE_CHARS).collect();
            message.push_str(" [message truncated]");
            env.error.message = message;
        }
    }
    env
}

fn encoded_len(env: &DlqEnvelope) -> usize {
    serde_json::to_vec(env).map_or(usize::MAX, |v| v.len())
}

/// The original (key, payload) bytes of an envelope, for replay.
pub fn original_bytes(env: &DlqEnvelope) -> Result<(Option<Vec<u8>>, Vec<u8>), base64::DecodeError> {
    let key = env.key_base64.as_deref().map(|k| B64.decode(k)).transpose()?;
    Ok((key, B64.decode(&env.payload_base64)?))
}

/// Send the envelope to `dlq`, keyed like the original, retrying with backoff
/// until the broker acknowledges it. Returns false only when shutdown came
/// first (the record's offset then stays unstored, so it is redelivered).
pub(crate) async fn send_until_acked(
    producer: &Producer,
    dlq: &str,
    record: &Record,
    env: &DlqEnvelope,
    args: &ConsumerArgs,
    cancel: &CancellationToken,
) -> bool {
    let payload = match serde_json::to_vec(env) {
        Ok(p) => p,
        Err(e) => {
            error!(error = %e, "cannot encode DLQ envelope");
            return false;
        }
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match producer.send_bytes(dlq, record.key.as_deref(), &payload, &[]).await {
            Ok(_) => return true,
            Err(e) => {
                let wait = args.backoff(attempt);
                error!(%dlq, attempt, error = %e, "DLQ write failed; retrying in {wait:?}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_the_original_bytes() {
        let record = Record {
            topic: "training-data".into(),
            partition: 2,
            offset: 41,
            key: Some(b"site-7".to_vec()),
            payload: b"{\"identifier\":\"site-7\",\"v\":9,\xff}".to_vec(),
            headers: vec![],
        };
        let err = HandlerError::decode("bad");
        let env = envelope(&record, FailureKind::Decode, &err, 1, "train-gru");
        let (key, payload) = original_bytes(&env).expect("valid base64");
        assert_eq!(key.as_deref(), Some(&b"site-7"[..]));
        assert_eq!(payload, record.payload);
        assert_eq!(env.original_topic, "training-data");
        assert_eq!((env.partition, env.offset), (2, 41));
        assert_eq!(env.error.code, "decode");
        // Not valid JSON (the 0xff byte), so no identifier is claimed.
        assert_eq!(env.identifier, None);
        assert_eq!(env.payload_truncated_from, None);
    }

    #[test]
    fn the_envelope_of_a_huge_record_still_fits_and_says_it_is_truncated() {
        let payload = format!("{{\"identifier\":\"big\",\"pad\":\"{}\"}}", "x".repeat(950_000)).into_bytes();
        let record = Record {
            topic: "training-data".into(),
            partition: 0,
            offset: 3,
            key: Some(b"big".to_vec()),
            payload: payload.clone(),
            headers: vec![],
        };
        let err = HandlerError::permanent("bad_input", "y".repeat(2_000_000));
        let env = envelope(&record, FailureKind::Permanent, &err, 1, "preprocess");
        let encoded = serde_json::to_vec(&env).expect("encodes");
        assert!(encoded.len() <= MAX_ENVELOPE_BYTES, "{} bytes", encoded.len());
        assert_eq!(env.payload_truncated_from, Some(payload.len() as u64));
        let (key, kept) = original_bytes(&env).expect("valid base64");
        assert_eq!(key.as_deref(), Some(&b"big"[..]));
        assert_eq!(kept, payload[..TRUNCATED_PAYLOAD_BYTES]);
        assert_eq!(env.identifier.as_deref(), Some("big"));
        assert!(env.error.message.ends_with("[message truncated]"));
    }
}
