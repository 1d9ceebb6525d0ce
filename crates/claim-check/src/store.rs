//! The S3-backed claim-check store.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use service_kit::Secret;
use sha2::{Digest, Sha256};
use tracing::debug;

use contracts::ClaimCheck;

use crate::error::StoreError;
use crate::metrics;

/// Size of each part of a multipart upload.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// The largest object a store downloads unless told otherwise
/// ([`ClaimCheckStore::with_max_object_bytes`]).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// S3 settings shared by every FLTS binary (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// S3 endpoint URL (MinIO, garage); unset means AWS itself.
    #[arg(long = "s3-endpoint", env = "S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Region name the server expects (garage: `garage`).
    #[arg(long = "s3-region", env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Access key id.
    #[arg(long = "s3-access-key-id", env = "AWS_ACCESS_KEY_ID", default_value = "")]
    pub access_key_id: String,
    /// Secret access key (never logged).
    #[arg(long = "s3-secret-access-key", env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true, default_value = "")]
    pub secret_access_key: Secret,
    /// Buckets this process may read and write, comma-separated.
    #[arg(
        long = "s3-bucket-allowlist",
        env = "S3_BUCKET_ALLOWLIST",
        value_delimiter = ',',
        default_value = "raw-data,processed-data,mlflow,model-promotion,inference-logs"
    )]
    pub bucket_allowlist: Vec<String>,
    /// Objects larger than this many bytes are uploaded in 8 MiB parts.
    #[arg(long = "s3-multipart-threshold", env = "S3_MULTIPART_THRESHOLD_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub multipart_threshold: usize,
}

impl S3Args {
    /// Credentials are optional on the command line (local `--once` runs need
    /// none) but required to talk to a store: call this before serving.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.access_key_id.is_empty() || self.secret_access_key.expose().is_empty() {
            return Err(StoreError::Config("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set".into()));
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reject keys that could escape a prefix or confuse a log line: empty or
/// over 1024 bytes, a leading `/`, any `..`, or control characters.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        Some("empty key")
    } else if key.len() > 1024 {
        Some("longer than 1024 bytes")
    } else if key.starts_with('/') {
        Some("leading `/`")
    } else if key.contains("..") {
        Some("contains `..`")
    } else if key.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidKey { key: key.escape_debug().to_string(), reason }),
        None => Ok(()),
    }
}

/// Refuse an object location outside the dataset's own prefix: `bucket` must
/// be the one expected (for the topic the claim check came from) and the key
/// must start with `<identifier>/`. Checked before any request, so nothing of
/// a refused object is ever read (or quoted in an error).
pub fn check_dataset_object(
    bucket: &str,
    key: &str,
    expected_bucket: &str,
    identifier: &str,
) -> Result<(), StoreError> {
    let prefix = format!("{identifier}/");
    if bucket != expected_bucket || !key.starts_with(&prefix) || identifier.is_empty() {
        return Err(StoreError::OutsideDataset {
            uri: format!("s3://{}/{}", bucket.escape_debug(), key.escape_debug()),
            bucket: expected_bucket.to_string(),
            prefix,
        });
    }
    validate_key(key)
}

/// [`check_dataset_object`] for a claim check.
pub fn check_dataset_claim(claim: &ClaimCheck, expected_bucket: &str, identifier: &str) -> Result<(), StoreError> {
    check_dataset_object(&claim.bucket, &claim.object, expected_bucket, identifier)
}

/// Verified object storage behind a bucket allowlist.
#[derive(Clone)]
pub struct ClaimCheckStore {
    client: Client,
    allowlist: Vec<String>,
    multipart_threshold: usize,
    max_object_bytes: u64,
}

impl ClaimCheckStore {
    /// Build a client. Path-style addressing and `WhenRequired` checksums make
    /// it work with MinIO and garage (streamed uploads otherwise fail there).
    pub fn new(args: &S3Args) -> Self {
        crate::metrics::init();
        let creds = Credentials::new(&args.access_key_id, args.secret_access_key.expose(), None, None, "flts");
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(args.region.clone()))
            .credentials_provider(creds)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(ep) = &args.endpoint {
            conf = conf.endpoint_url(ep);
        }
        ClaimCheckStore {
            client: Client::from_conf(conf.build()),
            allowlist: args.bucket_allowlist.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect(),
            multipart_threshold: args.multipart_threshold.max(PART_SIZE),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }

