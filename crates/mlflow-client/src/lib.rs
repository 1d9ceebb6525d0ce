//! FLTS client for the MLflow tracking server's REST API (reqwest, JSON).
//!
//! Covers what the pipeline needs: experiments (get-or-create), runs (create,
//! update, get, search ordered by a metric), batched params/metrics/tags, and
//! artifacts uploaded and downloaded through the server's artifact proxy
//! (`mlflow-artifacts:/` URIs), so clients need only HTTP to the server.
//! Errors carry MLflow's `error_code` and message and say whether a retry can help.

use std::time::Duration;

use contracts::error::{Classified, Code};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod registry;
pub use registry::ModelVersion;

/// Where the tracking server is (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct MlflowArgs {
    /// MLflow tracking server URL, e.g. http://127.0.0.1:5000.
    #[arg(long = "mlflow-tracking-uri", env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    pub tracking_uri: String,
    /// Per-request timeout in seconds (artifact transfers included).
    #[arg(id = "mlflow_timeout_secs", long = "mlflow-timeout-secs", env = "MLFLOW_TIMEOUT_SECS", default_value_t = 60)]
    pub timeout_secs: u64,
}

/// An MLflow call failed.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("MLflow {endpoint} answered HTTP {status} {error_code}: {message}")]
    Api { endpoint: String, status: u16, error_code: String, message: String },
    #[error("MLflow {endpoint} unreachable: {source}")]
    Transport { endpoint: String, source: reqwest::Error },
    #[error("MLflow {endpoint} sent an unexpected body: {message}")]
    Decode { endpoint: String, message: String },
    #[error("artifact URI {0:?} is not served by the tracking server's artifact proxy (mlflow-artifacts:/)")]
    UnsupportedArtifactUri(String),
    #[error("metric {key} has a non-finite value {value}")]
    NonFiniteMetric { key: String, value: f64 },
    #[error("cannot put {what} {value:?} in a search filter: {reason}")]
    UnsafeFilter { what: &'static str, value: String, reason: &'static str },
}

/// Unreachable or overloaded (5xx, 429, TEMPORARILY_UNAVAILABLE) is retryable
/// `mlflow_unavailable`; "does not exist" is `run_not_found`; a filter value
/// that cannot be quoted is `bad_filter`; anything else `mlflow_error`.
impl Classified for MlflowError {
    fn code(&self) -> Code {
        match self {
            MlflowError::Transport { .. } => Code::MlflowUnavailable,
            MlflowError::Api { status, error_code, .. }
                if *status >= 500 || *status == 429 || error_code == "TEMPORARILY_UNAVAILABLE" =>
            {
                Code::MlflowUnavailable
            }
            e if e.is_not_found() => Code::RunNotFound,
            MlflowError::UnsafeFilter { .. } => Code::BadFilter,
            _ => Code::MlflowError,
        }
    }
}

impl MlflowError {
    /// Whether MLflow said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, MlflowError::Api { error_code, status, .. } if error_code == "RESOURCE_DOES_NOT_EXIST" || *status == 404)
    }
}

/// A run as MLflow returns it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
}

/// A run's identity and lifecycle.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    #[serde(default)]
    pub run_name: Option<String>,
    pub status: String,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
}

/// A run's metrics (latest values), params and tags.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct RunData {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// One metric value at a step.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    #[serde(default)]
    pub step: i64,
}

impl Metric {
    /// A metric stamped now.
    pub fn now(key: impl Into<String>, value: f64, step: i64) -> Self {
        Metric { key: key.into(), value, timestamp: chrono_ms(), step }
    }
}

/// A param or tag.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue { key: key.into(), value: value.into() }
    }
}

/// An artifact listed under a run.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ArtifactFile {
    pub path: String,
    pub is_dir: bool,
    #[serde(default)]
    pub file_size: Option<i64>,
}

impl Run {
    /// Latest value of metric `key`.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.data.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }
    /// Value of param `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.data.params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }
    /// Value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.data.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }
}

/// Final states of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A search filter (`runs/search`) built from parts, each quoted so that no
/// value can end its string and add a clause of its own. MLflow's filter
/// grammar has no escape sequence that it un-escapes, so a value is put
/// between single quotes, or double quotes when it holds a single one, and a
/// value it cannot quote (both quote kinds, a backslash, a control character)
/// is refused instead of being searched for something else. Every filter
/// built from data must go through this type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    clauses: Vec<String>,
}

