//! Raw input: CSV (with a header line) or Parquet bytes with a timestamp
//! column and numeric columns, turned into a [`Frame`] as found (unsorted,
//! gaps and blanks kept as NaN; cleaning is the caller's job).
//!
//! CSV is read by polars with inferred types; when a value does not fit the
//! inferred type, the file is read again as text and every value is parsed
//! here, so that the error can name the row and column.

use std::io::Cursor;

use polars::prelude::{
    Column as PlColumn, CsvParseOptions, CsvReadOptions, DataFrame, DataType, Float64Chunked, Int64Chunked, IntoColumn,
    ParquetCompression, ParquetReader, ParquetWriter, PlSmallStr, SerReader, TimeUnit,
};
use series::{Column, Frame};

use crate::error::{DatasetError, Row};
use crate::limits::{self, ReadLimits};
use crate::timestamp::{MAX_MS, MIN_MS, TimestampUnit, parse_iso, parse_with_format};

/// Rows polars looks at to infer CSV column types.
const INFER_ROWS: usize = 10_000;

/// Names that mark the timestamp column when none is given, in order of
/// preference, compared case-insensitively.
pub const TIMESTAMP_NAMES: [&str; 8] = ["time", "timestamp", "datetime", "date", "ds", "ts", "date_time", "time_stamp"];

/// CSV rows looked at to pick the columns that may hold date-times (each
/// such column is then checked whole).
const DETECT_ROWS: usize = 100;

/// The two input formats, told apart by Parquet's magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    Csv,
    Parquet,
}

impl RawFormat {
    /// Parquet when the bytes start with `PAR1`, CSV otherwise.
    pub fn detect(bytes: &[u8]) -> RawFormat {
        if bytes.starts_with(b"PAR1") { RawFormat::Parquet } else { RawFormat::Csv }
    }

    fn name(self) -> &'static str {
        match self {
            RawFormat::Csv => "CSV",
            RawFormat::Parquet => "Parquet",
        }
    }
}

/// What to read from a raw file.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOptions {
    /// The timestamp column.
    pub timestamp_column: String,
    /// Numeric columns to read, in this order; `None` reads every other column.
    pub columns: Option<Vec<String>>,
    /// A chrono `strftime` format for text timestamps; `None` accepts ISO 8601
    /// (`2018-03-28 15:56:00`, `...T...Z`, offsets) and epoch numbers.
    pub timestamp_format: Option<String>,
    /// Unit of epoch-number timestamps; `None` guesses from the magnitude.
    pub timestamp_unit: Option<TimestampUnit>,
    /// CSV field separator. A CSV whose header line does not contain it is
    /// read with the first of `;`, tab, `|` and `,` that it does contain (see
    /// [`RawOptions::for_file`]).
    pub separator: u8,
    /// Numbers written with a decimal comma (`1234,5`). Set by
    /// [`RawOptions::for_file`] when a CSV separated by something other than
    /// `,` writes its numbers so, as European spreadsheets export them.
    pub decimal_comma: bool,
    /// What the file may claim (rows, columns, decoded bytes), checked
    /// before it is decoded.
    pub limits: ReadLimits,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions {
            timestamp_column: "timestamp".into(),
            columns: None,
            timestamp_format: None,
            timestamp_unit: None,
            separator: b',',
            decimal_comma: false,
            limits: ReadLimits::default(),
        }
    }
}

/// Separators tried, in this order, when a CSV header does not contain the
/// configured one.
const SEPARATORS: [u8; 4] = [b';', b'\t', b'|', b','];

impl RawOptions {
    /// These options for the file `bytes`. A Parquet file is read as they
    /// say. A CSV file whose header line does not contain
    /// [`RawOptions::separator`] is read with the first of [`SEPARATORS`] it
    /// does; and, when the separator is not `,`, with decimal commas if a
    /// field of the first data line is a number written with one. Nothing
    /// else is guessed, and a CSV that fits the options is read exactly as
    /// they say.
    pub fn for_file(&self, bytes: &[u8]) -> RawOptions {
        let mut opts = self.clone();
        if RawFormat::detect(bytes) != RawFormat::Csv {
            return opts;
        }
        let mut lines = bytes.split(|&b| b == b'\n');
        let header = lines.next().unwrap_or_default();
        if !header.contains(&self.separator)
            && let Some(&sep) = SEPARATORS.iter().find(|s| header.contains(s))
        {
            opts.separator = sep;
        }
        if opts.separator != b',' && !opts.decimal_comma {
            let first = String::from_utf8_lossy(lines.next().unwrap_or_default());
            opts.decimal_comma = first.split(opts.separator as char).any(is_decimal_comma_number);
        }
        opts
    }
}

