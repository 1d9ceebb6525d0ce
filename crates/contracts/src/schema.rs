//! JSON Schema for every message, generated from the Rust types.
//!
//! `schemas/<name>.schema.json` in the repository are this module's output; the
//! test `schemas_match_rust_types` fails when they drift, and
//! `UPDATE_SCHEMAS=1 cargo test -p contracts` rewrites them.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

use crate::messages::*;

fn schema_of<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>()
}

/// (file stem, schema) for every message type.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("training-data", schema_of::<TrainingData>()),
        ("inference-data", schema_of::<InferenceData>()),
        ("model-training", schema_of::<ModelTraining>()),
        ("model-selected", schema_of::<ModelSelected>()),
        ("performance-eval", schema_of::<PerformanceEval>()),
        ("preprocess-requests", schema_of::<PreprocessRequest>()),
        ("model-drift", schema_of::<ModelDrift>()),
        ("dlq-envelope", schema_of::<DlqEnvelope>()),
    ]
}
