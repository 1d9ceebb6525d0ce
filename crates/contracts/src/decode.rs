//! Decoding raw Kafka payloads into messages, with errors that name the field.

use serde::de::DeserializeOwned;

/// A payload that is not a valid message. Never retryable: the same bytes fail
/// the same way, so the record goes to the DLQ at once.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is empty")]
    Empty,
    #[error("payload is not valid UTF-8 at byte {valid_up_to}")]
    NotUtf8 { valid_up_to: usize },
    #[error("invalid message at `{path}`: {message}")]
    Invalid { path: String, message: String },
}

/// Decode a JSON payload into `T`. A missing required field, a wrong type or a
/// wrong `v` fails with the JSON path of the field (e.g. `test.sha256`).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotUtf8 { valid_up_to: e.valid_up_to() })?;
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::Invalid {
            path: if path.is_empty() { ".".into() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

/// The `identifier` of a JSON payload, if it has one (for DLQ envelopes of
/// payloads that failed to decode as a whole).
pub fn peek_identifier(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        identifier: Option<String>,
    }
    serde_json::from_slice::<Peek>(payload).ok()?.identifier
}