/// `1234,5`, `-0,25`, `"3,0e2"`: digits, one comma, digits, an optional exponent.
fn is_decimal_comma_number(field: &str) -> bool {
    let f = field.trim().trim_matches('"');
    let f = f.strip_prefix(['-', '+']).unwrap_or(f);
    let (mantissa, exponent) = match f.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (f, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    mantissa.split_once(',').is_some_and(|(a, b)| digits(a) && digits(b)) && exponent.is_none_or(digits)
}

/// Read a raw CSV or Parquet file (`file` names it in errors). What the file
/// claims is checked against `opts.limits` before it is decoded, and a panic
/// of the decoder on hostile bytes is an unreadable file, not a crash.
pub fn read_raw(file: &str, bytes: &[u8], opts: &RawOptions) -> Result<Frame, DatasetError> {
    let format = RawFormat::detect(bytes).name();
    crate::limits::no_panic(file, format, || read_raw_inner(file, bytes, opts, false)).map(|(frame, _)| frame)
}

/// [`read_raw`] of every column but the timestamp (`opts.columns` is
/// ignored), leaving out the text columns that hold no number at all (a site
/// name, a cell id, a comment), which it returns by name. A column with some
/// numbers and some text is still an error at its first text value.
pub fn read_raw_numeric(file: &str, bytes: &[u8], opts: &RawOptions) -> Result<(Frame, Vec<String>), DatasetError> {
    let format = RawFormat::detect(bytes).name();
    let opts = RawOptions { columns: None, ..opts.clone() };
    crate::limits::no_panic(file, format, || read_raw_inner(file, bytes, &opts, true))
}

/// The file's column names, once what it claims (sizes, columns) is checked
/// against the limits; nothing is decoded yet. An all-blank file is empty.
fn checked_columns(
    file: &str,
    bytes: &[u8],
    format: RawFormat,
    opts: &RawOptions,
) -> Result<Vec<String>, DatasetError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DatasetError::EmptyFile { file: file.into() });
    }
    match format {
        RawFormat::Csv => {
            let header = csv_header(bytes, opts.separator);
            limits::check_csv(file, &header, bytes, &opts.limits)?;
            Ok(header)
        }
        RawFormat::Parquet => {
            limits::check_parquet(file, bytes, &opts.limits)?;
            let names = parquet_columns(file, bytes)?;
            limits::duplicate_names(file, &names)?;
            Ok(names)
        }
    }
}

fn read_raw_inner(
    file: &str,
    bytes: &[u8],
    opts: &RawOptions,
    skip_text: bool,
) -> Result<(Frame, Vec<String>), DatasetError> {
    let format = RawFormat::detect(bytes);
    let opts = &opts.for_file(bytes);
    // Sizes the file claims are checked before anything is decoded.
    let available = checked_columns(file, bytes, format, opts)?;
    let wanted = select_columns(file, &available, opts)?;
    let reader = Reader { file, format, opts };
    let df = match format {
        RawFormat::Csv => reader.csv(bytes, &wanted, false).or_else(|first| {
            // A value that does not fit the inferred type: read as text, parse here.
            reader.csv(bytes, &wanted, true).map_err(|_| first)
        })?,
        RawFormat::Parquet => reader.parquet(bytes, &wanted)?,
    };
    if df.height() == 0 {
        return Err(DatasetError::NoRows { file: file.into() });
    }
    let mut df = df;
    // Columns leave the polars frame one by one, so only one exists twice at a time.
    let mut take = |name: &str| df.drop_in_place(name).map_err(|e| reader.read_error(e));
    let timestamps = reader.timestamps(&take(&opts.timestamp_column)?)?;
    if let Some(i) = timestamps.iter().position(|t| !(MIN_MS..=MAX_MS).contains(t)) {
        return Err(DatasetError::TimestampOutOfRange {
            file: file.into(),
            row: reader.row(i),
            column: opts.timestamp_column.clone(),
            ms: timestamps[i],
        });
    }
    let mut columns = Vec::with_capacity(wanted.len() - 1);
    let mut skipped = Vec::new();
    for name in &wanted[1..] {
        let col = take(name)?;
        if skip_text && reader.holds_no_number(&col)? {
            skipped.push(name.clone());
            continue;
        }
        columns.push(Column { name: name.clone(), values: reader.numbers(&col)? });
    }
    Ok((Frame::new(timestamps, columns)?, skipped))
}

/// The timestamp column of a raw file when the user names none
/// (`opts.timestamp_column` is ignored): the first column named (any case)
/// as in [`TIMESTAMP_NAMES`], in that order; else the only Datetime or Date
/// column of a Parquet file, or the only CSV column whose every value parses
/// as a date-time (ISO 8601, or `opts.timestamp_format`; epoch numbers are
/// never guessed). None or several candidates is an error that says to set
/// `timestamp_column`. Limits are checked before anything is decoded.
pub fn find_timestamp_column(file: &str, bytes: &[u8], opts: &RawOptions) -> Result<String, DatasetError> {
    let format = RawFormat::detect(bytes);
    let opts = &opts.for_file(bytes);
    crate::limits::no_panic(file, format.name(), || {
        let names = checked_columns(file, bytes, format, opts)?;
        if let Some(name) = TIMESTAMP_NAMES.iter().find_map(|t| names.iter().find(|n| n.eq_ignore_ascii_case(t))) {
            return Ok(name.clone());
        }
        let reader = Reader { file, format, opts };
        let (candidates, why) = match format {
            RawFormat::Parquet => (reader.parquet_time_columns(bytes)?, "no column has a Datetime or Date type"),
            RawFormat::Csv => (reader.csv_time_columns(bytes, &names)?, "no column holds only date-times"),
        };
        match candidates.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(DatasetError::NoTimestampColumn { file: file.into(), why, columns: names }),
            _ => Err(DatasetError::AmbiguousTimestampColumn {
                file: file.into(),
                why: match format {
                    RawFormat::Parquet => "all have a Datetime or Date type",
                    RawFormat::Csv => "all hold only date-times",
                },
                candidates,
            }),
        }
    })
}

