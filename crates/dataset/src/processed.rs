//! Processed Parquet, as `docs/data-contract.md` defines it: an Int64
//! `timestamp` (ms UTC, strictly increasing), one Float64 column per feature
//! in feature order, zstd, and `flts.*` key-value metadata.

use std::io::Cursor;

use polars::prelude::{
    DataFrame, DataType, Float64Chunked, Int64Chunked, IntoColumn, KeyValueMetadata, ParquetCompression, ParquetReader,
    ParquetWriter, PolarsError, SerReader,
};
use series::{Column, Frame, ProcessedMeta, Roles, Scaler};

use crate::error::DatasetError;

mod arrow_schema;
use crate::limits::ReadLimits;
use crate::timestamp::{MAX_MS, MIN_MS};

/// SHA-256 hex of the canonical config (plain text, not JSON-quoted).
pub const META_CONFIG_HASH: &str = "flts.config_hash";
/// The canonical config, compact JSON with sorted keys.
pub const META_CONFIG: &str = "flts.config";
/// The scaler JSON.
pub const META_SCALER: &str = "flts.scaler";
/// The column roles JSON.
pub const META_ROLES: &str = "flts.roles";
/// The long-gap ranges, a JSON array of `[first, last]` timestamps in ms;
/// absent when there are none.
pub const META_GAPS: &str = "flts.gaps";

/// Gap ranges must each be `first <= last`, sorted and not overlapping.
fn check_gaps(gaps: &[[i64; 2]]) -> Result<(), String> {
    if let Some(g) = gaps.iter().find(|g| g[0] > g[1]) {
        return Err(format!("range [{}, {}] ends before it starts", g[0], g[1]));
    }
    if let Some(w) = gaps.windows(2).find(|w| w[1][0] <= w[0][1]) {
        return Err(format!(
            "ranges [{}, {}] and [{}, {}] are not sorted and apart",
            w[0][0], w[0][1], w[1][0], w[1][1]
        ));
    }
    Ok(())
}

/// Check what the contract promises about processed data.
fn check(frame: &Frame, roles: &Roles) -> Result<(), DatasetError> {
    frame.check()?;
    roles.validate()?;
    let actual: Vec<String> = frame.column_names().map(str::to_string).collect();
    if actual != roles.features {
        return Err(DatasetError::ColumnsNotFeatures { expected: roles.features.clone(), actual });
    }
    if let Some(i) = frame.timestamps.iter().position(|t| !(MIN_MS..=MAX_MS).contains(t)) {
        return Err(DatasetError::TimestampOutOfRange {
            file: "processed data".into(),
            row: crate::Row { index: i, csv: false },
            column: roles.timestamp.clone(),
            ms: frame.timestamps[i],
        });
    }
    if let Some(i) = frame.timestamps.windows(2).position(|w| w[1] <= w[0]) {
        return Err(DatasetError::NotIncreasing { row: i + 1, prev: frame.timestamps[i], ts: frame.timestamps[i + 1] });
    }
    for c in &frame.columns {
        if let Some(row) = c.values.iter().position(|v| !v.is_finite()) {
            return Err(DatasetError::NotFinite { column: c.name.clone(), row, value: c.values[row] });
        }
    }
    Ok(())
}

/// Encode a processed part. The frame's columns must be exactly the features
/// of `meta.roles`, in order, finite, with strictly increasing timestamps.
pub fn write_processed(frame: &Frame, meta: &ProcessedMeta) -> Result<Vec<u8>, DatasetError> {
    check(frame, &meta.roles)?;
    check_gaps(&meta.gaps).map_err(|m| DatasetError::Write(format!("{META_GAPS}: {m}")))?;
    let mut cols = Vec::with_capacity(frame.columns.len() + 1);
    cols.push(Int64Chunked::from_vec(meta.roles.timestamp.as_str().into(), frame.timestamps.clone()).into_column());
    for c in &frame.columns {
        cols.push(Float64Chunked::from_vec(c.name.as_str().into(), c.values.clone()).into_column());
    }
    let mut df = DataFrame::new(frame.len(), cols).map_err(|e| DatasetError::Write(e.to_string()))?;
    let roles = serde_json::to_string(&meta.roles).map_err(|e| DatasetError::Write(e.to_string()))?;
    let mut kv = vec![
        (META_CONFIG_HASH.to_string(), meta.config_hash.clone()),
        // Value's Display is compact JSON.
        (META_CONFIG.to_string(), meta.config.to_string()),
        (META_SCALER.to_string(), meta.scaler.to_json()),
        (META_ROLES.to_string(), roles),
    ];
    // Absent when there are none, so files without gaps read as before.
    if !meta.gaps.is_empty() {
        let gaps = serde_json::to_string(&meta.gaps).map_err(|e| DatasetError::Write(e.to_string()))?;
        kv.push((META_GAPS.to_string(), gaps));
    }
    // The same keys inside the Arrow schema, where pyarrow and pandas look.
    let kv = [vec![arrow_schema::arrow_schema_entry(&df, &kv)], kv].concat();
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
        .finish(&mut df)
        .map_err(|e| DatasetError::Write(e.to_string()))?;
    Ok(buf)
}