impl Filter {
    pub fn new() -> Self {
        Filter::default()
    }

    /// `tags.`key` = 'value'`
    pub fn tag_eq(self, key: &str, value: &str) -> Result<Self, MlflowError> {
        self.clause("tags", key, value)
    }

    /// `params.`key` = 'value'`
    pub fn param_eq(self, key: &str, value: &str) -> Result<Self, MlflowError> {
        self.clause("params", key, value)
    }

    /// `attributes.key = 'value'` (e.g. `status`, `run_id`).
    pub fn attribute_eq(self, key: &str, value: &str) -> Result<Self, MlflowError> {
        self.clause("attributes", key, value)
    }

    fn clause(mut self, kind: &str, key: &str, value: &str) -> Result<Self, MlflowError> {
        let key_ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !key_ok {
            return Err(MlflowError::UnsafeFilter {
                what: "key",
                value: key.chars().take(100).collect(),
                reason: "keys are A-Z a-z 0-9 . _ -",
            });
        }
        let value = quote(value)?;
        // Attribute names are plain identifiers; tag and param keys may hold dots.
        let key = if kind == "attributes" { key.to_string() } else { format!("`{key}`") };
        self.clauses.push(format!("{kind}.{key} = {value}"));
        Ok(self)
    }

    /// The filter text (clauses joined by `and`; empty matches every run).
    pub fn as_str(&self) -> String {
        self.clauses.join(" and ")
    }
}

/// `value` as one MLflow string literal, or an error when it cannot be one.
fn quote(value: &str) -> Result<String, MlflowError> {
    let refuse =
        |reason| Err(MlflowError::UnsafeFilter { what: "value", value: value.chars().take(100).collect(), reason });
    if value.chars().any(|c| c.is_control() || c == '\\') {
        return refuse("control characters and backslashes cannot be quoted");
    }
    match (value.contains('\''), value.contains('"')) {
        (false, _) => Ok(format!("'{value}'")),
        (true, false) => Ok(format!("\"{value}\"")),
        (true, true) => refuse("a value with both quote characters cannot be quoted"),
    }
}

/// The REST client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MlflowClient {
    http: reqwest::Client,
    base: String,
}

/// MLflow's log-batch limits per request: 1000 items in all, 100 params, 100 tags.
const MAX_ITEMS_PER_BATCH: usize = 1000;
const MAX_PARAMS_PER_BATCH: usize = 100;

