//! Parked inference-data requests.
//!
//! In the pipeline preprocess publishes a test set long before eval promotes a
//! model for it. Such a request is not an error: it is written to
//! `<logs bucket>/pending/<identifier>/<config_hash>-<digest>.json` *before*
//! its offset is committed, and run when a model for the identifier is
//! installed (a promotion, a fast-path SUCCESS, or `current.json` at
//! start-up); the object is deleted after the results and the
//! performance-eval summary are durable. A restart between the request and
//! the promotion therefore loses nothing, and a crash after the run but
//! before the delete runs it again at the next promotion (at least once; the
//! result objects are overwritten, not duplicated).
//!
//! With several replicas each one sees every promotion and drains `pending/`,
//! so a request parked once can run on more than one replica at the same
//! time: the result objects are the same (overwritten), but performance-eval
//! can then carry one summary per replica. Exactly once holds per replica,
//! across its restarts.
//!
//! The key depends only on the message, so a redelivered request overwrites
//! its own parked copy. Keys end in `.json`; the results of an identifier
//! named `pending` (`pending/<YYYYMMDD>/...jsonl|png`) never do.

use chrono::{DateTime, Utc};
use contracts::InferenceData;
use serde::{Deserialize, Serialize};

/// Top-level prefix of parked requests in the logs bucket.
pub const PREFIX: &str = "pending";

/// A parked request: the claim check and where it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    /// Topic, partition and offset it was read from (for a DLQ envelope if it later fails for good).
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub parked_at: DateTime<Utc>,
    pub request: InferenceData,
}

/// `pending/<identifier>/`: every request parked for `identifier`.
pub fn prefix(identifier: &str) -> String {
    format!("{PREFIX}/{identifier}/")
}

/// The object key of `request` parked: the same message always gets the same key.
pub fn key(request: &InferenceData) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    let digest = claim_check::sha256_hex(&canonical);
    format!("{}{}-{}.json", prefix(&request.identifier), request.config_hash, &digest[..16])
}

/// Whether a listed key is a parked request (not a result of an identifier named `pending`).
pub fn is_parked_key(key: &str) -> bool {
    key.starts_with(&format!("{PREFIX}/")) && key.ends_with(".json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{ClaimCheck, V1};

    fn request(identifier: &str, created_at: DateTime<Utc>) -> InferenceData {
        let claim = |object: &str| ClaimCheck {
            bucket: "processed-data".into(),
            object: object.into(),
            size: 10,
            sha256: "ab".repeat(32),
        };
        InferenceData {
            v: V1,
            identifier: identifier.into(),
            config_hash: "cfg1".into(),
            test: claim("site/cfg1/test.parquet"),
            scaler: claim("site/cfg1/scaler.json"),
            created_at,
        }
    }

    #[test]
    fn keys_depend_only_on_the_message() {
        let t = Utc::now();
        let a = key(&request("site", t));
        assert_eq!(a, key(&request("site", t)), "a redelivery overwrites its parked copy");
        assert!(a.starts_with("pending/site/cfg1-") && a.ends_with(".json"), "{a}");
        assert!(is_parked_key(&a));
        claim_check::validate_key(&a).expect("a valid S3 key");
        assert_ne!(a, key(&request("site", t + chrono::Duration::milliseconds(1))), "a new request parks beside it");
        // Results of an identifier called `pending` are not parked requests.
        assert!(!is_parked_key("pending/20260101/cfg1-run.jsonl"));
        assert!(!is_parked_key("pending/20260101/cfg1-run.png"));
        assert!(!is_parked_key("site/20260101/cfg1-run.json"));
    }
}
