//! The claim-check store against the real S3 server (garage): round trip
//! with checksum verification, corruption detection, multipart, and keys or
//! buckets rejected before any request.

use bytes::Bytes;
use claim_check::{ClaimCheckStore, StoreError};
use contracts::error::Classified as _;
use flts_tests::*;

const BUCKET: &str = "processed-data";

#[tokio::test]
async fn claim_check_round_trip_verifies_size_and_checksum() {
    let store = ClaimCheckStore::new(&stack().s3);
    let key = format!("{}/train.parquet", unique("test-roundtrip"));
    let data = Bytes::from((0..100_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>());
    let claim = store.put(BUCKET, &key, data.clone(), "application/octet-stream").await.expect("put");
    assert_eq!(claim.size, data.len() as u64);
    assert_eq!(claim.sha256, claim_check::sha256_hex(&data));
    assert_eq!(claim.uri(), format!("s3://{BUCKET}/{key}"));
    assert_eq!(store.get(&claim).await.expect("verified get"), data);
    assert_eq!(store.head(BUCKET, &key).await.expect("head"), Some(data.len() as u64));
    let prefix = key.rsplit_once('/').map(|(p, _)| format!("{p}/")).unwrap_or_default();
    let listed = store.list(BUCKET, &prefix).await.expect("list");
    assert_eq!(listed, vec![(key.clone(), data.len() as u64)]);
}

#[tokio::test]
async fn corrupted_object_is_detected() {
    let store = ClaimCheckStore::new(&stack().s3);
    let key = format!("{}/scaler.json", unique("test-corrupt"));
    let claim =
        store.put(BUCKET, &key, Bytes::from_static(b"{\"kind\":\"minmax\"}"), "application/json").await.expect("put");
    // Same size, different content: only the checksum can tell.
    store.put(BUCKET, &key, Bytes::from_static(b"{\"kind\":\"MINMAX\"}"), "application/json").await.expect("overwrite");
    match store.get(&claim).await {
        Err(e @ StoreError::ChecksumMismatch { .. }) => {
            assert!(!e.is_retryable());
            assert_eq!(e.code(), "checksum_mismatch");
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // Different size: caught before hashing.
    store.put(BUCKET, &key, Bytes::from_static(b"{}"), "application/json").await.expect("overwrite");
    assert!(matches!(store.get(&claim).await, Err(StoreError::SizeMismatch { expected: 17, actual: 2, .. })));
}

#[tokio::test]
async fn missing_object_is_not_found_and_not_retryable() {
    let store = ClaimCheckStore::new(&stack().s3);
    let key = format!("{}/nothing-here", unique("test-missing"));
    let err = store.get_object(BUCKET, &key).await.expect_err("no such object");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(store.head(BUCKET, &key).await.expect("head"), None);
}

#[tokio::test]
async fn large_object_goes_up_in_parts() {
    let store = ClaimCheckStore::new(&stack().s3);
    let key = format!("{}/big.bin", unique("test-multipart"));
    // 20 MiB > the 16 MiB threshold: three 8 MiB parts.
    let data = Bytes::from((0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let claim = store.put(BUCKET, &key, data.clone(), "application/octet-stream").await.expect("multipart put");
    assert_eq!(store.get(&claim).await.expect("verified get").len(), data.len());
}

#[tokio::test]
async fn bad_keys_and_buckets_are_rejected_before_any_request() {
    // A store pointed at a closed port: a request would fail with a transport
    // error, so the errors below prove nothing was sent.
    let mut args = stack().s3.clone();
    args.endpoint = Some("http://127.0.0.1:9".into());
    let store = ClaimCheckStore::new(&args);
    for key in ["../../etc/passwd", "a/../b", "/abs", "line\nbreak"] {
        let err = store.put(BUCKET, key, Bytes::from_static(b"x"), "text/plain").await.expect_err("rejected");
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{key:?}: {err:?}");
        assert!(!err.is_retryable());
    }
    let err = store.get_object("not-allowed", "k").await.expect_err("bucket not on allowlist");
    assert!(matches!(err, StoreError::BucketNotAllowed { .. }), "{err:?}");
    // And the real server really is unreachable there (the check above is meaningful).
    let err = store.get_object(BUCKET, "fine-key").await.expect_err("closed port");
    assert!(err.is_retryable(), "{err:?}");
}
