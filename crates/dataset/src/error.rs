//! Dataset errors. Problems with an input name the file, the row and the
//! column; none of them is retryable (the same bytes fail the same way).

use std::fmt;

/// A data row of an input file, counted from 1; CSV rows also give the line
/// (the header is line 1), which is what an editor shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// 0-based index among the data rows.
    pub index: usize,
    /// Whether the file is CSV with a header line.
    pub csv: bool,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.csv {
            write!(f, "row {} (line {})", self.index + 1, self.index + 2)
        } else {
            write!(f, "row {}", self.index + 1)
        }
    }
}

/// Reading or writing a dataset failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{file}: the file is empty")]
    EmptyFile { file: String },
    #[error("{file}: no data rows")]
    NoRows { file: String },
    #[error("{file}: column `{column}` not found (columns: {available:?})")]
    MissingColumn { file: String, column: String, available: Vec<String> },
    #[error("{file}: {row}, column `{column}`: {problem}")]
    BadTimestamp { file: String, row: Row, column: String, problem: String },
    #[error("{file}: {row}, column `{column}`: {ms} ms is outside the years 1 to 9999")]
    TimestampOutOfRange { file: String, row: Row, column: String, ms: i64 },
    #[error("{file}: {row}, column `{column}`: `{value}` is not a number")]
    NotNumeric { file: String, row: Row, column: String, value: String },
    #[error(
        "{file}: no timestamp column: none is named time, timestamp, datetime, date, ds, ts, date_time or time_stamp, and {why}; \
         set timestamp_column (columns: {columns:?})"
    )]
    NoTimestampColumn { file: String, why: &'static str, columns: Vec<String> },
    #[error("{file}: cannot tell which column is the timestamp: {candidates:?} {why}; set timestamp_column")]
    AmbiguousTimestampColumn { file: String, why: &'static str, candidates: Vec<String> },
    #[error("{file}: column `{column}` has type {dtype}, which is not {expected}")]
    UnsupportedType { file: String, column: String, dtype: String, expected: &'static str },
    #[error("{file}: {what} is over the limit {limit} = {max}")]
    OverLimit { file: String, what: String, limit: &'static str, max: u64, value: u64 },
    #[error("{file}: column `{column}` appears more than once in the header")]
    DuplicateColumn { file: String, column: String },
    #[error("{file}: cannot read {format}: {message}")]
    Read { file: String, format: &'static str, message: String },
    #[error("cannot write Parquet: {0}")]
    Write(String),
    #[error("processed Parquet has no `{key}` key-value metadata")]
    MissingMetadata { key: &'static str },
    #[error("processed Parquet metadata `{key}` is invalid: {message}")]
    BadMetadata { key: &'static str, message: String },
    #[error("processed data: column `{column}` row {row} is {value}; processed data must be finite")]
    NotFinite { column: String, row: usize, value: f64 },
    #[error("processed data: timestamp at row {row} ({ts}) is not after the one before ({prev})")]
    NotIncreasing { row: usize, prev: i64, ts: i64 },
    #[error("processed data: columns {actual:?} are not the features {expected:?} in order")]
    ColumnsNotFeatures { expected: Vec<String>, actual: Vec<String> },
    #[error(transparent)]
    Series(#[from] series::SeriesError),
}

impl DatasetError {
    /// Whether the bytes are not readable as their format at all (truncated,
    /// corrupt), as opposed to a readable file whose contents are refused
    /// (bad values, missing or duplicate columns, over a limit).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, DatasetError::Read { .. } | DatasetError::EmptyFile { .. })
    }

    /// Whether the input is refused for what it claims or holds rather than
    /// for its syntax: over a [`ReadLimits`](crate::ReadLimits) limit, a
    /// column named twice, a timestamp outside the years 1 to 9999. Stages
    /// dead-letter these as `bad_data`.
    pub fn is_hostile(&self) -> bool {
        matches!(
            self,
            DatasetError::OverLimit { .. }
                | DatasetError::DuplicateColumn { .. }
                | DatasetError::TimestampOutOfRange { .. }
        )
    }
}
