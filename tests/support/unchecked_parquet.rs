//! Processed Parquet without the writer's checks, for the poison and
//! hostile-data tests (`#[path]`-included by both; polars is a dev-dependency,
//! which the shared `flts_tests` library cannot use).

use polars::prelude::{
    DataFrame, Float64Chunked, Int64Chunked, IntoColumn, KeyValueMetadata, ParquetCompression, ParquetWriter,
};
use series::{Frame, ProcessedMeta};

/// Encode `frame` as processed Parquet with `meta`, without the writer's
/// checks (a hostile or buggy producer): any columns, any values.
pub fn unchecked_parquet(frame: &Frame, meta: &ProcessedMeta) -> Vec<u8> {
    let mut cols =
        vec![Int64Chunked::from_vec(meta.roles.timestamp.as_str().into(), frame.timestamps.clone()).into_column()];
    for c in &frame.columns {
        cols.push(Float64Chunked::from_vec(c.name.as_str().into(), c.values.clone()).into_column());
    }
    let mut df = DataFrame::new(frame.len(), cols).expect("data frame");
    let kv = vec![
        (dataset::processed::META_CONFIG_HASH.to_string(), meta.config_hash.clone()),
        (dataset::processed::META_CONFIG.to_string(), meta.config.to_string()),
        (dataset::processed::META_SCALER.to_string(), meta.scaler.to_json()),
        (dataset::processed::META_ROLES.to_string(), serde_json::to_string(&meta.roles).expect("roles")),
    ];
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
        .finish(&mut df)
        .expect("write parquet");
    buf
}
