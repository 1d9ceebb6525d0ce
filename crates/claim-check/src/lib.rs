//! FLTS claim-check store: bulk data lives in S3 (MinIO, garage), Kafka carries
//! only [`ClaimCheck`]s that point at it.
//!
//! - [`ClaimCheckStore::put`] uploads (multipart above a threshold) and returns
//!   the claim check with the object's size and SHA-256.
//! - [`ClaimCheckStore::get`] downloads and verifies size and checksum: a
//!   corrupted or replaced object is an error, never silently used.
//! - Every bucket must be on the allowlist, and a key with `..`, a leading `/`
//!   or control characters is rejected before any request is made.
//! - Downloads are bounded: a claim check whose size is over the store's
//!   limit is refused before any request, and a body longer than the claim
//!   check (or the limit) is refused from its `Content-Length` or, without
//!   one, as soon as the stream passes the bound: never read whole first.
//! - [`check_dataset_claim`]: a claim check may only name its own dataset's
//!   objects (`s3://<bucket>/<identifier>/...`).
//!
//! Configured from env like the AWS tools (`S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`), with path-style addressing, which
//! MinIO and garage need.

mod error;
mod metrics;
mod store;

pub use contracts::ClaimCheck;
pub use error::StoreError;
pub use store::{
    ClaimCheckStore, DEFAULT_MAX_OBJECT_BYTES, S3Args, check_dataset_claim, check_dataset_object, sha256_hex,
    validate_key,
};