/// Column names from the CSV header line (quotes and a BOM stripped).
fn csv_header(bytes: &[u8], separator: u8) -> Vec<String> {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    line.trim_start_matches('\u{feff}')
        .trim_end_matches('\r')
        .split(separator as char)
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect()
}

fn parquet_columns(file: &str, bytes: &[u8]) -> Result<Vec<String>, DatasetError> {
    let schema = ParquetReader::new(Cursor::new(bytes)).schema().map_err(|e| DatasetError::Read {
        file: file.into(),
        format: "Parquet",
        message: e.to_string(),
    })?;
    Ok(schema.iter_names().map(|n| n.to_string()).collect())
}

/// The timestamp column first, then the numeric columns, all checked to exist.
fn select_columns(file: &str, available: &[String], opts: &RawOptions) -> Result<Vec<String>, DatasetError> {
    let missing = |column: &str| DatasetError::MissingColumn {
        file: file.into(),
        column: column.into(),
        available: available.to_vec(),
    };
    if !available.contains(&opts.timestamp_column) {
        return Err(missing(&opts.timestamp_column));
    }
    let mut wanted = vec![opts.timestamp_column.clone()];
    match &opts.columns {
        Some(cols) => {
            for c in cols {
                if !available.contains(c) {
                    return Err(missing(c));
                }
                if !wanted.contains(c) {
                    wanted.push(c.clone());
                }
            }
        }
        None => wanted.extend(available.iter().filter(|c| **c != opts.timestamp_column).cloned()),
    }
    Ok(wanted)
}

/// How text timestamps of one file are parsed (chosen from its first value).
enum TextTs {
    Format(String),
    Iso,
    Epoch(TimestampUnit),
}

struct Reader<'a> {
    file: &'a str,
    format: RawFormat,
    opts: &'a RawOptions,
}

