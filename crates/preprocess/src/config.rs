//! The preprocess config: a JSON or TOML file, then env variables and flags,
//! then a request's overrides (each layer a JSON merge patch over the one
//! before), checked once; and its canonical form, whose SHA-256 is the
//! `config_hash` that versions the outputs.

use std::path::Path;

use dataset::TimestampUnit;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use series::{OutlierMethod, OutlierParams, ScalerKind};

/// Bumped when a code change makes the same config produce different output,
/// so old and new outputs never share a hash. 2: outliers are recorded, never
/// clipped here; gaps longer than `fill_limit` are filled and listed in `flts.gaps`.
pub const FORMAT_VERSION: u32 = 2;

/// How gaps (missing values, and rows added by regularisation) are filled.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FillMethod {
    /// Repeat the last value before the gap.
    Ffill,
    /// Interpolate linearly between the values around the gap.
    Linear,
    /// Use `fill_value`.
    Constant,
    /// Leave gaps alone (they then count as unfilled).
    None,
}

/// The cleaning steps, each switchable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CleanConfig {
    /// Sort rows by timestamp (otherwise unsorted input is an error).
    pub sort: bool,
    /// Keep the first of rows with the same timestamp (otherwise duplicates are an error).
    pub drop_duplicates: bool,
    /// Put rows on a regular grid of `interval_ms`: rows in one slot are
    /// averaged, empty slots become gaps to fill.
    pub regularize: bool,
    pub fill: FillMethod,
    /// The value `fill = "constant"` uses.
    pub fill_value: f64,
    /// Longest run of missing rows whose filled values are trusted; 0: any
    /// length. Every interior gap is filled, but the rows of a run longer than
    /// this (in any column) are listed in `flts.gaps`, so that no window reads
    /// or scores them; a part with more than half of its rows in such runs is
    /// an error ([`crate::clean::MAX_LONG_GAP_SHARE`]).
    pub fill_limit: usize,
    /// With `fill = "none"` (the only method that leaves interior gaps),
    /// drop rows that miss a value instead of failing. Leading and trailing
    /// rows with missing values are always dropped.
    pub drop_unfilled: bool,
    /// Outlier handling, applied by the trainers to model inputs only with
    /// bounds fitted on the training rows; preprocess records it and never
    /// clips. `auto` (default): the trainers try none, percentile and iqr and
    /// keep the best on validation; `none`, `percentile` or `iqr` pins one.
    pub outliers: OutlierMethod,
    pub outlier_lower_pct: f64,
    pub outlier_upper_pct: f64,
    pub outlier_iqr_k: f64,
}

impl CleanConfig {
    /// The parameters of the outlier methods, as the trainers read them.
    pub fn outlier_params(&self) -> OutlierParams {
        OutlierParams {
            lower_pct: self.outlier_lower_pct,
            upper_pct: self.outlier_upper_pct,
            iqr_k: self.outlier_iqr_k,
        }
    }
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            sort: true,
            drop_duplicates: true,
            regularize: true,
            fill: FillMethod::Linear,
            fill_value: 0.0,
            fill_limit: 30,
            drop_unfilled: false,
            outliers: OutlierMethod::Auto,
            outlier_lower_pct: 0.5,
            outlier_upper_pct: 99.5,
            outlier_iqr_k: 1.5,
        }
    }
}