impl MlflowClient {
    pub fn new(args: &MlflowArgs) -> Result<Self, MlflowError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout_secs))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| MlflowError::Transport { endpoint: "client".into(), source })?;
        Ok(MlflowClient { http, base: args.tracking_uri.trim_end_matches('/').to_string() })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<T, MlflowError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let mut req = self.http.request(method, &url).query(query);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|source| MlflowError::Transport { endpoint: endpoint.into(), source })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|source| MlflowError::Transport { endpoint: endpoint.into(), source })?;
        if !status.is_success() {
            return Err(api_error(endpoint, status, &text));
        }
        let text = if text.trim().is_empty() { "{}" } else { text.as_str() };
        serde_json::from_str(text)
            .map_err(|e| MlflowError::Decode { endpoint: endpoint.into(), message: e.to_string() })
    }

    /// The id of experiment `name`, created if it does not exist.
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<String, MlflowError> {
        #[derive(Deserialize)]
        struct Exp {
            experiment_id: String,
        }
        #[derive(Deserialize)]
        struct Get {
            experiment: Exp,
        }
        match self.call::<Get>(Method::GET, "experiments/get-by-name", &[("experiment_name", name)], None).await {
            Ok(g) => return Ok(g.experiment.experiment_id),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        match self.call::<Exp>(Method::POST, "experiments/create", &[], Some(json!({ "name": name }))).await {
            Ok(e) => Ok(e.experiment_id),
            // Another process created it between our two calls.
            Err(MlflowError::Api { error_code, .. }) if error_code == "RESOURCE_ALREADY_EXISTS" => {
                let g: Get =
                    self.call(Method::GET, "experiments/get-by-name", &[("experiment_name", name)], None).await?;
                Ok(g.experiment.experiment_id)
            }
            Err(e) => Err(e),
        }
    }

    /// Start a run in `experiment_id` with `tags`.
    pub async fn create_run(&self, experiment_id: &str, run_name: &str, tags: &[KeyValue]) -> Result<Run, MlflowError> {
        #[derive(Deserialize)]
        struct Created {
            run: Run,
        }
        let body =
            json!({ "experiment_id": experiment_id, "run_name": run_name, "start_time": chrono_ms(), "tags": tags });
        Ok(self.call::<Created>(Method::POST, "runs/create", &[], Some(body)).await?.run)
    }

    /// Mark a run finished, failed or killed.
    pub async fn update_run(&self, run_id: &str, status: RunStatus) -> Result<(), MlflowError> {
        let body = json!({ "run_id": run_id, "status": status.as_str(), "end_time": chrono_ms() });
        self.call::<Value>(Method::POST, "runs/update", &[], Some(body)).await.map(|_| ())
    }

    /// Log metrics, params and tags, split into batches MLflow accepts.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<(), MlflowError> {
        if let Some(m) = metrics.iter().find(|m| !m.value.is_finite()) {
            return Err(MlflowError::NonFiniteMetric { key: m.key.clone(), value: m.value });
        }
        // Per request: at most 1000 items in all, of which at most 100 params and 100 tags.
        let (mut m, mut p, mut t) = (metrics, params, tags);
        loop {
            let np = p.len().min(MAX_PARAMS_PER_BATCH);
            let nt = t.len().min(MAX_PARAMS_PER_BATCH);
            let nm = m.len().min(MAX_ITEMS_PER_BATCH - np - nt);
            let body = json!({ "run_id": run_id, "metrics": &m[..nm], "params": &p[..np], "tags": &t[..nt] });
            self.call::<Value>(Method::POST, "runs/log-batch", &[], Some(body)).await?;
            (m, p, t) = (&m[nm..], &p[np..], &t[nt..]);
            if m.is_empty() && p.is_empty() && t.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Set one tag on a run.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<(), MlflowError> {
        let body = json!({ "run_id": run_id, "key": key, "value": value });
        self.call::<Value>(Method::POST, "runs/set-tag", &[], Some(body)).await.map(|_| ())
    }

    /// A run with its metrics, params and tags.
    pub async fn get_run(&self, run_id: &str) -> Result<Run, MlflowError> {
        #[derive(Deserialize)]
        struct Got {
            run: Run,
        }
        Ok(self.call::<Got>(Method::GET, "runs/get", &[("run_id", run_id)], None).await?.run)
    }

    /// Runs of `experiment_ids` matching `filter` (MLflow search syntax, e.g.
    /// `tags.config_hash = 'abc'`), ordered by `order_by` (e.g.
    /// `metrics.test_rmse ASC`), at most `max_results`.
    pub async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: &str,
        order_by: &[&str],
        max_results: u32,
    ) -> Result<Vec<Run>, MlflowError> {
        #[derive(Deserialize)]
        struct Found {
            #[serde(default)]
            runs: Vec<Run>,
        }
        let body = json!({ "experiment_ids": experiment_ids, "filter": filter, "order_by": order_by, "max_results": max_results });
        Ok(self.call::<Found>(Method::POST, "runs/search", &[], Some(body)).await?.runs)
    }

    fn proxy_url(&self, artifact_uri: &str, path: &str) -> Result<String, MlflowError> {
        let root = artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .ok_or_else(|| MlflowError::UnsupportedArtifactUri(artifact_uri.to_string()))?;
        let root = root.trim_start_matches('/').trim_end_matches('/');
        let path = path.trim_start_matches('/');
        Ok(format!("{}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}", self.base))
    }

    /// Upload `bytes` as artifact `path` under a run's `artifact_uri`.
    pub async fn upload_artifact(&self, artifact_uri: &str, path: &str, bytes: Vec<u8>) -> Result<(), MlflowError> {
        let url = self.proxy_url(artifact_uri, path)?;
        let endpoint = format!("artifacts/{path}");
        let resp = self
            .http
            .put(&url)
            .body(bytes)
            .send()
            .await
            .map_err(|source| MlflowError::Transport { endpoint: endpoint.clone(), source })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(api_error(&endpoint, status, &text));
        }
        Ok(())
    }

    /// Download artifact `path` under a run's `artifact_uri`.
    pub async fn download_artifact(&self, artifact_uri: &str, path: &str) -> Result<Vec<u8>, MlflowError> {
        let url = self.proxy_url(artifact_uri, path)?;
        let endpoint = format!("artifacts/{path}");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| MlflowError::Transport { endpoint: endpoint.clone(), source })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(api_error(&endpoint, status, &text));
        }
        let bytes = resp.bytes().await.map_err(|source| MlflowError::Transport { endpoint, source })?;
        Ok(bytes.to_vec())
    }

    /// Artifacts of a run directly under `path` ("" for the root).
    pub async fn list_artifacts(&self, run_id: &str, path: &str) -> Result<Vec<ArtifactFile>, MlflowError> {
        #[derive(Deserialize)]
        struct Listed {
            #[serde(default)]
            files: Vec<ArtifactFile>,
        }
        let mut query = vec![("run_id", run_id)];
        if !path.is_empty() {
            query.push(("path", path));
        }
        Ok(self.call::<Listed>(Method::GET, "artifacts/list", &query, None).await?.files)
    }
}