    /// Refuse to download objects larger than `max` bytes (an operator limit).
    pub fn with_max_object_bytes(mut self, max: u64) -> Self {
        self.max_object_bytes = max;
        self
    }

    /// The download limit in bytes.
    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// Check bucket and key before any request is made.
    pub fn check_location(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        if !self.allowlist.iter().any(|b| b == bucket) {
            return Err(StoreError::BucketNotAllowed { bucket: bucket.to_string(), allowed: self.allowlist.clone() });
        }
        validate_key(key)
    }

    /// Upload `bytes` and return its claim check.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<ClaimCheck, StoreError> {
        self.check_location(bucket, key)?;
        let claim = ClaimCheck {
            bucket: bucket.to_string(),
            object: key.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        };
        let started = Instant::now();
        let result = if bytes.len() > self.multipart_threshold {
            self.put_multipart(bucket, key, bytes, content_type).await
        } else {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("put", bucket, key, e))
        };
        record("put", started, &result);
        result?;
        metrics::BYTES.with_label_values(&["put"]).inc_by(claim.size);
        debug!(uri = %claim.uri(), size = claim.size, "object stored");
        Ok(claim)
    }

    async fn put_multipart(&self, bucket: &str, key: &str, bytes: Bytes, content_type: &str) -> Result<(), StoreError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify("create_multipart_upload", bucket, key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let parts = self.upload_parts(bucket, key, &upload_id, &bytes).await;
        let completed = match parts {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("complete_multipart_upload", bucket, key, e)),
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Best effort: an abandoned upload only costs storage until the bucket's lifecycle rule.
            let _ = self.client.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
        }
        completed
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        bytes: &Bytes,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let mut parts = Vec::new();
        for (i, start) in (0..bytes.len()).step_by(PART_SIZE).enumerate() {
            let part_number = i as i32 + 1;
            let chunk = bytes.slice(start..(start + PART_SIZE).min(bytes.len()));
            let out = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| classify("upload_part", bucket, key, e))?;
            parts.push(
                CompletedPart::builder().part_number(part_number).set_e_tag(out.e_tag().map(str::to_string)).build(),
            );
        }
        Ok(parts)
    }

    /// Download the object a claim check points at and verify size and SHA-256.
    /// The claim check's size is checked against the store's limit before any
    /// request, and no more than that many bytes are ever read: a larger
    /// object is refused from its `Content-Length` (or as soon as the stream
    /// passes the size), not downloaded first.
    pub async fn get(&self, claim: &ClaimCheck) -> Result<Bytes, StoreError> {
        let (bucket, key) = (&claim.bucket, &claim.object);
        self.check_location(bucket, key)?;
        if claim.size > self.max_object_bytes {
            return Err(StoreError::TooLarge {
                bucket: bucket.clone(),
                key: key.clone(),
                size: claim.size,
                limit: self.max_object_bytes,
            });
        }
        let mismatch = |actual| StoreError::SizeMismatch {
            bucket: bucket.clone(),
            key: key.clone(),
            expected: claim.size,
            actual,
        };
        let bytes = match self.get_bounded(bucket, key, claim.size).await {
            Err(StoreError::TooLarge { size, .. }) => return Err(mismatch(size)),
            other => other?,
        };
        if bytes.len() as u64 != claim.size {
            return Err(mismatch(bytes.len() as u64));
        }
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&claim.sha256) {
            return Err(StoreError::ChecksumMismatch {
                bucket: bucket.clone(),
                key: key.clone(),
                expected: claim.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Download an object without a claim check (raw inputs, pointers), up to
    /// the store's limit.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Bytes, StoreError> {
        self.get_object_max(bucket, key, self.max_object_bytes).await
    }

    /// Download an object of at most `max` bytes (and the store's limit): a
    /// larger one is refused with [`StoreError::TooLarge`] before its body is read.
    pub async fn get_object_max(&self, bucket: &str, key: &str, max: u64) -> Result<Bytes, StoreError> {
        self.check_location(bucket, key)?;
        self.get_bounded(bucket, key, max.min(self.max_object_bytes)).await
    }

    /// GET with a bounded, streaming read of the body.
    async fn get_bounded(&self, bucket: &str, key: &str, max: u64) -> Result<Bytes, StoreError> {
        let started = Instant::now();
        let too_large = |size| StoreError::TooLarge { bucket: bucket.into(), key: key.into(), size, limit: max };
        let result = async {
            let mut out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| classify("get", bucket, key, e))?;
            let declared = out.content_length().map(|n| n.max(0) as u64);
            if let Some(size) = declared.filter(|&n| n > max) {
                // Dropping the body closes the connection: nothing more is read.
                return Err(too_large(size));
            }
            let transport = |e: &dyn std::fmt::Display| StoreError::Transport {
                op: "get",
                bucket: bucket.to_string(),
                key: key.to_string(),
                message: e.to_string(),
            };
            let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(max) as usize);
            while let Some(chunk) = out.body.try_next().await.map_err(|e| transport(&e))? {
                if (buf.len() + chunk.len()) as u64 > max {
                    return Err(too_large((buf.len() + chunk.len()) as u64));
                }
                buf.extend_from_slice(&chunk);
                metrics::BYTES.with_label_values(&["get"]).inc_by(chunk.len() as u64);
            }
            Ok(buf.freeze())
        }
        .await;
        record("get", started, &result);
        result
    }

    /// The object's size, or `None` when it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<u64>, StoreError> {
        self.check_location(bucket, key)?;
        let started = Instant::now();
        let result = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("head", bucket, key, e));
        record("head", started, &result);
        match result {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keys and sizes under `prefix`, in key order.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        if !prefix.is_empty() {
            self.check_location(bucket, prefix)?;
        } else if !self.allowlist.iter().any(|b| b == bucket) {
            return Err(StoreError::BucketNotAllowed { bucket: bucket.to_string(), allowed: self.allowlist.clone() });
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("list", bucket, prefix, e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    out.push((k.to_string(), obj.size().unwrap_or(0).max(0) as u64));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Delete an object (tests and clean-up; deleting a missing object is fine).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.check_location(bucket, key)?;
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("delete", bucket, key, e))?;
        Ok(())
    }
}

