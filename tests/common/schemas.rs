//! Real messages against the JSON Schemas in `schemas/` (the documents other
//! teams' producers and consumers read), checked with a JSON Schema validator
//! rather than our own decoder.

use std::collections::BTreeMap;

use crate::repo_root;

/// Every `schemas/<name>.schema.json`, compiled.
pub struct Schemas {
    by_name: BTreeMap<String, jsonschema::Validator>,
}

impl Schemas {
    /// Load and compile every schema; a schema that is not valid JSON Schema fails here.
    pub fn load() -> Self {
        let mut by_name = BTreeMap::new();
        for entry in std::fs::read_dir(repo_root().join("schemas")).expect("schemas/") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".schema.json"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).expect("read schema");
            let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
            let validator =
                jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: not a valid schema: {e}"));
            by_name.insert(name.to_string(), validator);
        }
        Schemas { by_name }
    }

    /// Check `payload` (a record's bytes) against schema `name` (e.g. `model-selected`).
    pub fn check(&self, name: &str, payload: &[u8]) -> Result<(), String> {
        let validator = self.by_name.get(name).ok_or_else(|| format!("no schema {name}"))?;
        let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }
}
