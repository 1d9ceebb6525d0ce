//! The message version field `v`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only message version this build reads and writes.
pub const CURRENT_VERSION: u64 = 1;

/// Marker for `"v": 1`. Deserialising any other value fails with an error that
/// names the field and both versions, so a producer from the future is told
/// apart from a malformed message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(CURRENT_VERSION)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if v == CURRENT_VERSION {
            Ok(V1)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported message version `v` = {v} (this service reads v{CURRENT_VERSION})"
            )))
        }
    }
}

impl JsonSchema for V1 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MessageVersion".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Message format version; this build reads and writes 1.",
            "type": "integer",
            "const": CURRENT_VERSION
        })
    }
}
