//! Preprocess errors, each saying whether a retry can help and giving a
//! short code for the DLQ envelope and metrics.

use claim_check::StoreError;
use kafka_utils::{HandlerError, ProduceError};

use crate::config::ConfigError;

/// A preprocess run failed; nothing was published.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid request: {0}")]
    Request(String),
    #[error(transparent)]
    Input(#[from] dataset::DatasetError),
    #[error("{file}: {size} bytes is larger than max_input_bytes = {limit}")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("{part} part: {message}")]
    Data { part: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Output { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] ProduceError),
    #[error("processing task failed: {0}")]
    Task(String),
}

impl PreprocessError {
    /// Whether the same run may succeed later (S3 or broker trouble).
    pub fn is_retryable(&self) -> bool {
        match self {
            PreprocessError::Store(e) => e.is_retryable(),
            PreprocessError::Publish(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Short machine-readable cause.
    pub fn code(&self) -> &'static str {
        match self {
            PreprocessError::Config(_) => "bad_config",
            PreprocessError::Request(_) => "bad_request",
            // Readable input refused for what it claims (over a limit, a
            // column twice, timestamps beyond year 9999) is bad data.
            PreprocessError::Input(e) if e.is_hostile() => "bad_data",
            PreprocessError::Input(_) => "bad_input",
            PreprocessError::TooLarge { .. } => "input_too_large",
            PreprocessError::Data { .. } => "bad_data",
            PreprocessError::Io { .. } => "input_unreadable",
            PreprocessError::Output { .. } => "output_unwritable",
            PreprocessError::Store(e) => e.code(),
            PreprocessError::Publish(_) => "publish_failed",
            PreprocessError::Task(_) => "task_failed",
        }
    }
}

impl From<PreprocessError> for HandlerError {
    fn from(e: PreprocessError) -> Self {
        let code = e.code();
        HandlerError::classify(e.is_retryable(), code, e)
    }
}
