//! The one error policy: every failure a stage or library reports carries a
//! stable machine [`Code`] and says whether retrying can help ([`Classified`]).
//!
//! The codes are listed once, in [`codes!`] below: the code as it appears in
//! DLQ envelopes (`error.code`), logs and metric labels, its retry [`Policy`]
//! and a one-line meaning. `docs/reliability.md` ("Error codes") carries the
//! same table, and a unit test compares the two row by row.
//!
//! A library error implements [`Classified`] by naming a code per variant;
//! `kafka_utils::HandlerError` is built from any [`Classified`] error (a
//! blanket `From`), so a stage's handler writes `?` instead of mapping by hand.

use std::fmt;

/// Whether a failure with a given code may pass when tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// A dependency is unavailable or slow: retry with backoff.
    Retryable,
    /// Trying again fails the same way: dead-letter at once.
    Permanent,
    /// Depends on the cause the error carries (a broker that is down is
    /// retryable, one that refuses the message for good is not): the error's
    /// own [`Classified::is_retryable`] decides.
    ByCause,
}

impl Policy {
    /// The word the table in `docs/reliability.md` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Retryable => "retryable",
            Policy::Permanent => "permanent",
            Policy::ByCause => "by cause",
        }
    }
}

/// An error with a stable code and a retry decision.
///
/// Implement [`code`](Classified::code); override
/// [`is_retryable`](Classified::is_retryable) only for codes whose policy is
/// [`Policy::ByCause`] (for the others it follows the code's policy, and
/// `kafka_utils::HandlerError` ignores an override that disagrees).
pub trait Classified: std::error::Error {
    /// The stable machine code of this failure.
    fn code(&self) -> Code;
    /// Whether the same call may succeed later.
    fn is_retryable(&self) -> bool {
        self.code().policy() == Policy::Retryable
    }
}

