//! FLTS dataset I/O. polars lives in this crate only; the public API speaks
//! [`series::Frame`] and bytes, never polars types.
//!
//! # Layout
//! - [`processed`]: [`write_processed`] and [`read_processed`], the processed
//!   Parquet of `docs/data-contract.md` (Int64 `timestamp`, Float64 features,
//!   `flts.*` key-value metadata, zstd).
//! - [`raw`]: [`read_raw`], raw CSV or Parquet input with a timestamp column in
//!   a common format (ISO 8601, epoch numbers, a given `strftime` format) and
//!   numeric columns; errors name the file, row and column.
//! - [`timestamp`]: the timestamp parsers behind [`raw`].
//! - [`limits`]: [`ReadLimits`], checked against a Parquet footer and page
//!   headers or a CSV header before anything is decoded.
//! - [`generate`]: a deterministic generator of realistic multi-column base
//!   station traffic for demos, tests and benches.
//! - [`error`]: [`DatasetError`], whose input errors name the file, row and column.

pub mod error;
pub mod generate;
pub mod limits;
pub mod processed;
pub mod raw;
pub mod timestamp;

pub use error::{DatasetError, Row};
pub use limits::ReadLimits;
pub use processed::{
    META_CONFIG, META_CONFIG_HASH, META_GAPS, META_ROLES, META_SCALER, read_processed, read_processed_limited,
    write_processed,
};
pub use raw::{
    RawFormat, RawOptions, TIMESTAMP_NAMES, find_timestamp_column, read_raw, read_raw_numeric, write_raw_csv,
    write_raw_parquet,
};
pub use timestamp::TimestampUnit;
