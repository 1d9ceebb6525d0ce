//! Preprocess errors, each with its code and whether a retry can help
//! ([`Classified`]); a handler turns one into a `HandlerError` with `?`.

use claim_check::StoreError;
use contracts::error::{Classified, Code};
use kafka_utils::ProduceError;

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

/// S3 and broker trouble may pass (their own policies); everything else is
/// about the request or its input and fails again the same way.
impl Classified for PreprocessError {
    fn code(&self) -> Code {
        match self {
            PreprocessError::Config(_) => Code::BadConfig,
            PreprocessError::Request(_) => Code::BadRequest,
            // Readable input refused for what it claims (over a limit, a
            // column twice, timestamps beyond year 9999) is bad data.
            PreprocessError::Input(e) if e.is_hostile() => Code::BadData,
            PreprocessError::Input(_) => Code::BadInput,
            PreprocessError::TooLarge { .. } => Code::InputTooLarge,
            PreprocessError::Data { .. } => Code::BadData,
            PreprocessError::Io { .. } => Code::InputUnreadable,
            PreprocessError::Output { .. } => Code::OutputUnwritable,
            PreprocessError::Store(e) => Classified::code(e),
            PreprocessError::Publish(e) => Classified::code(e),
            PreprocessError::Task(_) => Code::TaskFailed,
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            PreprocessError::Store(e) => e.is_retryable(),
            PreprocessError::Publish(e) => e.is_retryable(),
            _ => false,
        }
    }
}