impl Reader<'_> {
    fn row(&self, index: usize) -> Row {
        Row { index, csv: self.format == RawFormat::Csv }
    }

    fn read_error(&self, e: impl ToString) -> DatasetError {
        DatasetError::Read { file: self.file.into(), format: self.format.name(), message: e.to_string() }
    }

    /// A finite epoch number outside the years 1 to 9999 is out of range; a
    /// NaN or infinity is not a time at all.
    fn bad_epoch(&self, index: usize, unit: TimestampUnit, v: f64) -> DatasetError {
        if v.is_finite() {
            DatasetError::TimestampOutOfRange {
                file: self.file.into(),
                row: self.row(index),
                column: self.opts.timestamp_column.clone(),
                ms: unit.scale_to_ms(v) as i64,
            }
        } else {
            self.bad_ts(index, format!("`{v}` is not a valid epoch time"))
        }
    }

    fn bad_ts(&self, index: usize, problem: String) -> DatasetError {
        DatasetError::BadTimestamp {
            file: self.file.into(),
            row: self.row(index),
            column: self.opts.timestamp_column.clone(),
            problem,
        }
    }

    fn csv_parse_options(&self) -> CsvParseOptions {
        CsvParseOptions::default().with_separator(self.opts.separator).with_decimal_comma(self.opts.decimal_comma)
    }

    fn csv(&self, bytes: &[u8], wanted: &[String], as_text: bool) -> Result<DataFrame, DatasetError> {
        let columns: std::sync::Arc<[PlSmallStr]> = wanted.iter().map(|c| PlSmallStr::from(c.as_str())).collect();
        CsvReadOptions::default()
            .with_has_header(true)
            .with_columns(Some(columns))
            .with_infer_schema_length(Some(if as_text { 0 } else { INFER_ROWS }))
            .with_parse_options(self.csv_parse_options())
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(|e| self.read_error(e))
    }

    /// Whether a text value is a date-time (by the given format, else ISO 8601).
    fn is_datetime(&self, s: &str) -> bool {
        match &self.opts.timestamp_format {
            Some(f) => parse_with_format(s, f).is_some(),
            None => parse_iso(s).is_some(),
        }
    }

    /// CSV columns whose every value is a date-time: those whose first
    /// [`DETECT_ROWS`] values are, each then checked whole.
    fn csv_time_columns(&self, bytes: &[u8], names: &[String]) -> Result<Vec<String>, DatasetError> {
        let all_datetimes = |col: &PlColumn| -> Result<bool, DatasetError> {
            let ca = col.str().map_err(|e| self.read_error(e))?;
            Ok(!ca.is_empty() && ca.iter().all(|v| v.map(str::trim).is_some_and(|s| self.is_datetime(s))))
        };
        let all: std::sync::Arc<[PlSmallStr]> = names.iter().map(|c| PlSmallStr::from(c.as_str())).collect();
        let sample = CsvReadOptions::default()
            .with_has_header(true)
            .with_columns(Some(all))
            .with_n_rows(Some(DETECT_ROWS))
            .with_infer_schema_length(Some(0))
            .with_parse_options(self.csv_parse_options())
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(|e| self.read_error(e))?;
        let mut found = Vec::new();
        for col in sample.columns() {
            if all_datetimes(col)? {
                found.push(col.name().to_string());
            }
        }
        let mut candidates = Vec::new();
        for name in found {
            let whole = self.csv(bytes, std::slice::from_ref(&name), true)?;
            if all_datetimes(whole.column(&name).map_err(|e| self.read_error(e))?)? {
                candidates.push(name);
            }
        }
        Ok(candidates)
    }

    /// Parquet columns of a Datetime or Date type.
    fn parquet_time_columns(&self, bytes: &[u8]) -> Result<Vec<String>, DatasetError> {
        use polars_arrow::datatypes::ArrowDataType as A;
        let schema = ParquetReader::new(Cursor::new(bytes)).schema().map_err(|e| self.read_error(e))?;
        Ok(schema
            .iter()
            .filter(|(_, field)| matches!(field.dtype, A::Timestamp(..) | A::Date32 | A::Date64))
            .map(|(name, _)| name.to_string())
            .collect())
    }

    fn parquet(&self, bytes: &[u8], wanted: &[String]) -> Result<DataFrame, DatasetError> {
        ParquetReader::new(Cursor::new(bytes))
            .with_columns(Some(wanted.to_vec()))
            .finish()
            .map_err(|e| self.read_error(e))
    }

    fn unsupported(&self, col: &PlColumn, expected: &'static str) -> DatasetError {
        DatasetError::UnsupportedType {
            file: self.file.into(),
            column: col.name().to_string(),
            dtype: col.dtype().to_string(),
            expected,
        }
    }

    /// Milliseconds since the epoch for every row; a missing or unparseable
    /// timestamp is an error at its row.
    fn timestamps(&self, col: &PlColumn) -> Result<Vec<i64>, DatasetError> {
        let empty = |i| self.bad_ts(i, "empty timestamp".into());
        match col.dtype() {
            DataType::String => self.text_timestamps(col),
            DataType::Datetime(tu, _) => {
                let per_ms = match tu {
                    TimeUnit::Nanoseconds => TimestampUnit::Nanos,
                    TimeUnit::Microseconds => TimestampUnit::Micros,
                    TimeUnit::Milliseconds => TimestampUnit::Millis,
                };
                let phys = col.to_physical_repr();
                let ca = phys.i64().map_err(|e| self.read_error(e))?;
                ca.iter().enumerate().map(|(i, v)| v.map(|v| per_ms.int_to_ms(v)).ok_or_else(|| empty(i))).collect()
            }
            DataType::Date => {
                let phys = col.to_physical_repr();
                let ca = phys.i32().map_err(|e| self.read_error(e))?;
                ca.iter().enumerate().map(|(i, v)| v.map(|d| d as i64 * 86_400_000).ok_or_else(|| empty(i))).collect()
            }
            dt if dt.is_integer() => {
                let cast = col.cast(&DataType::Int64).map_err(|e| self.read_error(e))?;
                let ca = cast.i64().map_err(|e| self.read_error(e))?;
                let unit = self
                    .opts
                    .timestamp_unit
                    .or_else(|| ca.iter().flatten().next().map(|v| TimestampUnit::detect(v as f64)));
                let unit = unit.unwrap_or(TimestampUnit::Millis);
                ca.iter().enumerate().map(|(i, v)| v.map(|v| unit.int_to_ms(v)).ok_or_else(|| empty(i))).collect()
            }
            dt if dt.is_float() => {
                let cast = col.cast(&DataType::Float64).map_err(|e| self.read_error(e))?;
                let ca = cast.f64().map_err(|e| self.read_error(e))?;
                let unit = self.opts.timestamp_unit.or_else(|| ca.iter().flatten().next().map(TimestampUnit::detect));
                let unit = unit.unwrap_or(TimestampUnit::Millis);
                ca.iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        None => Err(empty(i)),
                        Some(v) => unit.to_ms(v).ok_or_else(|| self.bad_epoch(i, unit, v)),
                    })
                    .collect()
            }
            _ => Err(self.unsupported(col, "a timestamp (text, integer or float epoch, Datetime or Date)")),
        }
    }

    fn text_timestamps(&self, col: &PlColumn) -> Result<Vec<i64>, DatasetError> {
        let ca = col.str().map_err(|e| self.read_error(e))?;
        let first = ca.iter().flatten().map(str::trim).find(|s| !s.is_empty());
        let mode = match (&self.opts.timestamp_format, first) {
            (Some(f), _) => TextTs::Format(f.clone()),
            (None, Some(s)) if parse_iso(s).is_none() && s.parse::<f64>().is_ok_and(f64::is_finite) => TextTs::Epoch(
                self.opts.timestamp_unit.unwrap_or_else(|| TimestampUnit::detect(s.parse().unwrap_or(0.0))),
            ),
            _ => TextTs::Iso,
        };
        let mut out = Vec::with_capacity(ca.len());
        for (i, v) in ca.iter().enumerate() {
            let s = v.map(str::trim).unwrap_or_default();
            if s.is_empty() {
                return Err(self.bad_ts(i, "empty timestamp".into()));
            }
            let parsed = match &mode {
                TextTs::Format(f) => parse_with_format(s, f),
                TextTs::Iso => parse_iso(s),
                TextTs::Epoch(unit) => match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Some(unit.to_ms(v).ok_or_else(|| self.bad_epoch(i, *unit, v))?),
                    _ => None,
                },
            };
            let Some(ms) = parsed else {
                let expected = match &mode {
                    TextTs::Format(f) => format!("the format `{f}`"),
                    TextTs::Iso => "ISO 8601 like `2018-03-28 15:56:00` or `2018-03-28T15:56:00Z`; \
                        set timestamp_format for other layouts"
                        .to_string(),
                    TextTs::Epoch(_) => "an epoch number like the rows before".to_string(),
                };
                return Err(
                    self.bad_ts(i, format!("cannot parse `{}` as a timestamp (expected {expected})", s.escape_debug()))
                );
            };
            out.push(ms);
        }
        Ok(out)
    }

    /// The column as `f64`: missing values and blanks become NaN; text that is
    /// not a number is an error at its row.
    /// A text column with at least one value and no value that is a number.
    fn holds_no_number(&self, col: &PlColumn) -> Result<bool, DatasetError> {
        let text = match col.dtype() {
            DataType::String => col.clone(),
            // A Parquet dictionary of strings (pandas' category, Arrow's dictionary).
            dt if dt.is_categorical() || dt.is_enum() => col.cast(&DataType::String).map_err(|e| self.read_error(e))?,
            _ => return Ok(false),
        };
        let ca = text.str().map_err(|e| self.read_error(e))?;
        let mut values = ca.iter().flatten().map(str::trim).filter(|s| !s.is_empty()).peekable();
        Ok(values.peek().is_some() && values.all(|s| self.parse_number(s).is_none()))
    }

    /// A text value as a number (with a decimal comma when the file uses them).
    fn parse_number(&self, s: &str) -> Option<f64> {
        if self.opts.decimal_comma && s.contains(',') { s.replacen(',', ".", 1).parse().ok() } else { s.parse().ok() }
    }

    fn numbers(&self, col: &PlColumn) -> Result<Vec<f64>, DatasetError> {
        match col.dtype() {
            DataType::Null => Ok(vec![f64::NAN; col.len()]),
            DataType::String => {
                let ca = col.str().map_err(|e| self.read_error(e))?;
                ca.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let s = v.map(str::trim).unwrap_or_default();
                        if s.is_empty() {
                            return Ok(f64::NAN);
                        }
                        self.parse_number(s).ok_or_else(|| DatasetError::NotNumeric {
                            file: self.file.into(),
                            row: self.row(i),
                            column: col.name().to_string(),
                            value: s.escape_debug().to_string(),
                        })
                    })
                    .collect()
            }
            // Flags read as 0 and 1; decimals (from databases, pandas) as floats.
            dt if dt.is_primitive_numeric() || dt.is_bool() || dt.is_decimal() => {
                let cast = col.cast(&DataType::Float64).map_err(|e| self.read_error(e))?;
                let ca = cast.f64().map_err(|e| self.read_error(e))?;
                Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            }
            _ => Err(self.unsupported(col, "numeric")),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for a timestamp in ms, as raw CSV files have it.