fn record<T>(op: &'static str, started: Instant, result: &Result<T, StoreError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(StoreError::NotFound { .. }) => "not_found",
        Err(_) => "error",
    };
    metrics::REQUESTS.with_label_values(&[op, outcome]).inc();
    metrics::SECONDS.with_label_values(&[op]).observe(started.elapsed().as_secs_f64());
}

fn classify<E>(op: &'static str, bucket: &str, key: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(se) = &err {
        let status = se.raw().status().as_u16();
        let code = se.err().code().unwrap_or("").to_string();
        if status == 404 || code == "NoSuchKey" {
            return StoreError::NotFound { bucket: bucket.to_string(), key: key.to_string() };
        }
        return StoreError::Service {
            op,
            bucket: bucket.to_string(),
            key: key.to_string(),
            status,
            code,
            message: se.err().message().unwrap_or("").to_string(),
        };
    }
    StoreError::Transport {
        op,
        bucket: bucket.to_string(),
        key: key.to_string(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use contracts::error::Classified as _;

    use super::*;

    #[test]
    fn keys_that_escape_or_confuse_are_rejected() {
        for bad in ["", "/abs/key", "a/../b", "..", "x..y", "a\nb", "tab\there", "nul\0"] {
            assert!(validate_key(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["site-1/abc123/train.parquet", "a.b/c_d-e.json", "inference-logs/x/20260101/r.jsonl"] {
            assert!(validate_key(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn claim_checks_may_only_name_their_own_dataset() {
        let claim = |bucket: &str, object: &str| ClaimCheck {
            bucket: bucket.into(),
            object: object.into(),
            size: 1,
            sha256: "00".into(),
        };
        assert!(
            check_dataset_claim(&claim("processed-data", "site-1/h/train.parquet"), "processed-data", "site-1").is_ok()
        );
        for (bucket, object) in [
            ("processed-data", "site-2/h/train.parquet"),
            ("processed-data", "site-1-other/h/train.parquet"),
            ("processed-data", "site-1"),
            ("inference-logs", "site-1/h/results.jsonl"),
            ("processed-data", "site-1/../site-2/train.parquet"),
        ] {
            let e = check_dataset_claim(&claim(bucket, object), "processed-data", "site-1").unwrap_err();
            assert!(matches!(e, StoreError::OutsideDataset { .. } | StoreError::InvalidKey { .. }), "{e}");
            assert!(!e.is_retryable());
        }
        let e = check_dataset_claim(&claim("inference-logs", "x/y"), "processed-data", "site-1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3://inference-logs/x/y is not under this dataset's prefix s3://processed-data/site-1/: \
             a claim check may only name the dataset's own objects"
        );
        assert_eq!(e.code(), "bad_data");
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
