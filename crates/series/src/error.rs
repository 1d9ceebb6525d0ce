//! Errors of the series crate. Every message names the column, row or size
//! that is wrong; none is retryable (the same data fails the same way).

/// A frame, scaler, window or metric computation cannot proceed.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("column `{column}` not found (columns: {available:?})")]
    MissingColumn { column: String, available: Vec<String> },
    #[error("column `{column}` appears twice")]
    DuplicateColumn { column: String },
    #[error("column `{column}` has {actual} values but the frame has {expected} timestamps")]
    ColumnLength { column: String, expected: usize, actual: usize },
    #[error("target `{target}` is not among the features {features:?}")]
    TargetNotFeature { target: String, features: Vec<String> },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("column `{column}` row {row} is {value}: only finite numbers can be {action}")]
    NonFinite { column: String, row: usize, value: f64, action: &'static str },
    #[error("scaler has no column `{column}` (scaled columns: {available:?})")]
    UnknownScalerColumn { column: String, available: Vec<String> },
    #[error("invalid scaler column `{column}`: {reason}")]
    InvalidScaler { column: String, reason: String },
    #[error("invalid scaler JSON: {0}")]
    ScalerJson(#[source] serde_json::Error),
    #[error("invalid window: input_len = {input_len} and output_len = {output_len} must both be at least 1")]
    InvalidWindowSpec { input_len: usize, output_len: usize },
    #[error("series has {rows} rows; one window needs input_len+output_len = {needed} ({input_len}+{output_len})")]
    TooShort { rows: usize, needed: usize, input_len: usize, output_len: usize },
    #[error("validation fraction must be in [0, 1), got {0}")]
    InvalidFraction(f64),
    #[error("{what}: expected {expected} values, got {actual}")]
    Shape { what: String, expected: usize, actual: usize },
    #[error("{what} would not fit in memory")]
    TooLarge { what: String },
    #[error("no windows to {0}")]
    NoWindows(&'static str),
    #[error("sampling interval must be a positive number of milliseconds, got {0}")]
    InvalidInterval(i64),
}
