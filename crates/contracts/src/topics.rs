//! Topic names (seed 002) and the DLQ naming rule. Which stage consumes and
//! produces what, and in which group, is in [`crate::topology`].

/// Claim checks for processed training data (preprocess -> trainers).
pub const TRAINING_DATA: &str = "training-data";
/// Claim checks for processed test data (preprocess -> inference).
pub const INFERENCE_DATA: &str = "inference-data";
/// Training lifecycle events RUNNING/SUCCESS/FAILED (trainers -> eval, inference).
pub const MODEL_TRAINING: &str = "model-training";
/// Promotion events (eval -> inference).
pub const MODEL_SELECTED: &str = "model-selected";
/// Batch inference summaries (inference -> monitoring).
pub const PERFORMANCE_EVAL: &str = "performance-eval";
/// Requests to preprocess a dataset (operator CLI -> preprocess service mode).
pub const PREPROCESS_REQUESTS: &str = "preprocess-requests";
/// Drift events: a served model's forecasts degraded (monitor -> operators, alerting).
pub const MODEL_DRIFT: &str = "model-drift";

/// Prefix of every dead-letter topic.
pub const DLQ_PREFIX: &str = "DLQ-";

/// The dead-letter topic of `topic`: `DLQ-<topic>`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{DLQ_PREFIX}{topic}")
}

/// Whether `topic` is a dead-letter topic.
pub fn is_dlq(topic: &str) -> bool {
    topic.starts_with(DLQ_PREFIX)
}

/// Check a dataset identifier: 1-128 characters of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot. Identifiers become object-key segments and message
/// keys, so anything that could nest or escape a prefix is refused.
pub fn validate_identifier(id: &str) -> Result<(), String> {
    let ok_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if id.is_empty() || id.len() > 128 || !ok_chars || id.starts_with('.') {
        return Err(format!(
            "invalid identifier {:?}: use 1-128 characters of A-Z a-z 0-9 . _ - (not starting with a dot)",
            id.escape_debug().to_string()
        ));
    }
    Ok(())
}

/// Check a config hash: the lower-case hex SHA-256 preprocess computes (64
/// characters). It becomes an object-key segment and part of MLflow searches.
pub fn validate_config_hash(hash: &str) -> Result<(), String> {
    if crate::promotion::is_sha256_hex(hash) {
        return Ok(());
    }
    let shown: String = hash.chars().take(80).collect();
    Err(format!("invalid config hash {:?}: expected 64 lower-case hex digits", shown.escape_debug().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_that_could_escape_a_prefix_are_refused() {
        for bad in ["", ".hidden", "..", "a/b", "a b", "x\n", &"y".repeat(129)] {
            assert!(validate_identifier(bad).is_err(), "{bad:?}");
        }
        for good in ["site-1", "ElBorn_2018.v2", "A"] {
            assert!(validate_identifier(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn config_hashes_are_64_hex_digits() {
        assert!(validate_config_hash(&"0a".repeat(32)).is_ok());
        for bad in ["", "abc", &"0a".repeat(33), &format!("{}' or '1'='1", "a".repeat(50)), &"G".repeat(64)] {
            assert!(validate_config_hash(bad).is_err(), "{bad:?}");
        }
    }
}
