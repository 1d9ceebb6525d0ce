//! Store errors, each with its code and whether a retry can help ([`Classified`]).

use contracts::error::{Classified, Code};

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

/// Each variant's code; S3 trouble (unreachable, 5xx, 408, 429) is the one retryable case.
impl Classified for StoreError {
    fn code(&self) -> Code {
        match self {
            StoreError::Config(_) => Code::S3Config,
            StoreError::BucketNotAllowed { .. } => Code::BucketNotAllowed,
            StoreError::InvalidKey { .. } => Code::InvalidKey,
            StoreError::OutsideDataset { .. } => Code::BadData,
            StoreError::TooLarge { .. } => Code::ObjectTooLarge,
            StoreError::NotFound { .. } => Code::ObjectNotFound,
            StoreError::SizeMismatch { .. } => Code::SizeMismatch,
            StoreError::ChecksumMismatch { .. } => Code::ChecksumMismatch,
            StoreError::Service { status, .. } if *status >= 500 || *status == 429 || *status == 408 => {
                Code::S3Unavailable
            }
            StoreError::Service { .. } => Code::S3ServiceError,
            StoreError::Transport { .. } => Code::S3Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16) -> StoreError {
        StoreError::Service {
            op: "get",
            bucket: "b".into(),
            key: "k".into(),
            status,
            code: "X".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn s3_trouble_is_retryable_s3_unavailable_and_refusals_are_permanent() {
        for status in [500, 503, 408, 429] {
            let e = service(status);
            assert_eq!((e.code(), e.is_retryable()), (Code::S3Unavailable, true), "{status}");
        }
        for status in [400, 403] {
            let e = service(status);
            assert_eq!((e.code(), e.is_retryable()), (Code::S3ServiceError, false), "{status}");
        }
        let away = StoreError::Transport { op: "put", bucket: "b".into(), key: "k".into(), message: "refused".into() };
        assert_eq!((away.code(), away.is_retryable()), (Code::S3Unavailable, true));
        let gone = StoreError::NotFound { bucket: "b".into(), key: "k".into() };
        assert_eq!((gone.code(), gone.is_retryable()), (Code::ObjectNotFound, false));
    }
}