fn format_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|dt| dt.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A raw CSV of `frame` (tests, demos, benches): text timestamps in
/// `timestamp_column`, NaN written as an empty cell.
pub fn write_raw_csv(frame: &Frame, timestamp_column: &str) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(frame.len() * (20 + 16 * frame.columns.len()));
    out.push_str(timestamp_column);
    for c in &frame.columns {
        out.push(',');
        out.push_str(&c.name);
    }
    out.push('\n');
    for (i, ts) in frame.timestamps.iter().enumerate() {
        out.push_str(&format_ts(*ts));
        for c in &frame.columns {
            out.push(',');
            let v = c.values[i];
            if v.is_finite() {
                let _ = write!(out, "{v}");
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// A raw Parquet of `frame` (tests, demos, benches): `timestamp_column` as a
/// millisecond Datetime, NaN written as null.
pub fn write_raw_parquet(frame: &Frame, timestamp_column: &str) -> Result<Vec<u8>, DatasetError> {
    let ts = Int64Chunked::from_vec(timestamp_column.into(), frame.timestamps.clone())
        .into_datetime(TimeUnit::Milliseconds, None)
        .into_column();
    let mut cols = vec![ts];
    for c in &frame.columns {
        let ca: Float64Chunked = c.values.iter().map(|v| v.is_finite().then_some(*v)).collect();
        cols.push(ca.with_name(c.name.as_str().into()).into_column());
    }
    let mut df = DataFrame::new(frame.len(), cols).map_err(|e| DatasetError::Write(e.to_string()))?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(&mut df)
        .map_err(|e| DatasetError::Write(e.to_string()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Spec, traffic};
    use polars::prelude::{BooleanChunked, Categories, Int128Chunked, NewChunkedArray, StringChunked};

    fn opts(ts: &str) -> RawOptions {
        RawOptions { timestamp_column: ts.into(), ..Default::default() }
    }

    fn csv(text: &str) -> Result<Frame, DatasetError> {
        read_raw("in.csv", text.as_bytes(), &opts("time"))
    }

    fn same(a: &Frame, b: &Frame) {
        assert_eq!(a.timestamps, b.timestamps);
        for (x, y) in a.columns.iter().zip(&b.columns) {
            assert_eq!(x.name, y.name);
            for (i, (u, v)) in x.values.iter().zip(&y.values).enumerate() {
                assert!(u == v || (u.is_nan() && v.is_nan()), "{} row {i}: {u} vs {v}", x.name);
            }
        }
    }

    #[test]
    fn generated_csv_and_parquet_read_back_exactly() {
        let f = traffic(&Spec { rows: 2_000, nan_every: 50, ..Default::default() });
        same(&read_raw("g.csv", &write_raw_csv(&f, "time"), &opts("time")).unwrap(), &f);
        same(&read_raw("g.parquet", &write_raw_parquet(&f, "ts").unwrap(), &opts("ts")).unwrap(), &f);
    }

    #[test]
    fn selects_and_orders_columns() {
        let text = "a,time,b\n1,2018-03-28 15:56:00,x\n2,2018-03-28 15:58:00,y\n";
        let o = RawOptions { columns: Some(vec!["a".into()]), ..opts("time") };
        let f = read_raw("in.csv", text.as_bytes(), &o).unwrap();
        assert_eq!(f.column_names().collect::<Vec<_>>(), ["a"]);
        assert_eq!(f.timestamps[1] - f.timestamps[0], 120_000);
    }

    #[test]
    fn blanks_are_nan_and_int_columns_become_float() {
        let f = csv("time,down,count\n2018-03-28 15:56:00,1.5,3\n2018-03-28 15:58:00,,4\n").unwrap();
        assert!(f.column("down").unwrap()[1].is_nan());
        assert_eq!(f.column("count").unwrap(), &[3.0, 4.0]);
    }

    #[test]
    fn epoch_numbers_and_formats() {
        let secs = "time,v\n1522252560,1\n1522252680,2\n";
        let f = csv(secs).unwrap();
        assert_eq!(f.timestamps, vec![1_522_252_560_000, 1_522_252_680_000]);
        let ms = "time,v\n1522252560000,1\n1522252680000,2\n";
        assert_eq!(csv(ms).unwrap().timestamps, f.timestamps);
        let float = "time,v\n1522252560.0,1\n1522252680.0,2\n";
        assert_eq!(csv(float).unwrap().timestamps, f.timestamps);
        let eu = "time;v\n28/03/2018 15:56;1\n28/03/2018 15:58;2\n";
        let o = RawOptions { timestamp_format: Some("%d/%m/%Y %H:%M".into()), separator: b';', ..opts("time") };
        assert_eq!(read_raw("eu.csv", eu.as_bytes(), &o).unwrap().timestamps, f.timestamps);
    }

    #[test]
    fn other_separators_and_decimal_commas_are_read_without_settings() {
        let comma = csv("time,down,up\n2018-03-28 15:56:00,1.5,2\n2018-03-28 15:58:00,2.5,3\n").unwrap();
        for (name, text) in [
            ("semicolon", "time;down;up\n2018-03-28 15:56:00;1.5;2\n2018-03-28 15:58:00;2.5;3\n"),
            ("tab", "time\tdown\tup\n2018-03-28 15:56:00\t1.5\t2\n2018-03-28 15:58:00\t2.5\t3\n"),
            ("pipe", "time|down|up\n2018-03-28 15:56:00|1.5|2\n2018-03-28 15:58:00|2.5|3\n"),
            ("decimal comma", "time;down;up\n2018-03-28 15:56:00;1,5;2\n2018-03-28 15:58:00;2,5;3\n"),
            (
                "quoted decimal comma",
                "time;down;up\r\n\"2018-03-28 15:56:00\";\"1,5\";2\r\n\"2018-03-28 15:58:00\";\"2,5\";3\r\n",
            ),
        ] {
            assert_eq!(csv(text).unwrap(), comma, "{name}");
            let ts = find_timestamp_column("in.csv", text.as_bytes(), &RawOptions::default()).unwrap();
            assert_eq!(ts, "time", "{name}");
        }
        // A file that fits the configured separator is read as it says: a
        // comma in a `;` file's header is part of a name.
        let o = RawOptions { separator: b';', ..opts("time") };
        let f = read_raw("in.csv", b"time;down,bytes\n2018-03-28 15:56:00;1.5\n", &o).unwrap();
        assert_eq!(f.column_names().collect::<Vec<_>>(), ["down,bytes"]);
        // Decimal commas only where the separator is not a comma.
        assert!(is_decimal_comma_number("1234,5") && is_decimal_comma_number("\"-0,25e-3\""));
        assert!(
            !is_decimal_comma_number("1234.5") && !is_decimal_comma_number("1,234,5") && !is_decimal_comma_number(",")
        );
    }

    #[test]
    fn text_columns_without_a_number_are_left_out_only_when_asked() {
        let text = "time,site,down,note\n2018-03-28 15:56:00,El Born,1.5,\n2018-03-28 15:58:00,El Born,2.5,ok\n";
        let (f, skipped) = read_raw_numeric("in.csv", text.as_bytes(), &opts("time")).unwrap();
        assert_eq!(skipped, ["site", "note"]);
        assert_eq!(f.column_names().collect::<Vec<_>>(), ["down"]);
        let e = csv(text).unwrap_err();
        assert_eq!(e.to_string(), "in.csv: row 1 (line 2), column `site`: `El Born` is not a number");
        // Some numbers and some text: still an error, at the text.
        let mixed = "time,down\n2018-03-28 15:56:00,1.5\n2018-03-28 15:58:00,n/a\n";
        let e = read_raw_numeric("in.csv", mixed.as_bytes(), &opts("time")).unwrap_err();
        assert_eq!(e.to_string(), "in.csv: row 2 (line 3), column `down`: `n/a` is not a number");
    }

    #[test]
    fn parquet_flags_decimals_and_string_dictionaries_as_pandas_and_databases_write_them() {
        let ts = Int64Chunked::from_vec("time".into(), vec![1_522_252_560_000, 1_522_252_680_000])
            .into_datetime(TimeUnit::Milliseconds, None)
            .into_column();
        let flag = BooleanChunked::from_slice("flag".into(), &[true, false]).into_column();
        let price =
            Int128Chunked::from_vec("price".into(), vec![12_345, -500]).into_decimal(10, 2).unwrap().into_column();
        let site = StringChunked::from_slice("site".into(), &["El Born", "El Born"])
            .into_column()
            .cast(&DataType::from_categories(Categories::global()))
            .unwrap();
        assert!(site.dtype().is_categorical());
        let mut df = DataFrame::new(2, vec![ts, flag, price, site]).unwrap();
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df).unwrap();

        let (f, skipped) = read_raw_numeric("in.parquet", &buf, &opts("time")).unwrap();
        assert_eq!(skipped, ["site"], "a dictionary of names is text");
        assert_eq!(f.column("flag").unwrap(), &[1.0, 0.0]);
        assert_eq!(f.column("price").unwrap(), &[123.45, -5.0]);
        let e = read_raw("in.parquet", &buf, &opts("time")).unwrap_err();
        assert!(e.to_string().contains("column `site`"), "{e}");
    }

    #[test]
    fn bad_input_names_file_row_and_column() {
        let e = csv("").unwrap_err();
        assert_eq!(e.to_string(), "in.csv: the file is empty");
        let e = csv("time,down\n").unwrap_err();
        assert_eq!(e.to_string(), "in.csv: no data rows");
        let e = csv("ts,down\n2018-03-28 15:56:00,1\n").unwrap_err();
        assert_eq!(e.to_string(), "in.csv: column `time` not found (columns: [\"ts\", \"down\"])");
        let o = RawOptions { columns: Some(vec!["down".into(), "up".into()]), ..opts("time") };
        let e = read_raw("in.csv", b"time,down\n2018-03-28 15:56:00,1\n", &o).unwrap_err();
        assert!(e.to_string().starts_with("in.csv: column `up` not found"), "{e}");
        let e = csv("time,down\n2018-03-28 15:56:00,1\n2018-03-28 15:58:00,abc\n").unwrap_err();
        assert_eq!(e.to_string(), "in.csv: row 2 (line 3), column `down`: `abc` is not a number");
        let e = csv("time,down\n2018-03-28 15:56:00,1\nyesterday,2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "in.csv: row 2 (line 3), column `time`: cannot parse `yesterday` as a timestamp (expected ISO 8601 \
             like `2018-03-28 15:56:00` or `2018-03-28T15:56:00Z`; set timestamp_format for other layouts)"
        );
        let e = csv("time,down\n2018-03-28 15:56:00,1\n,2\n").unwrap_err();
        assert_eq!(e.to_string(), "in.csv: row 2 (line 3), column `time`: empty timestamp");
    }

    #[test]
    fn a_bad_value_after_type_inference_is_still_found() {
        let mut text = String::from("time,down\n");
        let f = traffic(&Spec { rows: INFER_ROWS + 50, gap_every: 0, nan_every: 0, ..Default::default() });
        for (i, ts) in f.timestamps.iter().enumerate() {
            let v = if i == INFER_ROWS + 20 { "n/a".to_string() } else { f.columns[0].values[i].to_string() };
            text.push_str(&format!("{},{v}\n", format_ts(*ts)));
        }
        let e = csv(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("in.csv: row {} (line {}), column `down`: `n/a` is not a number", INFER_ROWS + 21, INFER_ROWS + 22)
        );
    }

    #[test]
    fn timestamp_column_is_found_by_name_then_by_values() {
        let find = |text: &str| find_timestamp_column("in.csv", text.as_bytes(), &RawOptions::default());
        // By name, any case, in the order of TIMESTAMP_NAMES.
        assert_eq!(find("v,Time\n1,2018-03-28 15:56:00\n").unwrap(), "Time");
        assert_eq!(find("ds,v,TIMESTAMP\n2018-03-28,1,2018-03-28\n").unwrap(), "TIMESTAMP");
        assert_eq!(find("date,ds\n2018-03-28,2018-03-28\n").unwrap(), "date");
        // Epoch numbers under a timestamp's name: the name decides.
        assert_eq!(find("TS,v\n1522252560,1\n").unwrap(), "TS");
        assert_eq!(find("v,Date_Time\n1,2018-03-28 15:56:00\n").unwrap(), "Date_Time");
        // Else the only column of date-times; epoch numbers are never guessed.
        assert_eq!(find("v,when,n\n1,2018-03-28 15:56:00,3\n2,2018-03-28T15:58:00Z,4\n").unwrap(), "when");
        let e = find("v,epoch\n1,1522252560\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "in.csv: no timestamp column: none is named time, timestamp, datetime, date, ds, ts, date_time or \
             time_stamp, and no column holds only date-times; set timestamp_column (columns: [\"v\", \"epoch\"])"
        );
        let e = find("start,end,v\n2018-03-28,2018-03-29,1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "in.csv: cannot tell which column is the timestamp: [\"start\", \"end\"] all hold only date-times; \
             set timestamp_column"
        );
        // A column that is date-times only in its first rows is not one.
        let mut text = String::from("when,v\n");
        for i in 0..DETECT_ROWS + 5 {
            text.push_str(if i == DETECT_ROWS + 2 { "soon,1\n" } else { "2018-03-28 15:56:00,1\n" });
        }
        assert!(matches!(find(&text), Err(DatasetError::NoTimestampColumn { .. })), "{:?}", find(&text));
        // A given format finds other layouts.
        let o = RawOptions { timestamp_format: Some("%d/%m/%Y %H:%M".into()), ..Default::default() };
        assert_eq!(find_timestamp_column("eu.csv", b"v,when\n1,28/03/2018 15:56\n", &o).unwrap(), "when");
        assert!(matches!(find(" \n"), Err(DatasetError::EmptyFile { .. })));
    }

    #[test]
    fn parquet_timestamp_column_is_found_by_type() {
        let f = traffic(&Spec { rows: 50, ..Default::default() });
        let bytes = write_raw_parquet(&f, "measured_at").unwrap();
        assert_eq!(find_timestamp_column("in.parquet", &bytes, &RawOptions::default()).unwrap(), "measured_at");
        let bytes = write_raw_parquet(&f, "Date").unwrap();
        assert_eq!(find_timestamp_column("in.parquet", &bytes, &RawOptions::default()).unwrap(), "Date");
        // No Datetime column: the numbers are not guessed.
        let mut df = DataFrame::new(
            2,
            vec![
                Int64Chunked::from_vec("epoch".into(), vec![1, 2]).into_column(),
                Float64Chunked::from_vec("v".into(), vec![1.0, 2.0]).into_column(),
            ],
        )
        .unwrap();
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
        let e = find_timestamp_column("in.parquet", &buf, &RawOptions::default()).unwrap_err();
        assert!(e.to_string().contains("no column has a Datetime or Date type; set timestamp_column"), "{e}");
    }

    #[test]
    fn parquet_errors_give_rows_without_lines() {
        let f = Frame::new(vec![0, 1], vec![Column::new("v", vec![1.0, 2.0])]).unwrap();
        let bytes = write_raw_parquet(&f, "ts").unwrap();
        let e = read_raw("in.parquet", &bytes, &opts("time")).unwrap_err();
        assert!(e.to_string().starts_with("in.parquet: column `time` not found"), "{e}");
        let e = read_raw("in.parquet", b"PAR1garbage", &opts("time")).unwrap_err();
        assert!(e.to_string().starts_with("in.parquet: cannot read Parquet"), "{e}");
        assert_eq!(Row { index: 4, csv: false }.to_string(), "row 5");
    }
}
