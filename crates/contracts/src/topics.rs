//! Topic and consumer-group names (seed 002), and the DLQ naming rule.

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

/// Every pipeline topic; each has a `DLQ-<topic>` twin.
pub const PIPELINE_TOPICS: [&str; 6] =
    [TRAINING_DATA, INFERENCE_DATA, MODEL_TRAINING, MODEL_SELECTED, PERFORMANCE_EVAL, PREPROCESS_REQUESTS];

/// Seed 002's preprocess dead-letter topic (named after the stage, not a topic).
pub const DLQ_PREPROCESS: &str = "DLQ-preprocess";

/// Prefix of every dead-letter topic.
pub const DLQ_PREFIX: &str = "DLQ-";

/// The dead-letter topic of `topic`: `DLQ-<topic>`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{DLQ_PREFIX}{topic}")
}

/// Every topic the pipeline needs: the pipeline topics, their DLQs, and DLQ-preprocess.
pub fn all_topics() -> Vec<String> {
    let mut all: Vec<String> = PIPELINE_TOPICS.iter().map(|t| t.to_string()).collect();
    all.extend(PIPELINE_TOPICS.iter().map(|t| dlq_topic(t)));
    all.push(DLQ_PREPROCESS.to_string());
    all
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
}
