//! The Model Registry (MLflow 2.9+ REST API): registered models, their
//! versions and aliases. Errors follow the client's policy: each says whether
//! a retry can help ([`contracts::error::Classified`]); callers retry.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{KeyValue, MlflowClient, MlflowError};

/// One version of a registered model.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl ModelVersion {
    /// Value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }
}

/// `name = '...'`-style filter for `model-versions/search`, quoted like
/// [`crate::Filter`] so a value cannot add a clause.
fn eq_clause(key: &str, value: &str) -> Result<String, MlflowError> {
    Ok(format!("{key} = {}", crate::quote(value)?))
}

/// Whether MLflow answered that the resource exists already.
fn already_exists(e: &MlflowError) -> bool {
    matches!(e, MlflowError::Api { error_code, .. } if error_code == "RESOURCE_ALREADY_EXISTS")
}

/// MLflow answers an unknown alias with INVALID_PARAMETER_VALUE
/// ("Registered model alias champion not found."), not RESOURCE_DOES_NOT_EXIST.
fn alias_missing(e: &MlflowError) -> bool {
    matches!(e, MlflowError::Api { error_code, message, .. }
        if error_code == "INVALID_PARAMETER_VALUE" && message.contains("alias") && message.contains("not found"))
}

impl MlflowClient {
    /// Create registered model `name`; an existing one is fine (idempotent).
    pub async fn create_registered_model(&self, name: &str, description: &str) -> Result<(), MlflowError> {
        let body = json!({ "name": name, "description": description });
        match self.call::<Value>(Method::POST, "registered-models/create", &[], Some(body)).await {
            Ok(_) => Ok(()),
            Err(e) if already_exists(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A new version of `name` whose files are at `source` (e.g. a run's
    /// `<artifact_uri>/model`), from run `run_id`, with `tags`.
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[KeyValue],
    ) -> Result<ModelVersion, MlflowError> {
        #[derive(Deserialize)]
        struct Created {
            model_version: ModelVersion,
        }
        let body = json!({ "name": name, "source": source, "run_id": run_id, "tags": tags });
        Ok(self.call::<Created>(Method::POST, "model-versions/create", &[], Some(body)).await?.model_version)
    }

    /// Versions of `name`, optionally only those of run `run_id` (newest first).
    pub async fn search_model_versions(
        &self,
        name: &str,
        run_id: Option<&str>,
        max_results: u32,
    ) -> Result<Vec<ModelVersion>, MlflowError> {
        #[derive(Deserialize)]
        struct Found {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
        }
        let mut filter = eq_clause("name", name)?;
        if let Some(run) = run_id {
            filter = format!("{filter} and {}", eq_clause("run_id", run)?);
        }
        let max = max_results.to_string();
        let query = [("filter", filter.as_str()), ("max_results", max.as_str()), ("order_by", "version_number DESC")];
        Ok(self.call::<Found>(Method::GET, "model-versions/search", &query, None).await?.model_versions)
    }

    /// Point `alias` of `name` at `version` (moves it if it pointed elsewhere).
    pub async fn set_registered_model_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), MlflowError> {
        let body = json!({ "name": name, "alias": alias, "version": version });
        self.call::<Value>(Method::POST, "registered-models/alias", &[], Some(body)).await.map(|_| ())
    }

    /// Remove `alias` from `name`.
    pub async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<(), MlflowError> {
        let body = json!({ "name": name, "alias": alias });
        self.call::<Value>(Method::DELETE, "registered-models/alias", &[], Some(body)).await.map(|_| ())
    }

    /// The version `alias` of `name` points at; `Ok(None)` when the model or
    /// the alias does not exist.
    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<Option<ModelVersion>, MlflowError> {
        #[derive(Deserialize)]
        struct Got {
            model_version: ModelVersion,
        }
        let query = [("name", name), ("alias", alias)];
        match self.call::<Got>(Method::GET, "registered-models/alias", &query, None).await {
            Ok(g) => Ok(Some(g.model_version)),
            Err(e) if e.is_not_found() || alias_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use contracts::error::Classified as _;

    use super::*;

    #[test]
    fn version_filters_are_quoted() {
        assert_eq!(eq_clause("name", "flts-site-1").unwrap(), "name = 'flts-site-1'");
        assert_eq!(eq_clause("run_id", "a'b").unwrap(), "run_id = \"a'b\"");
        assert!(eq_clause("name", "a'b\"c").is_err());
    }

    #[test]
    fn versions_decode_with_tags_and_aliases() {
        let v: ModelVersion = serde_json::from_str(
            r#"{"name":"flts-x","version":"3","source":"mlflow-artifacts:/1/r/artifacts/model","run_id":"r",
                "status":"READY","tags":[{"key":"flts.sequence","value":"7"}],"aliases":["champion"]}"#,
        )
        .unwrap();
        assert_eq!(v.tag("flts.sequence"), Some("7"));
        assert_eq!(v.aliases, vec!["champion".to_string()]);
        let bare: ModelVersion = serde_json::from_str(r#"{"name":"flts-x","version":"1"}"#).unwrap();
        assert!(bare.tags.is_empty() && bare.run_id.is_none());
    }

    #[test]
    fn already_exists_is_recognised() {
        let e = crate::api_error(
            "registered-models/create",
            reqwest::StatusCode::BAD_REQUEST,
            r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"exists"}"#,
        );
        assert!(already_exists(&e) && !e.is_retryable());
        let e = crate::api_error(
            "registered-models/alias",
            reqwest::StatusCode::BAD_REQUEST,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Registered model alias champion not found."}"#,
        );
        assert!(alias_missing(&e));
        let e = crate::api_error(
            "registered-models/alias",
            reqwest::StatusCode::BAD_REQUEST,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Missing value for required parameter 'name'."}"#,
        );
        assert!(!alias_missing(&e), "a malformed request is an error, not a missing alias");
    }
}