macro_rules! codes {
    ($( $(#[$attr:meta])* $variant:ident = $name:literal, $policy:ident, $meaning:literal; )*) => {
        /// Every machine code FLTS reports (DLQ `error.code`, logs, metric labels).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$attr])* #[doc = $meaning] $variant, )*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as it appears on the wire and in metric labels.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// Whether a failure with this code may pass when tried again.
            pub const fn policy(self) -> Policy {
                match self { $(Code::$variant => Policy::$policy,)* }
            }

            /// What the code means, in one line.
            pub const fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    // The consumer loop and Kafka.
    Decode = "decode", Permanent, "the payload is not a valid message (not UTF-8 or JSON, wrong schema, wrong `v`, invalid identifier)";
    Cancelled = "cancelled", Retryable, "shutdown interrupted the work; the record is delivered again, never dead-lettered";
    HandlerPanic = "handler_panic", Permanent, "the stage's handler panicked (a bug)";
    BadData = "bad_data", Permanent, "readable input refused for what it is or claims: over a limit, inconsistent or non-finite values, another dataset's object, an oversized key or headers";
    PublishFailed = "publish_failed", ByCause, "the broker did not acknowledge an output (retryable while it is unavailable, permanent when it refuses the message)";
    KafkaUnavailable = "kafka_unavailable", Retryable, "the Kafka cluster cannot be reached (admin requests)";
    TopicCreateFailed = "topic_create_failed", Permanent, "the broker refused to create a topic";
    EncodeFailed = "encode_failed", Permanent, "a value could not be serialized (a bug)";
    UnexpectedTopic = "unexpected_topic", Permanent, "a record arrived from a topic the stage does not read";
    BadConfig = "bad_config", Permanent, "a setting or a request's config is out of range";
    // S3 (claim checks).
    S3Config = "s3_config", Permanent, "the S3 settings are unusable";
    BucketNotAllowed = "bucket_not_allowed", Permanent, "a claim check names a bucket off the allowlist";
    InvalidKey = "invalid_key", Permanent, "an object key is unsafe (`..`, absolute, control characters); refused before any request";
    ObjectTooLarge = "object_too_large", Permanent, "an object (or its claim check) is over the download limit";
    ObjectNotFound = "object_not_found", Permanent, "the object a claim check or request names does not exist";
    SizeMismatch = "size_mismatch", Permanent, "the object's size differs from its claim check";
    ChecksumMismatch = "checksum_mismatch", Permanent, "the object's SHA-256 differs from its claim check";
    S3ServiceError = "s3_service_error", Permanent, "S3 refused the request (an HTTP 4xx other than 404, 408 and 429)";
    S3Unavailable = "s3_unavailable", Retryable, "S3 cannot be reached or answers 5xx, 408 or 429";
    // MLflow.
    MlflowUnavailable = "mlflow_unavailable", Retryable, "MLflow cannot be reached or answers 5xx, 429 or TEMPORARILY_UNAVAILABLE";
    MlflowError = "mlflow_error", Permanent, "MLflow refused the call or answered something unexpected";
    RunNotFound = "run_not_found", Permanent, "MLflow has no such run (or other resource)";
    BadFilter = "bad_filter", Permanent, "a value cannot be quoted safely in an MLflow search filter";
    // Preprocess.
    BadRequest = "bad_request", Permanent, "a preprocess request is invalid";
    BadInput = "bad_input", Permanent, "the raw input file cannot be read as CSV or Parquet";
    InputTooLarge = "input_too_large", Permanent, "the raw input is larger than MAX_INPUT_BYTES";
    InputUnreadable = "input_unreadable", Permanent, "a local input path cannot be read";
    OutputUnwritable = "output_unwritable", Permanent, "a local output path cannot be written";
    TaskFailed = "task_failed", Permanent, "a blocking processing task failed (a bug)";
    // Trainers.
    BadParquet = "bad_parquet", Permanent, "a processed part cannot be read or breaks the processed-data contract (e.g. non-finite values)";
    ConfigHashMismatch = "config_hash_mismatch", Permanent, "a processed part belongs to another config than its claim check";
    TooFewRows = "too_few_rows", Permanent, "the series is too short for one training window";
    TrainingFailed = "training_failed", Permanent, "the model could not be fitted on this data";
    NanLoss = "nan_loss", Permanent, "the training loss became NaN or infinite";
    TrainerPanic = "trainer_panic", Permanent, "the fit panicked (a bug)";
    BadPredictions = "bad_predictions", Permanent, "the fitted model's test forecasts cannot be evaluated";
    BadSuccessArtifact = "bad_success_artifact", Permanent, "an earlier finished run's success.json is unreadable";
    // Eval and promotion: model-training events checked against their MLflow run.
    InvalidIdentifier = "invalid_identifier", Permanent, "an identifier is not 1-128 characters of `A-Z a-z 0-9 . _ -`";
    InvalidConfigHash = "invalid_config_hash", Permanent, "a config hash is not 64 lower-case hex digits";
    UnverifiableEvent = "unverifiable_event", Permanent, "a model-training event names no MLflow run id, so it cannot be checked";
    RunNotInExperiment = "run_not_in_experiment", Permanent, "the event's run is not in the trainers' experiment";
    RunMismatch = "run_mismatch", Permanent, "the event's run has other set tags or another status than the event says";
    RunNotFinished = "run_not_finished", Permanent, "a SUCCESS names a run that did not finish";
    MetricsMismatch = "metrics_mismatch", Permanent, "the event's test metrics differ from the run's";
    MetricsMissing = "metrics_missing", Permanent, "the run has no usable test metric in MLflow";
    ArtifactMismatch = "artifact_mismatch", Permanent, "the event's artifact root differs from the run's";
    ModelMismatch = "model_mismatch", Permanent, "the event's model, baselines or protocol differ from the run's success.json";
    DigestMismatch = "digest_mismatch", Permanent, "a model file or digest differs from the SHA-256 recorded at training";
    DigestMissing = "digest_missing", Permanent, "the run has no valid model digest tag";
    SuccessMissing = "success_missing", Permanent, "the run has no readable success.json";
    CorruptState = "corrupt_state", Permanent, "a state object in the promotion bucket cannot be read";
    // Monitor.
    BadMetrics = "bad_metrics", Permanent, "a performance-eval record's error metric is not a finite non-negative number";
    RetrainScan = "retrain_scan", Retryable, "the preprocess-requests topic could not be scanned for the request to retrain from";
    // Inference.
    NoModel = "no_model", Retryable, "no model is served for the identifier yet";
    UnconfirmedPromotion = "unconfirmed_promotion", Permanent, "a model-selected record that eval's pointer does not confirm";
    InvalidModel = "invalid_model", Permanent, "the promoted artifacts cannot make a model (URI, file, scaler or shapes)";
    BadTestData = "bad_test_data", Permanent, "the data cannot be forecast with this model (shape, columns, too short)";
    ModelFailed = "model_failed", Permanent, "the model failed while forecasting";
}

impl Code {
    /// The code named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Code> for String {
    fn from(c: Code) -> String {
        c.as_str().to_string()
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Decode errors are [`Code::Decode`].
impl Classified for crate::DecodeError {
    fn code(&self) -> Code {
        Code::Decode
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let names: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len(), "a code is listed twice");
        for c in Code::ALL {
            let name = c.as_str();
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is not snake_case"
            );
            assert_eq!(Code::parse(name), Some(*c));
            assert!(!c.meaning().is_empty());
        }
        assert_eq!(Code::parse("produce"), None, "renamed to publish_failed");
    }

    /// The rows of the table under `## Error codes` in docs/reliability.md:
    /// code -> (policy, meaning), cells unquoted from their backticks.
    fn doc_table(doc: &str) -> BTreeMap<String, (String, String)> {
        let section = doc.split("\n## Error codes").nth(1).expect("docs/reliability.md has a section `## Error codes`");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut rows = BTreeMap::new();
        let mut header_seen = false;
        for line in section.lines().map(str::trim).filter(|l| l.starts_with('|')) {
            if line.chars().all(|ch| matches!(ch, '|' | '-' | ':' | ' ')) {
                continue; // the delimiter row
            }
            let mut cells: Vec<String> = line.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect();
            if let Some(code) = cells.first_mut() {
                *code = code.trim_matches('`').to_string();
            }
            if !header_seen {
                assert_eq!(cells, ["code", "policy", "meaning"], "the table's header");
                header_seen = true;
                continue;
            }
            assert_eq!(cells.len(), 3, "row {line:?} has {} cells", cells.len());
            let previous = rows.insert(cells[0].clone(), (cells[1].clone(), cells[2].clone()));
            assert!(previous.is_none(), "{} is listed twice in the doc", cells[0]);
        }
        rows
    }

    #[test]
    fn the_reliability_doc_lists_exactly_these_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reliability.md");
        let doc = std::fs::read_to_string(path).expect("docs/reliability.md");
        let documented = doc_table(&doc);
        let ours: BTreeMap<String, (String, String)> = Code::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), (c.policy().as_str().to_string(), c.meaning().to_string())))
            .collect();
        let (doc_codes, our_codes): (BTreeSet<&String>, BTreeSet<&String>) =
            (documented.keys().collect(), ours.keys().collect());
        assert_eq!(
            doc_codes.difference(&our_codes).collect::<Vec<_>>(),
            Vec::<&&String>::new(),
            "codes in the doc but not in contracts::error::Code"
        );
        assert_eq!(
            our_codes.difference(&doc_codes).collect::<Vec<_>>(),
            Vec::<&&String>::new(),
            "codes in contracts::error::Code but not in the doc"
        );
        for (code, (policy, meaning)) in &ours {
            let (doc_policy, doc_meaning) = &documented[code];
            assert_eq!(doc_policy, policy, "policy of {code}");
            assert_eq!(doc_meaning, meaning, "meaning of {code}");
        }
    }

    #[test]
    fn the_table_parser_reads_rows_not_substrings() {
        let doc = "x\n## Error codes\n\n| code | policy | meaning |\n|---|---|---|\n| `a` | permanent | one |\n\
                   | `b` | retryable | two, `quoted` |\n\n## Next\n| `c` | permanent | elsewhere |\n";
        let rows = doc_table(doc);
        assert_eq!(rows.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(rows["b"], ("retryable".to_string(), "two, `quoted`".to_string()));
    }

    #[test]
    fn the_default_retry_decision_follows_the_policy() {
        #[derive(Debug, thiserror::Error)]
        #[error("e")]
        struct E(Code);
        impl Classified for E {
            fn code(&self) -> Code {
                self.0
            }
        }
        assert!(E(Code::S3Unavailable).is_retryable());
        assert!(!E(Code::ObjectNotFound).is_retryable());
        assert!(!E(Code::PublishFailed).is_retryable(), "by cause: the error must say");
        assert_eq!(Code::S3Unavailable, "s3_unavailable");
    }
}