/// Every preprocess setting. Keys are the same in files, request overrides
/// and (upper-cased, see [`ConfigArgs`]) env variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// The timestamp column of the raw input; unset finds it: the column named
    /// (any case) time, timestamp, datetime, date, ds, ts, date_time or
    /// time_stamp, in that order (epoch numbers under such a name too), else the
    /// only Datetime/Date column (Parquet) or the only column whose every value
    /// is a date-time (CSV). Processed data always calls it `timestamp`.
    pub timestamp_column: Option<String>,
    /// chrono `strftime` format of text timestamps; unset accepts ISO 8601 and epoch numbers.
    pub timestamp_format: Option<String>,
    /// Unit of epoch-number timestamps (s, ms, us, ns); unset guesses from the magnitude.
    pub timestamp_unit: Option<TimestampUnit>,
    /// CSV field separator. A file whose header line does not contain it is
    /// read with the first of `;`, tab, `|` and `,` that it does, with
    /// decimal commas (`1234,5`) when its separator is not `,` and its first
    /// data line writes numbers so.
    pub csv_separator: char,
    /// Numeric input columns, in model input order; empty takes every column
    /// but the timestamp that holds numbers (a text-only column such as a site
    /// name is left out, with a warning).
    pub features: Vec<String>,
    /// Predicted columns, a subset of the features; empty predicts one: the
    /// column named (any case) y, target or value, in that order, else the
    /// first feature (the first numeric column of the input).
    pub targets: Vec<String>,
    /// Sampling interval; unset detects the most common step of the training part.
    pub interval_ms: Option<i64>,
    pub clean: CleanConfig,
    /// Add hour-of-day and day-of-week features as sin/cos.
    pub calendar_features: bool,
    /// Local time offset the calendar features use (Barcelona: 60 or 120).
    pub calendar_utc_offset_minutes: i32,
    pub scaler: ScalerKind,
    /// Share of the series, cut from the end, that becomes the test part when
    /// there is no separate test input.
    pub test_fraction: f64,
    /// Keep only the last N training rows (fast dev runs); 0 keeps all.
    pub sample_train_rows: usize,
    /// Keep only the first N test rows; 0 keeps all.
    pub sample_test_rows: usize,
    /// Model window, checked so that a too short series fails here, not in training.
    pub input_len: usize,
    pub output_len: usize,
    /// Larger inputs are refused before they are read.
    pub max_input_bytes: u64,
    /// Inputs claiming more rows (Parquet footer, CSV lines) are refused before they are decoded.
    pub max_input_rows: u64,
    /// Inputs with more columns are refused before they are decoded.
    pub max_input_columns: u64,
    /// Inputs whose decoded size (rows x columns x 8, or the Parquet pages'
    /// declared decompressed sizes) is larger are refused before they are decoded.
    pub max_decoded_bytes: u64,
    /// Free text mixed into the hash, to force a new version on purpose.
    pub salt: String,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            timestamp_column: None,
            timestamp_format: None,
            timestamp_unit: None,
            csv_separator: ',',
            features: Vec::new(),
            targets: Vec::new(),
            interval_ms: None,
            clean: CleanConfig::default(),
            calendar_features: false,
            calendar_utc_offset_minutes: 0,
            scaler: ScalerKind::MinMax,
            test_fraction: 0.2,
            sample_train_rows: 0,
            sample_test_rows: 0,
            input_len: 10,
            output_len: 1,
            max_input_bytes: 2 * 1024 * 1024 * 1024,
            max_input_rows: dataset::ReadLimits::default().max_rows,
            max_input_columns: dataset::ReadLimits::default().max_columns,
            max_decoded_bytes: dataset::ReadLimits::default().max_decoded_bytes,
            salt: String::new(),
        }
    }
}

/// A config that cannot be loaded or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("config file {path} is not valid {format}: {message}")]
    Syntax { path: String, format: &'static str, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Read a JSON or TOML config file (by extension; otherwise JSON, then TOML).
pub fn load_file(path: &Path) -> Result<Value, ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
    let json = |t: &str| serde_json::from_str::<Value>(t).map_err(|e| e.to_string());
    let toml = |t: &str| {
        toml::from_str::<toml::Table>(t)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string()))
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let (format, parsed) = match ext.as_str() {
        "toml" => ("TOML", toml(&text)),
        "json" => ("JSON", json(&text)),
        _ => ("JSON or TOML", json(&text).or_else(|_| toml(&text))),
    };
    let value = parsed.map_err(|message| ConfigError::Syntax { path: p.clone(), format, message })?;
    if !value.is_object() {
        return Err(ConfigError::Syntax { path: p, format, message: "the top level must be a table/object".into() });
    }
    Ok(value)
}

