//! FLTS claim-check store: bulk data lives in S3 (MinIO, garage), Kafka carries
//! only [`ClaimCheck`]s that point at it.
//!
//! - [`ClaimCheckStore::put`] uploads (multipart above a threshold) and returns
//!   the claim check with the object's size and SHA-256.
//! - [`ClaimCheckStore::get`] downloads and verifies size and checksum: a
//!   corrupted or replaced object is an error, never silently used.
//! - Every bucket must be on the allowlist, and a key with `..`, a leading `/`
//!   or control characters is rejected before any request is made.
//!
//! Configured from env like the AWS tools (`S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`), with path-style addressing, which
//! MinIO and garage need.

mod error;
mod metrics;
mod store;

pub use contracts::ClaimCheck;
pub use error::StoreError;
pub use store::{ClaimCheckStore, S3Args, sha256_hex, validate_key};
