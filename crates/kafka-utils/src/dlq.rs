//! Dead-letter envelopes: the original record, whole, plus why it failed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio_util::sync::CancellationToken;
use tracing::error;

use contracts::{DlqEnvelope, DlqError, FailureKind, V1};

use crate::consumer::{ConsumerArgs, HandlerError, Record};
use crate::producer::Producer;

/// Build the envelope for `record`.
pub fn envelope(record: &Record, kind: FailureKind, err: &HandlerError, attempts: u32, service: &str) -> DlqEnvelope {
    DlqEnvelope {
        v: V1,
        identifier: contracts::decode::peek_identifier(&record.payload),
        original_topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key_base64: record.key.as_ref().map(|k| B64.encode(k)),
        payload_base64: B64.encode(&record.payload),
        error: DlqError { kind, code: err.code.clone(), message: err.message() },
        attempts,
        service: service.to_string(),
        failed_at: chrono::Utc::now(),
    }
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
    }
}