fn api_error(endpoint: &str, status: StatusCode, body: &str) -> MlflowError {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        message: String,
    }
    let parsed = serde_json::from_str::<Body>(body).ok();
    let (error_code, message) = match parsed {
        Some(b) if !b.error_code.is_empty() => (b.error_code, b.message),
        _ => (String::new(), body.chars().take(500).collect()),
    };
    MlflowError::Api { endpoint: endpoint.to_string(), status: status.as_u16(), error_code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> MlflowClient {
        MlflowClient::new(&MlflowArgs { tracking_uri: "http://h:5000/".into(), timeout_secs: 1 }).expect("client")
    }

    #[test]
    fn proxy_urls_follow_the_artifact_uri() {
        let c = client();
        assert_eq!(
            c.proxy_url("mlflow-artifacts:/3/abc/artifacts", "model/model.onnx").expect("proxied"),
            "http://h:5000/api/2.0/mlflow-artifacts/artifacts/3/abc/artifacts/model/model.onnx"
        );
        assert!(matches!(c.proxy_url("s3://b/3/abc", "x"), Err(MlflowError::UnsupportedArtifactUri(_))));
    }

    #[test]
    fn filter_values_cannot_add_clauses() {
        let f = Filter::new().tag_eq("flts.identifier", "site-1").unwrap().attribute_eq("status", "FINISHED").unwrap();
        assert_eq!(f.as_str(), "tags.`flts.identifier` = 'site-1' and attributes.status = 'FINISHED'");
        let hostile = "x' or tags.`flts.identifier` != '";
        assert_eq!(
            Filter::new().tag_eq("k", hostile).unwrap().as_str(),
            format!("tags.`k` = \"{hostile}\""),
            "a single quote is inside double quotes, so it ends nothing"
        );
        for bad in ["a'b\"c", "a\\", "a\nb"] {
            assert!(matches!(Filter::new().tag_eq("k", bad), Err(MlflowError::UnsafeFilter { .. })), "{bad:?}");
        }
        for bad_key in ["a`b", "", "a b"] {
            assert!(Filter::new().tag_eq(bad_key, "v").is_err(), "{bad_key:?}");
        }
        assert_eq!(Filter::new().as_str(), "");
    }

    #[test]
    fn api_errors_keep_mlflow_code_and_message() {
        let e = api_error(
            "runs/get",
            StatusCode::NOT_FOUND,
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Run 'x' not found"}"#,
        );
        assert!(e.is_not_found());
        assert!(!e.is_retryable());
        assert_eq!(e.code(), Code::RunNotFound);
        assert!(e.to_string().contains("RESOURCE_DOES_NOT_EXIST: Run 'x' not found"), "{e}");
        let e = api_error("runs/get", StatusCode::SERVICE_UNAVAILABLE, "upstream down");
        assert!(e.is_retryable());
        assert_eq!(e.code(), Code::MlflowUnavailable);
        let e = api_error("runs/create", StatusCode::BAD_REQUEST, r#"{"error_code":"INVALID_PARAMETER_VALUE"}"#);
        assert_eq!((e.code(), e.is_retryable()), (Code::MlflowError, false));
    }
}