/// Apply `patch` to `base` (RFC 7386 JSON merge patch: objects merge key by
/// key, `null` removes a key so that its default applies, anything else replaces).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// The settings that are operator limits. A request's overrides may lower
/// them, never raise them ([`PreprocessConfig::resolve_request`]).
pub const LIMITS: [&str; 4] = ["max_input_bytes", "max_input_rows", "max_input_columns", "max_decoded_bytes"];

impl PreprocessConfig {
    /// The config for a request: the operator's layers (file, env and flags)
    /// with the request's overrides over them, except that every operator
    /// limit ([`LIMITS`]) is a ceiling: a request may lower it, never raise it.
    pub fn resolve_request(operator: &[&Value], request: &Value) -> Result<PreprocessConfig, ConfigError> {
        let ceiling = PreprocessConfig::resolve(operator)?;
        let mut layers = operator.to_vec();
        layers.push(request);
        let mut config = PreprocessConfig::resolve(&layers)?;
        config.max_input_bytes = config.max_input_bytes.min(ceiling.max_input_bytes);
        config.max_input_rows = config.max_input_rows.min(ceiling.max_input_rows);
        config.max_input_columns = config.max_input_columns.min(ceiling.max_input_columns);
        config.max_decoded_bytes = config.max_decoded_bytes.min(ceiling.max_decoded_bytes);
        Ok(config)
    }

    /// The read limits of this config.
    pub fn read_limits(&self) -> dataset::ReadLimits {
        dataset::ReadLimits {
            max_rows: self.max_input_rows,
            max_columns: self.max_input_columns,
            max_decoded_bytes: self.max_decoded_bytes,
        }
    }

    /// Merge the layers in order over the defaults, parse and check.
    pub fn resolve(layers: &[&Value]) -> Result<PreprocessConfig, ConfigError> {
        let mut merged = Value::Object(Map::new());
        // A null layer (a request without overrides) changes nothing.
        for layer in layers.iter().filter(|l| !l.is_null()) {
            if !layer.is_object() {
                return Err(ConfigError::Invalid(format!("config overrides must be an object, got {layer}")));
            }
            merge(&mut merged, layer);
        }
        let config: PreprocessConfig =
            serde_json::from_value(merged).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.timestamp_column.as_ref().is_some_and(|t| t.trim().is_empty()) {
            return bad("timestamp_column is empty (leave it unset to detect the column)".into());
        }
        for (name, list) in [("features", &self.features), ("targets", &self.targets)] {
            if let Some((i, _)) = list.iter().enumerate().find(|(i, n)| list[..*i].contains(n)) {
                return bad(format!("{name} lists `{}` twice", list[i]));
            }
            if let Some(ts) = self.timestamp_column.as_ref().filter(|ts| list.contains(ts)) {
                return bad(format!("{name} must not contain the timestamp column `{ts}`"));
            }
        }
        if !self.features.is_empty()
            && let Some(t) = self.targets.iter().find(|t| !self.features.contains(t))
        {
            return bad(format!("target `{t}` is not among the features {:?}", self.features));
        }
        if let Some(i) = self.interval_ms.filter(|i| *i <= 0) {
            return bad(format!("interval_ms must be positive, got {i}"));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return bad(format!("test_fraction must be in (0, 1), got {}", self.test_fraction));
        }
        if self.input_len == 0 || self.output_len == 0 {
            return bad("input_len and output_len must be at least 1".into());
        }
        let c = &self.clean;
        if !c.fill_value.is_finite() {
            return bad("clean.fill_value must be a finite number".into());
        }
        c.outlier_params().validate().map_err(ConfigError::Invalid)?;
        if self.calendar_utc_offset_minutes.abs() > 14 * 60 {
            return bad(format!("calendar_utc_offset_minutes {} is beyond ±14 h", self.calendar_utc_offset_minutes));
        }
        if !self.csv_separator.is_ascii() {
            return bad(format!("csv_separator {:?} must be one ASCII character", self.csv_separator));
        }
        Ok(())
    }

