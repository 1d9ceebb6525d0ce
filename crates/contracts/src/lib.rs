//! FLTS message contracts: the vocabulary every stage speaks on Kafka.
//!
//! Every message is JSON with a version field `v` (this crate reads and writes
//! `v = 1`) and the dataset `identifier`. Bulk data never travels on Kafka: a
//! [`ClaimCheck`] points at an S3 object and carries its size and SHA-256, which
//! the reader verifies.
//!
//! # Layout
//! - [`topics`]: topic names and the DLQ naming rule.
//! - [`topology`]: the shape of the system as data: stages, groups, topics, DLQs, buckets.
//! - [`messages`]: one struct per topic (seed 002 fields plus what FLTS adds).
//! - [`promotion`]: the promotion objects (decision, pointer, sequence), their
//!   keys, how inference confirms a model-selected record, model size limits.
//! - [`ensemble`]: the ensemble artifact manifest eval writes and inference serves.
//! - [`error`]: the one error policy: every machine [`error::Code`] with its
//!   retry policy and meaning, and the [`error::Classified`] trait errors implement.
//! - [`version`]: the `v` field, which rejects any version but 1 with a clear error.
//! - [`decode`]: [`decode`](decode::decode) turns raw bytes into a message or a
//!   [`DecodeError`] that names the offending field.
//! - [`schema`]: JSON Schema generation; `schemas/*.schema.json` in the repo are
//!   generated from these types and a test keeps them equal.
//!
//! Unknown extra fields are tolerated (a newer producer may add fields), missing
//! required fields and a wrong `v` are decode errors.

pub mod decode;
pub mod ensemble;
pub mod error;
pub mod messages;
pub mod promotion;
pub mod schema;
pub mod topics;
pub mod topology;
pub mod version;

pub use decode::{DecodeError, decode};
pub use messages::*;
pub use version::V1;
