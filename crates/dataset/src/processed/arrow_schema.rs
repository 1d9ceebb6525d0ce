//! The `ARROW:schema` entry of processed Parquet, with the `flts.*` metadata
//! inside it.
//!
//! Arrow readers (pyarrow's `read_schema(...).metadata`, pandas, DuckDB)
//! take a file's schema metadata from the Arrow schema stored under the
//! `ARROW:schema` key, and ignore the file-level key-value metadata when that
//! key is present. polars writes that schema without any metadata, so the
//! `flts.*` keys were invisible to them. This builds the same schema polars
//! would write (same fields, same IPC encoding) with the metadata attached;
//! polars keeps an `ARROW:schema` it is given instead of writing its own.

use base64::Engine as _;
use polars::prelude::{CompatLevel, DataFrame, SchemaExt};
use polars_arrow::datatypes::Metadata;
use polars_arrow::io::ipc::write::{default_ipc_fields, schema_to_bytes};

/// The key Arrow readers look for.
pub const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// `(ARROW:schema, base64 of the IPC schema message)` for `df`'s columns,
/// carrying `metadata` as the schema's custom metadata.
pub fn arrow_schema_entry(df: &DataFrame, metadata: &[(String, String)]) -> (String, String) {
    let schema = df.schema().to_arrow(CompatLevel::newest());
    let custom: Metadata = metadata.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect();
    let message = schema_to_bytes(&schema, &default_ipc_fields(schema.iter_values()), Some(&custom));
    // The encapsulated IPC framing Arrow's own Parquet writers use: a
    // continuation marker, the length, then the flatbuffer.
    let mut framed = Vec::with_capacity(message.len() + 8);
    framed.extend_from_slice(&[0xff; 4]);
    framed.extend_from_slice(&(message.len() as u32).to_le_bytes());
    framed.extend_from_slice(&message);
    (ARROW_SCHEMA_KEY.to_string(), base64::engine::general_purpose::STANDARD.encode(framed))
}

#[cfg(test)]
mod tests {
    use polars::prelude::{Float64Chunked, Int64Chunked, IntoColumn};

    use super::*;

    #[test]
    fn the_entry_is_a_framed_ipc_schema_that_carries_the_metadata() {
        let cols = vec![
            Int64Chunked::from_vec("timestamp".into(), vec![1, 2]).into_column(),
            Float64Chunked::from_vec("down".into(), vec![0.5, 1.0]).into_column(),
        ];
        let df = DataFrame::new(2, cols).unwrap();
        let meta = [("flts.config_hash".to_string(), "ab".repeat(32))];
        let (key, value) = arrow_schema_entry(&df, &meta);
        assert_eq!(key, "ARROW:schema");
        let bytes = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
        assert_eq!(bytes[..4], [0xff; 4]);
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len() - 8);
        let text = String::from_utf8_lossy(&bytes);
        for needle in ["flts.config_hash", &"ab".repeat(32), "timestamp", "down"] {
            assert!(text.contains(needle), "{needle} missing from the schema message");
        }
        // Without metadata it is what polars writes itself (no custom metadata).
        let (_, plain) = arrow_schema_entry(&df, &[]);
        assert!(
            !String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(plain).unwrap())
                .contains("flts.")
        );
    }
}