    /// The canonical config: every setting that changes the output, the
    /// format version and the inputs' checksums. Window lengths and the size
    /// limit only decide whether a run fails, so they are left out.
    pub fn canonical(&self, input_sha256: &str, test_input_sha256: Option<&str>) -> Value {
        let mut settings = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut settings {
            for k in ["input_len", "output_len"].iter().chain(&LIMITS) {
                m.remove(*k);
            }
        }
        serde_json::json!({
            "format": FORMAT_VERSION,
            "settings": settings,
            "input_sha256": input_sha256,
            "test_input_sha256": test_input_sha256,
        })
    }
}

/// Compact JSON with object keys sorted at every level (independent of
/// serde_json's `preserve_order` feature).
pub fn canonical_json(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The `config_hash` of a canonical config, and the config as stored in the
/// metadata (re-read from its canonical text, so its keys print sorted).
pub fn config_hash(canonical: &Value) -> (String, Value) {
    let text = canonical_json(canonical);
    let value = serde_json::from_str(&text).unwrap_or_else(|_| canonical.clone());
    (claim_check::sha256_hex(text.as_bytes()), value)
}

/// Env variables and flags over the config file (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Timestamp column of the raw input (default: found by name or type).
    #[arg(long, env = "TIMESTAMP_COLUMN")]
    pub timestamp_column: Option<String>,
    /// chrono strftime format of text timestamps (default: ISO 8601 or epoch numbers).
    #[arg(long, env = "TIMESTAMP_FORMAT")]
    pub timestamp_format: Option<String>,
    /// Unit of epoch-number timestamps: s, ms, us or ns (default: guessed).
    #[arg(long, env = "TIMESTAMP_UNIT")]
    pub timestamp_unit: Option<TimestampUnit>,
    /// CSV field separator (default `,`; a file whose header does not contain it is read with the one it uses: `;`, tab or `|`).
    #[arg(long, env = "CSV_SEPARATOR")]
    pub csv_separator: Option<char>,
    /// Input columns in model input order, comma-separated (default: all but the timestamp, less text-only columns).
    #[arg(long, env = "FEATURE_COLUMNS", value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Predicted columns, comma-separated (default: the column y, target or value, else the first feature).
    #[arg(long, env = "TARGET_COLUMNS", value_delimiter = ',')]
    pub targets: Option<Vec<String>>,
    /// Sampling interval in ms (default: detected).
    #[arg(long, env = "INTERVAL_MS")]
    pub interval_ms: Option<i64>,
    /// Sort rows by timestamp.
    #[arg(long, env = "CLEAN_SORT")]
    pub clean_sort: Option<bool>,
    /// Drop rows whose timestamp repeats an earlier one.
    #[arg(long, env = "CLEAN_DROP_DUPLICATES")]
    pub clean_drop_duplicates: Option<bool>,
    /// Regularise to the sampling interval.
    #[arg(long, env = "CLEAN_REGULARIZE")]
    pub clean_regularize: Option<bool>,
    /// Gap filling: ffill, linear, constant or none.
    #[arg(long, env = "FILL_METHOD")]
    pub fill: Option<String>,
    /// Value used by FILL_METHOD=constant.
    #[arg(long, env = "FILL_VALUE")]
    pub fill_value: Option<f64>,
    /// Longest run of missing rows that is filled (0: any).
    #[arg(long, env = "FILL_LIMIT")]
    pub fill_limit: Option<usize>,
    /// With FILL_METHOD=none, drop rows missing values instead of failing.
    #[arg(long, env = "DROP_UNFILLED")]
    pub drop_unfilled: Option<bool>,
    /// Outlier handling of the trainers' inputs: auto, none, percentile or iqr (preprocess only records it).
    #[arg(long, env = "OUTLIER_METHOD")]
    pub outliers: Option<String>,
    /// Lower percentile for OUTLIER_METHOD=percentile.
    #[arg(long, env = "OUTLIER_LOWER_PCT")]
    pub outlier_lower_pct: Option<f64>,
    /// Upper percentile for OUTLIER_METHOD=percentile.
    #[arg(long, env = "OUTLIER_UPPER_PCT")]
    pub outlier_upper_pct: Option<f64>,
    /// IQR multiplier for OUTLIER_METHOD=iqr.
    #[arg(long, env = "OUTLIER_IQR_K")]
    pub outlier_iqr_k: Option<f64>,
    /// Add hour-of-day and day-of-week sin/cos features.
    #[arg(long, env = "CALENDAR_FEATURES")]
    pub calendar_features: Option<bool>,
    /// Local time offset in minutes for the calendar features.
    #[arg(long, env = "CALENDAR_UTC_OFFSET_MINUTES", allow_hyphen_values = true)]
    pub calendar_utc_offset_minutes: Option<i32>,
    /// Scaler: minmax or standard (fitted on the training part).
    #[arg(long, env = "SCALER")]
    pub scaler: Option<String>,
    /// Share of the series that becomes the test part without a test input.
    #[arg(long, env = "TEST_FRACTION")]
    pub test_fraction: Option<f64>,
    /// Keep only the last N training rows (0: all).
    #[arg(long, env = "SAMPLE_TRAIN_ROWS")]
    pub sample_train_rows: Option<usize>,
    /// Keep only the first N test rows (0: all).
    #[arg(long, env = "SAMPLE_TEST_ROWS")]
    pub sample_test_rows: Option<usize>,
    /// Model input rows per window (a shorter part is an error).
    #[arg(long, env = "INPUT_SEQ_LEN")]
    pub input_len: Option<usize>,
    /// Rows predicted per window.
    #[arg(long, env = "OUTPUT_SEQ_LEN")]
    pub output_len: Option<usize>,
    /// Refuse inputs larger than this many bytes (a ceiling requests cannot raise).
    #[arg(long, env = "MAX_INPUT_BYTES")]
    pub max_input_bytes: Option<u64>,
    /// Refuse inputs claiming more rows, before decoding (a ceiling requests cannot raise).
    #[arg(long, env = "MAX_INPUT_ROWS")]
    pub max_input_rows: Option<u64>,
    /// Refuse inputs with more columns, before decoding (a ceiling requests cannot raise).
    #[arg(long, env = "MAX_INPUT_COLUMNS")]
    pub max_input_columns: Option<u64>,
    /// Refuse inputs that would decode to more bytes, before decoding (a ceiling requests cannot raise).
    #[arg(long, env = "MAX_DECODED_BYTES")]
    pub max_decoded_bytes: Option<u64>,
    /// Free text mixed into the config hash.
    #[arg(long, env = "CONFIG_SALT")]
    pub salt: Option<String>,
}