fn bad(key: &'static str) -> impl Fn(String) -> DatasetError {
    move |message| DatasetError::BadMetadata { key, message }
}

/// Decode a processed part: the frame (features in role order) and its
/// metadata, under the default [`ReadLimits`].
pub fn read_processed(bytes: &[u8]) -> Result<(Frame, ProcessedMeta), DatasetError> {
    read_processed_limited(bytes, &ReadLimits::default())
}

/// [`read_processed`] under `limits`: what the footer and page headers claim
/// is checked before anything is decoded.
pub fn read_processed_limited(bytes: &[u8], limits: &ReadLimits) -> Result<(Frame, ProcessedMeta), DatasetError> {
    crate::limits::check_parquet("processed Parquet", bytes, limits)?;
    crate::limits::no_panic("processed Parquet", "Parquet", || decode_processed(bytes))
}

fn decode_processed(bytes: &[u8]) -> Result<(Frame, ProcessedMeta), DatasetError> {
    let read_err = |e: PolarsError| DatasetError::Read {
        file: "processed Parquet".into(),
        format: "Parquet",
        message: e.to_string(),
    };
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let kv = reader.get_metadata().map_err(read_err)?.key_value_metadata().clone().unwrap_or_default();
    let get = |key: &'static str| -> Result<String, DatasetError> {
        kv.iter().find(|e| e.key == key).and_then(|e| e.value.clone()).ok_or(DatasetError::MissingMetadata { key })
    };
    let raw_hash = get(META_CONFIG_HASH)?;
    // Accept a JSON-quoted hash too ("all values JSON strings").
    let config_hash = serde_json::from_str::<String>(&raw_hash).unwrap_or(raw_hash);
    let config = serde_json::from_str(&get(META_CONFIG)?).map_err(|e| bad(META_CONFIG)(e.to_string()))?;
    let scaler = Scaler::from_json(&get(META_SCALER)?).map_err(|e| bad(META_SCALER)(e.to_string()))?;
    let roles: Roles = serde_json::from_str(&get(META_ROLES)?).map_err(|e| bad(META_ROLES)(e.to_string()))?;
    roles.validate().map_err(|e| bad(META_ROLES)(e.to_string()))?;
    let gaps: Vec<[i64; 2]> = match kv.iter().find(|e| e.key == META_GAPS).and_then(|e| e.value.as_deref()) {
        Some(text) => serde_json::from_str(text).map_err(|e| bad(META_GAPS)(e.to_string()))?,
        None => Vec::new(),
    };
    check_gaps(&gaps).map_err(bad(META_GAPS))?;
    let df = reader.finish().map_err(read_err)?;

    let ts_col = df.column(&roles.timestamp).map_err(read_err)?;
    let timestamps: Vec<i64> = match ts_col.dtype() {
        DataType::Int64 => ts_col.i64().map_err(read_err)?.iter().map(|v| v.unwrap_or(i64::MIN)).collect(),
        other => {
            return Err(bad(META_ROLES)(format!("timestamp column `{}` is {other}, not Int64", roles.timestamp)));
        }
    };
    let mut columns = Vec::with_capacity(roles.features.len());
    for name in &roles.features {
        let col = df.column(name).map_err(read_err)?;
        let cast = col.cast(&DataType::Float64).map_err(read_err)?;
        let values = cast.f64().map_err(read_err)?.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        columns.push(Column { name: name.clone(), values });
    }
    let frame = Frame::new(timestamps, columns)?;
    check(&frame, &roles)?;
    Ok((frame, ProcessedMeta { config_hash, config, scaler, roles, gaps }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use series::ScalerKind;

    fn sample() -> (Frame, ProcessedMeta) {
        let frame = Frame::new(
            vec![0, 120_000, 240_000],
            vec![Column::new("down", vec![0.0, 0.5, 1.0]), Column::new("hour_sin", vec![0.0, 0.1, 0.2])],
        )
        .unwrap();
        let roles = Roles {
            timestamp: "timestamp".into(),
            features: vec!["down".into(), "hour_sin".into()],
            targets: vec!["down".into()],
            interval_ms: 120_000,
        };
        let scaler = Scaler::fit(ScalerKind::MinMax, &frame, &roles.features, &["hour_sin".into()]).unwrap();
        let meta = ProcessedMeta {
            config_hash: "0f".repeat(32),
            config: serde_json::json!({"a": 1, "b": [1, 2]}),
            scaler,
            roles,
            gaps: Vec::new(),
        };
        (frame, meta)
    }

    #[test]
    fn round_trip_keeps_frame_and_metadata() {
        let (frame, meta) = sample();
        let bytes = write_processed(&frame, &meta).unwrap();
        assert!(bytes.starts_with(b"PAR1"));
        let (back, back_meta) = read_processed(&bytes).unwrap();
        assert_eq!(back, frame);
        assert_eq!(back_meta, meta);
    }

    #[test]
    fn gaps_round_trip_and_are_absent_when_empty() {
        let (frame, mut meta) = sample();
        let key = |bytes: &[u8]| {
            let mut reader = ParquetReader::new(Cursor::new(bytes));
            let kv = reader.get_metadata().unwrap().key_value_metadata().clone().unwrap();
            kv.iter().find(|e| e.key == META_GAPS).and_then(|e| e.value.clone())
        };
        let bytes = write_processed(&frame, &meta).unwrap();
        assert_eq!(key(&bytes), None, "no gaps, no key: old readers and files agree");
        assert!(read_processed(&bytes).unwrap().1.gaps.is_empty());
        meta.gaps = vec![[0, 120_000], [360_000, 360_000]];
        let bytes = write_processed(&frame, &meta).unwrap();
        assert_eq!(key(&bytes).as_deref(), Some("[[0,120000],[360000,360000]]"));
        assert_eq!(read_processed(&bytes).unwrap().1, meta);
        meta.gaps = vec![[0, 240_000], [120_000, 360_000]];
        let e = write_processed(&frame, &meta).unwrap_err();
        assert!(e.to_string().contains("flts.gaps: ranges [0, 240000] and [120000, 360000] are not sorted"), "{e}");
        meta.gaps = vec![[5, 4]];
        assert!(write_processed(&frame, &meta).is_err());
    }

    #[test]
    fn metadata_values_are_as_the_contract_says() {
        let (frame, meta) = sample();
        let bytes = write_processed(&frame, &meta).unwrap();
        let mut reader = ParquetReader::new(Cursor::new(&bytes[..]));
        let kv = reader.get_metadata().unwrap().key_value_metadata().clone().unwrap();
        let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone()).unwrap();
        assert_eq!(get(META_CONFIG_HASH), "0f".repeat(32));
        assert_eq!(get(META_CONFIG), r#"{"a":1,"b":[1,2]}"#);
        assert_eq!(
            get(META_ROLES),
            r#"{"timestamp":"timestamp","features":["down","hour_sin"],"targets":["down"],"interval_ms":120000}"#
        );
        assert!(
            get(META_SCALER).starts_with(r#"{"kind":"minmax","columns":[{"name":"down","offset":0.0,"scale":1.0}"#)
        );
        let df = reader.finish().unwrap();
        assert_eq!(df.column("timestamp").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("down").unwrap().dtype(), &DataType::Float64);
    }

    #[test]
    fn refuses_what_the_contract_forbids() {
        let (mut frame, meta) = sample();
        frame.columns[0].values[1] = f64::NAN;
        let e = write_processed(&frame, &meta).unwrap_err();
        assert_eq!(e.to_string(), "processed data: column `down` row 1 is NaN; processed data must be finite");
        let (mut frame, meta) = sample();
        frame.timestamps[2] = 120_000;
        let e = write_processed(&frame, &meta).unwrap_err();
        assert!(e.to_string().contains("timestamp at row 2 (120000) is not after"), "{e}");
        let (mut frame, meta) = sample();
        frame.columns.swap(0, 1);
        assert!(matches!(write_processed(&frame, &meta), Err(DatasetError::ColumnsNotFeatures { .. })));
        assert!(read_processed(b"PAR1 not really").is_err());
    }

    #[test]
    fn missing_metadata_is_named() {
        let (frame, _) = sample();
        let raw = crate::raw::write_raw_parquet(&frame, "timestamp").unwrap();
        let e = read_processed(&raw).unwrap_err();
        assert_eq!(e.to_string(), "processed Parquet has no `flts.config_hash` key-value metadata");
    }
}
