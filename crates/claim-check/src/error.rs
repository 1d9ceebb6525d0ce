//! Store errors, each saying whether a retry can help.

/// A claim-check store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("S3 settings: {0}")]
    Config(String),
    #[error("bucket `{bucket}` is not on the allowlist {allowed:?}")]
    BucketNotAllowed { bucket: String, allowed: Vec<String> },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error(
        "{uri} is not under this dataset's prefix s3://{bucket}/{prefix}: a claim check may only name the dataset's own objects"
    )]
    OutsideDataset { uri: String, bucket: String, prefix: String },
    #[error("object s3://{bucket}/{key} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { bucket: String, key: String, size: u64, limit: u64 },
    #[error("object s3://{bucket}/{key} not found")]
    NotFound { bucket: String, key: String },
    #[error("object s3://{bucket}/{key} has {actual} bytes, claim check says {expected}")]
    SizeMismatch { bucket: String, key: String, expected: u64, actual: u64 },
    #[error("object s3://{bucket}/{key} has SHA-256 {actual}, claim check says {expected}")]
    ChecksumMismatch { bucket: String, key: String, expected: String, actual: String },
    #[error("S3 {op} s3://{bucket}/{key} failed with HTTP {status} {code}: {message}")]
    Service { op: &'static str, bucket: String, key: String, status: u16, code: String, message: String },
    #[error("S3 {op} s3://{bucket}/{key} failed: {message}")]
    Transport { op: &'static str, bucket: String, key: String, message: String },
}

impl StoreError {
    /// Whether the same call may succeed later (server or network trouble).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Service { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            StoreError::Transport { .. } => true,
            _ => false,
        }
    }

    /// Short machine-readable cause (DLQ envelopes, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Config(_) => "s3_config",
            StoreError::BucketNotAllowed { .. } => "bucket_not_allowed",
            StoreError::InvalidKey { .. } => "invalid_key",
            StoreError::OutsideDataset { .. } => "bad_data",
            StoreError::TooLarge { .. } => "object_too_large",
            StoreError::NotFound { .. } => "object_not_found",
            StoreError::SizeMismatch { .. } => "size_mismatch",
            StoreError::ChecksumMismatch { .. } => "checksum_mismatch",
            StoreError::Service { .. } => "s3_service_error",
            StoreError::Transport { .. } => "s3_unavailable",
        }
    }
}