impl ConfigArgs {
    /// The settings given, as a merge patch in config-file shape.
    pub fn patch(&self) -> Value {
        let mut top = Map::new();
        let mut clean = Map::new();
        fn put<T: Serialize>(m: &mut Map<String, Value>, key: &str, v: &Option<T>) {
            if let Some(v) = v.as_ref().and_then(|v| serde_json::to_value(v).ok()) {
                m.insert(key.into(), v);
            }
        }
        put(&mut top, "timestamp_column", &self.timestamp_column);
        put(&mut top, "timestamp_format", &self.timestamp_format);
        put(&mut top, "timestamp_unit", &self.timestamp_unit);
        put(&mut top, "csv_separator", &self.csv_separator);
        put(&mut top, "features", &self.features);
        put(&mut top, "targets", &self.targets);
        put(&mut top, "interval_ms", &self.interval_ms);
        put(&mut clean, "sort", &self.clean_sort);
        put(&mut clean, "drop_duplicates", &self.clean_drop_duplicates);
        put(&mut clean, "regularize", &self.clean_regularize);
        put(&mut clean, "fill", &self.fill);
        put(&mut clean, "fill_value", &self.fill_value);
        put(&mut clean, "fill_limit", &self.fill_limit);
        put(&mut clean, "drop_unfilled", &self.drop_unfilled);
        put(&mut clean, "outliers", &self.outliers);
        put(&mut clean, "outlier_lower_pct", &self.outlier_lower_pct);
        put(&mut clean, "outlier_upper_pct", &self.outlier_upper_pct);
        put(&mut clean, "outlier_iqr_k", &self.outlier_iqr_k);
        put(&mut top, "calendar_features", &self.calendar_features);
        put(&mut top, "calendar_utc_offset_minutes", &self.calendar_utc_offset_minutes);
        put(&mut top, "scaler", &self.scaler);
        put(&mut top, "test_fraction", &self.test_fraction);
        put(&mut top, "sample_train_rows", &self.sample_train_rows);
        put(&mut top, "sample_test_rows", &self.sample_test_rows);
        put(&mut top, "input_len", &self.input_len);
        put(&mut top, "output_len", &self.output_len);
        put(&mut top, "max_input_bytes", &self.max_input_bytes);
        put(&mut top, "max_input_rows", &self.max_input_rows);
        put(&mut top, "max_input_columns", &self.max_input_columns);
        put(&mut top, "max_decoded_bytes", &self.max_decoded_bytes);
        put(&mut top, "salt", &self.salt);
        if !clean.is_empty() {
            top.insert("clean".into(), Value::Object(clean));
        }
        Value::Object(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layers_merge_in_order_and_nulls_restore_defaults() {
        let file = json!({"timestamp_column": "time", "clean": {"fill": "ffill", "fill_limit": 5}, "salt": "x"});
        let env = json!({"clean": {"fill_limit": 7}});
        let request = json!({"salt": null, "scaler": "standard"});
        let c = PreprocessConfig::resolve(&[&file, &env, &Value::Null, &request]).unwrap();
        assert_eq!(c.timestamp_column.as_deref(), Some("time"));
        assert_eq!(c.clean.fill, FillMethod::Ffill);
        assert_eq!(c.clean.fill_limit, 7);
        assert!(c.clean.sort, "untouched nested defaults stay");
        assert_eq!(c.salt, "");
        assert_eq!(c.scaler, ScalerKind::Standard);
    }

    #[test]
    fn unknown_and_inconsistent_settings_are_refused() {
        let e = PreprocessConfig::resolve(&[&json!({"sclaer": "minmax"})]).unwrap_err();
        assert!(e.to_string().contains("unknown field `sclaer`"), "{e}");
        let e = PreprocessConfig::resolve(&[&json!({"features": ["a"], "targets": ["b"]})]).unwrap_err();
        assert_eq!(e.to_string(), "invalid config: target `b` is not among the features [\"a\"]");
        let e = PreprocessConfig::resolve(&[&json!({"test_fraction": 1.0})]).unwrap_err();
        assert!(e.to_string().contains("test_fraction"), "{e}");
        let e = PreprocessConfig::resolve(&[&json!({"clean": {"fill": "magic"}})]).unwrap_err();
        assert!(e.to_string().contains("unknown variant `magic`"), "{e}");
        assert!(PreprocessConfig::resolve(&[&json!(["not", "an", "object"])]).is_err());
    }

    #[test]
    fn toml_and_json_files_load_alike() {
        let dir = std::env::temp_dir().join(format!("flts-preprocess-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("c.toml");
        std::fs::write(&t, "timestamp_column = \"time\"\ntargets = [\"down\"]\n[clean]\nfill = \"ffill\"\n").unwrap();
        let j = dir.join("c.json");
        std::fs::write(&j, r#"{"timestamp_column":"time","targets":["down"],"clean":{"fill":"ffill"}}"#).unwrap();
        assert_eq!(load_file(&t).unwrap(), load_file(&j).unwrap());
        std::fs::write(&t, "timestamp_column = ").unwrap();
        let e = load_file(&t).unwrap_err();
        assert!(e.to_string().starts_with(&format!("config file {} is not valid TOML", t.display())), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn canonical_json_sorts_keys_and_hash_inputs_matter() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": {"d": [1, {"z": 0, "y": null}], "c": "x"}})),
            r#"{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}"#
        );
        let c = PreprocessConfig::default();
        let a = canonical_json(&c.canonical("aa", None));
        assert_eq!(a, canonical_json(&c.canonical("aa", None)));
        assert_ne!(a, canonical_json(&c.canonical("bb", None)));
        let longer = PreprocessConfig { input_len: 48, ..c.clone() };
        assert_eq!(a, canonical_json(&longer.canonical("aa", None)), "window lengths do not change the output");
        let salted = PreprocessConfig { salt: "v2".into(), ..c };
        assert_ne!(a, canonical_json(&salted.canonical("aa", None)));
    }

    #[test]
    fn example_file_lists_every_setting_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("preprocess.example.toml");
        let file = load_file(&path).unwrap();
        assert_eq!(PreprocessConfig::resolve(&[&file]).unwrap(), PreprocessConfig::default());
        let mut all = serde_json::to_value(PreprocessConfig::default()).unwrap();
        if let Value::Object(m) = &mut all {
            m.retain(|_, v| !v.is_null());
        }
        assert_eq!(file, all, "every key that has a default value is in the example");
    }

    #[test]
    fn operator_limits_are_ceilings_a_request_can_lower_but_never_raise() {
        let file = json!({"max_input_rows": 1_000});
        let env = json!({"max_input_bytes": 50_000, "max_decoded_bytes": 4_000_000});
        let raise = json!({"max_input_bytes": 1_000_000_000_000_000u64, "max_input_rows": u64::MAX,
            "max_input_columns": u64::MAX, "max_decoded_bytes": u64::MAX, "scaler": "standard"});
        let c = PreprocessConfig::resolve_request(&[&file, &env], &raise).unwrap();
        assert_eq!((c.max_input_bytes, c.max_input_rows, c.max_decoded_bytes), (50_000, 1_000, 4_000_000));
        assert_eq!(c.max_input_columns, PreprocessConfig::default().max_input_columns);
        assert_eq!(c.scaler, ScalerKind::Standard, "other overrides still apply");
        let lower = json!({"max_input_bytes": 10, "max_input_rows": 5, "max_input_columns": 2, "max_decoded_bytes": 7});
        let c = PreprocessConfig::resolve_request(&[&file, &env], &lower).unwrap();
        assert_eq!((c.max_input_bytes, c.max_input_rows, c.max_input_columns, c.max_decoded_bytes), (10, 5, 2, 7));
        // Every limit field is a ceiling: each raised alone stays at the operator's value.
        let ceiling = PreprocessConfig::resolve(&[&file, &env]).unwrap();
        for key in LIMITS {
            let c = PreprocessConfig::resolve_request(&[&file, &env], &json!({ key: u64::MAX })).unwrap();
            let (got, want) =
                (serde_json::to_value(&c).unwrap()[key].clone(), serde_json::to_value(&ceiling).unwrap()[key].clone());
            assert_eq!(got, want, "{key}");
        }
        // Null in a request restores a default, which must not exceed the operator's value either.
        let c = PreprocessConfig::resolve_request(&[&file, &env], &json!({"max_input_bytes": null})).unwrap();
        assert_eq!(c.max_input_bytes, 50_000);
    }

    #[test]
    fn args_patch_has_only_what_was_given() {
        let args = ConfigArgs { fill_limit: Some(3), targets: Some(vec!["down".into()]), ..Default::default() };
        assert_eq!(args.patch(), json!({"targets": ["down"], "clean": {"fill_limit": 3}}));
    }
}
