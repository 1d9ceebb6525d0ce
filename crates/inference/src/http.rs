//! The HTTP API: `POST /predict`, `GET /model`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics` (documented in `schemas/inference-openapi.yaml`).
//!
//! `/predict` reads the body under a size limit (413), checks it against the
//! served model's shape (400/422, messages that say where), then asks the
//! work queue for a place: the queue admits at most `queue_capacity` requests
//! (running or waiting for one of `workers` blocking threads) and answers 429
//! with `Retry-After` beyond that, so overload turns into fast refusals
//! instead of unbounded latency.
//!
//! Hostile input (docs/reliability.md, "Hostile input: HTTP"): a client that
//! does not finish its request line and headers within `HTTP_HEADER_TIMEOUT_MS`
//! is disconnected, and one that does not finish its body within
//! `HTTP_BODY_TIMEOUT_MS` gets 408, so slow or stalled connections cannot pile
//! up. Values are checked against the range the model accepts (a scaled value
//! beyond `PREDICT_MAX_SCALED_INPUT`, timestamps outside years 1..=9999) and a
//! forecast that is not finite is refused with 422, never answered as `null`.
//! Input never causes a 500.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::admin::{self, Readiness};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use contracts::ModelType;
use model_runtime::model::{Model, ModelInfo, ModelSource, PredictError};
use model_runtime::registry::{Lookup, Registry};

/// HTTP API settings (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address of the HTTP API (/predict, /model, /healthz, /readyz, /metrics).
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Largest accepted request body in bytes; a larger one is refused with 413.
    #[arg(long, env = "HTTP_BODY_LIMIT_BYTES", default_value_t = 256 * 1024)]
    pub body_limit_bytes: usize,
    /// Most windows accepted in one /predict request.
    #[arg(long, env = "PREDICT_MAX_WINDOWS", default_value_t = 1_000)]
    pub max_windows: usize,
    /// Blocking threads that run /predict forward passes (0: one per CPU).
    #[arg(long, env = "PREDICT_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// /predict requests admitted at once, running or waiting for a worker; more get 429.
    #[arg(long, env = "PREDICT_QUEUE_CAPACITY", default_value_t = 256)]
    pub queue_capacity: usize,
    /// Seconds a refused client is told to wait (Retry-After) when the queue is full.
    #[arg(long, env = "PREDICT_RETRY_AFTER_SECS", default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Milliseconds a client has to send its request line and headers; then the connection is closed.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a /predict body once its headers are in; then 408.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// Largest accepted |value| after scaling with the model's scaler (training data scales
    /// to about [0, 1] or a few standard deviations); beyond it a value is refused with 422.
    #[arg(long, env = "PREDICT_MAX_SCALED_INPUT", default_value_t = 1e6)]
    pub max_scaled_input: f64,
}

impl HttpArgs {
    /// How long a client may take to send its request line and headers.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }
    fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            body_limit_bytes: 256 * 1024,
            max_windows: 1_000,
            workers: 0,
            queue_capacity: 256,
            retry_after_secs: 1,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            max_scaled_input: 1e6,
        }
    }
}

/// A refused or failed request: status plus `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            429 => "overloaded",
            500..=599 => "model",
            _ => "bad_request",
        };
        metrics::ERRORS.with_label_values(&[kind]).inc();
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<Lookup> for ApiError {
    fn from(e: Lookup) -> Self {
        let (status, code) = match &e {
            Lookup::NoModel => (StatusCode::SERVICE_UNAVAILABLE, "no_model"),
            Lookup::Unknown { .. } => (StatusCode::NOT_FOUND, "unknown_identifier"),
            Lookup::Ambiguous(_) => (StatusCode::BAD_REQUEST, "identifier_required"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Shared state of the API.
struct Inner {
    registry: Arc<Registry>,
    args: HttpArgs,
    /// Places in the work queue (running + waiting).
    admitted: Arc<Semaphore>,
    /// Forward passes running at once.
    workers: Arc<Semaphore>,
}

/// The API's state; cheap to clone.
#[derive(Clone)]
pub struct Api(Arc<Inner>);

impl Api {
    pub fn new(registry: Arc<Registry>, args: HttpArgs) -> Self {
        let workers = if args.workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            args.workers
        };
        let admitted = Arc::new(Semaphore::new(args.queue_capacity.max(1)));
        Api(Arc::new(Inner { registry, args, admitted, workers: Arc::new(Semaphore::new(workers)) }))
    }
}

/// Every route of the API, with request metrics.
pub fn router(api: Api, ready: Readiness) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/model", get(model))
        .with_state(api)
        .merge(admin::router(ready))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route: see schemas/inference-openapi.yaml")
        })
        .layer(middleware::from_fn(track))
}

/// Bind `addr` (port 0 picks one); the caller reads the bound address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("bind HTTP API on {addr}: {e}"))
}

/// Serve `router` on `listener` until `cancel` fires; requests in flight finish.
/// A connection whose request line and headers are not complete within
/// `header_timeout` is closed (see [`admin::serve_http`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "HTTP API listening");
    admin::serve_http(listener, router, header_timeout, cancel).await
}

async fn track(req: Request, next: Next) -> Response {
    // Known routes only, so that the label set stays bounded.
    let route: &'static str = match req.uri().path() {
        "/predict" => "/predict",
        "/model" => "/model",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics::REQUESTS.with_label_values(&[route, resp.status().as_str()]).inc();
    metrics::LATENCY.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    resp
}

#[derive(Deserialize)]
struct ModelQuery {
    identifier: Option<String>,
}

/// What `GET /model` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelsResponse {
    pub models: Vec<ModelInfo>,
}

async fn model(State(api): State<Api>, Query(q): Query<ModelQuery>) -> Result<Json<ModelsResponse>, ApiError> {
    let models: Vec<ModelInfo> = match q.identifier.as_deref() {
        Some(id) => vec![api.0.registry.get(Some(id))?.info.clone()],
        None => api.0.registry.snapshot().values().map(|m| m.info.clone()).collect(),
    };
    if models.is_empty() {
        return Err(Lookup::NoModel.into());
    }
    Ok(Json(ModelsResponse { models }))
}

/// The model that made a forecast.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelRef {
    pub identifier: String,
    pub model_type: ModelType,
    pub run_id: String,
    pub config_hash: String,
    pub version: String,
    pub source: ModelSource,
}

/// What `POST /predict` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct PredictResponse {
    pub model: ModelRef,
    /// Forecast columns, in the order of the innermost arrays.
    pub targets: Vec<String>,
    pub output_len: usize,
    /// `[window][step][target]`, original units.
    pub forecasts: Vec<Vec<Vec<f64>>>,
    /// `[window][step]` forecast times (ms), when the request had timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<Vec<Vec<i64>>>,
}

async fn predict(State(api): State<Api>, headers: HeaderMap, body: Body) -> Result<Json<PredictResponse>, ApiError> {
    let inner = &api.0;
    check_content_type(&headers)?;
    let limit = inner.args.body_limit_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let timeout = inner.args.body_timeout();
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {} ms", timeout.as_millis()),
        )
    })?;
    let bytes = read.map_err(|e| {
        if e.to_string().contains("length limit exceeded") {
            too_large()
        } else {
            ApiError::bad_request("unreadable_body", format!("cannot read the request body: {e}"))
        }
    })?;
    let req = parse_body(&bytes)?;
    let model = inner.registry.get(req.identifier.as_deref())?;
    let input = req.validate(&model, &inner.args)?;

    let Ok(place) = inner.admitted.clone().try_acquire_owned() else {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!("the work queue is full ({} requests); retry later", inner.args.queue_capacity),
        );
        e.retry_after = Some(inner.args.retry_after_secs);
        return Err(e);
    };
    let _slot = QueueSlot::enter();
    // The semaphore is never closed, so acquiring only waits.
    let worker = inner.workers.clone().acquire_owned().await.map_err(|_| internal("worker pool closed"))?;
    let m = model.clone();
    let forecast = tokio::task::spawn_blocking(move || {
        let _hold = (place, worker);
        m.predict_raw(&input.rows, input.n, input.timestamps.as_deref())
    })
    .await
    .map_err(|e| internal(&format!("forecast task failed: {e}")))?
    .map_err(|e| match e {
        PredictError::Input(msg) => ApiError::unprocessable("invalid_input", msg),
        PredictError::Model(e) => {
            tracing::error!(version = %model.info.version, error = %e, "forecast failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "model_error", e.to_string())
        }
    })?;
    check_finite(&model, &forecast.values)?;
    Ok(Json(response(&model, forecast, input.n)))
}

/// A forecast that is not finite (JSON would carry it as `null`) is the
/// input's doing: the values were accepted but drive the model out of range.
fn check_finite(model: &Model, values: &[f64]) -> Result<(), ApiError> {
    let per_window = (model.output_len() * model.n_targets()).max(1);
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(ApiError::unprocessable(
            "non_finite_forecast",
            format!(
                "the model's forecast for window {} is not a finite number ({}): the input is outside what the model can forecast from",
                i / per_window,
                values[i]
            ),
        )),
    }
}

fn internal(msg: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg.to_string())
}

/// Counts a request in the queue gauge until dropped (on every path).
struct QueueSlot;

impl QueueSlot {
    fn enter() -> Self {
        metrics::QUEUE_DEPTH.inc();
        QueueSlot
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        metrics::QUEUE_DEPTH.dec();
    }
}

fn response(model: &Model, forecast: model_runtime::model::Forecast, n: usize) -> PredictResponse {
    let (h, k) = (model.output_len(), model.n_targets());
    let forecasts = forecast.values.chunks(h * k).map(|w| w.chunks(k).map(<[f64]>::to_vec).collect()).collect();
    let timestamps = forecast.timestamps.map(|ts| ts.chunks(h).map(<[i64]>::to_vec).collect());
    debug_assert_eq!(forecast.values.len(), n * h * k);
    let i = &model.info;
    PredictResponse {
        model: ModelRef {
            identifier: i.identifier.clone(),
            model_type: i.model_type,
            run_id: i.run_id.clone(),
            config_hash: i.config_hash.clone(),
            version: i.version.clone(),
            source: i.source,
        },
        targets: i.targets.clone(),
        output_len: h,
        forecasts,
        timestamps,
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the body as JSON with Content-Type: application/json (got {})",
                if ct.is_empty() { "no Content-Type".to_string() } else { format!("`{ct}`") }
            ),
        ))
    }
}

/// A parsed, not yet shape-checked, /predict body.
struct PredictBody {
    identifier: Option<String>,
    /// `window` (one) or `windows` (several).
    single: bool,
    windows: Value,
    timestamps: Option<Value>,
}

/// A checked input: raw rows in model feature order.
struct Input {
    n: usize,
    rows: Vec<f64>,
    timestamps: Option<Vec<i64>>,
}

const FIELDS: [&str; 4] = ["identifier", "window", "windows", "timestamps"];

fn parse_body(bytes: &[u8]) -> Result<PredictBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "request body is empty: send a JSON object with `window` (one window) or `windows` (a list)",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("request body must be a JSON object, got {}", kind(&value)),
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unknown_field",
            format!("unknown field `{unknown}` (fields: identifier, window, windows, timestamps)"),
        ));
    }
    let identifier = match obj.remove("identifier") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_identifier",
                format!("`identifier` must be a string, got {}", kind(&other)),
            ));
        }
    };
    let (single, windows) = match (obj.remove("window"), obj.remove("windows")) {
        (Some(w), None) => (true, w),
        (None, Some(w)) => (false, w),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("invalid_body", "give either `window` or `windows`, not both"));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_window",
                "missing `window` (one window of rows) or `windows` (a list of windows)",
            ));
        }
    };
    Ok(PredictBody { identifier, single, windows, timestamps: obj.remove("timestamps") })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl PredictBody {
    /// Check the windows against the model's shape and flatten them.
    fn validate(self, model: &Model, args: &HttpArgs) -> Result<Input, ApiError> {
        let max_windows = args.max_windows;
        let (t_len, features) = (model.input_len(), &model.info.features);
        let f = features.len();
        let field = if self.single { "window" } else { "windows" };
        // Path of window `i` in messages: `window` or `windows[i]`.
        let wpath = |i: usize| if self.single { "window".to_string() } else { format!("windows[{i}]") };
        let windows: Vec<&Vec<Value>> = if self.single {
            match &self.windows {
                Value::Array(rows) => vec![rows],
                other => {
                    return Err(ApiError::unprocessable(
                        "invalid_window",
                        format!("`window` must be an array of rows, got {}", kind(other)),
                    ));
                }
            }
        } else {
            match &self.windows {
                Value::Array(ws) => ws
                    .iter()
                    .enumerate()
                    .map(|(i, w)| match w {
                        Value::Array(rows) => Ok(rows),
                        other => Err(ApiError::unprocessable(
                            "invalid_window",
                            format!("windows[{i}] must be an array of rows, got {}", kind(other)),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(ApiError::unprocessable(
                        "invalid_window",
                        format!("`windows` must be an array of windows, got {}", kind(other)),
                    ));
                }
            }
        };
        if windows.is_empty() {
            return Err(ApiError::unprocessable("empty", "`windows` is empty: give at least one window"));
        }
        if windows.len() > max_windows {
            return Err(ApiError::unprocessable(
                "too_many_windows",
                format!("{} windows in one request; at most {max_windows} are accepted", windows.len()),
            ));
        }
        let mut rows = Vec::with_capacity(windows.len() * t_len * f);
        for (i, w) in windows.iter().enumerate() {
            if w.is_empty() {
                return Err(ApiError::unprocessable("empty", format!("{} has no rows", wpath(i))));
            }
            if w.len() != t_len {
                return Err(ApiError::unprocessable(
                    "wrong_window_length",
                    format!("{} has {} rows; the model reads windows of {t_len} rows", wpath(i), w.len()),
                ));
            }
            for (r, row) in w.iter().enumerate() {
                // Built only for an error message.
                let at = || format!("{}[{r}]", wpath(i));
                match row {
                    Value::Array(values) => {
                        if values.len() != f {
                            return Err(ApiError::unprocessable(
                                "wrong_column_count",
                                format!(
                                    "{} has {} values; the model takes {f} per row, in this order: {features:?}",
                                    at(),
                                    values.len()
                                ),
                            ));
                        }
                        for (c, v) in values.iter().enumerate() {
                            rows.push(number(v, || format!("{}[{c}]", at()))?);
                        }
                    }
                    Value::Object(map) => {
                        if let Some(unknown) = map.keys().find(|k| !features.contains(k)) {
                            return Err(ApiError::unprocessable(
                                "wrong_column_count",
                                format!(
                                    "{} has unknown column `{unknown}`; the model's features are {features:?}",
                                    at()
                                ),
                            ));
                        }
                        for name in features {
                            let v = map.get(name).ok_or_else(|| {
                                ApiError::unprocessable(
                                    "wrong_column_count",
                                    format!("{} lacks feature `{name}`; the model's features are {features:?}", at()),
                                )
                            })?;
                            rows.push(number(v, || format!("{}.{name}", at()))?);
                        }
                    }
                    other => {
                        return Err(ApiError::unprocessable(
                            "invalid_row",
                            format!(
                                "{} must be an array of {f} numbers (or an object keyed by feature), got {}",
                                at(),
                                kind(other)
                            ),
                        ));
                    }
                }
            }
        }
        check_range(model, &rows, args.max_scaled_input, wpath)?;
        let timestamps = match self.timestamps {
            None | Some(Value::Null) => None,
            Some(ts) => Some(timestamps(&ts, self.single, windows.len(), t_len, model.output_len())?),
        };
        if timestamps.is_none() && model.needs_timestamps() {
            return Err(ApiError::unprocessable(
                "timestamps_required",
                format!(
                    "the served {} model forecasts by time: give `timestamps` (ms since the epoch) for every row of {field}",
                    model.info.model_type
                ),
            ));
        }
        Ok(Input { n: windows.len(), rows, timestamps })
    }
}

fn number(v: &Value, at: impl Fn() -> String) -> Result<f64, ApiError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ApiError::unprocessable("non_numeric", format!("{} is not a finite number: {n}", at()))),
        Value::String(s) => Err(ApiError::unprocessable(
            "non_numeric",
            format!("{} is a string ({:?}); expected a number", at(), s.chars().take(40).collect::<String>()),
        )),
        other => Err(ApiError::unprocessable("non_numeric", format!("{} is {}; expected a number", at(), kind(other)))),
    }
}

/// Refuse a value that, scaled with the model's scaler, lies beyond
/// `max_scaled` (the model only ever saw about [0, 1]): the forward pass
/// runs in f32, where 1e300 is infinite. Rows are `[window][row][feature]`.
fn check_range(model: &Model, rows: &[f64], max_scaled: f64, wpath: impl Fn(usize) -> String) -> Result<(), ApiError> {
    let features = &model.info.features;
    let f = features.len().max(1);
    let per_window = (model.input_len() * f).max(1);
    // Accepted interval per feature; none when the scaler cannot say (the output check still applies).
    let bounds: Vec<Option<(f64, f64)>> = features
        .iter()
        .map(|name| {
            let col = model.scaler.columns.iter().find(|c| &c.name == name)?;
            let reach = (col.scale.abs() * max_scaled).min(f64::MAX);
            let (lo, hi) = (col.offset - reach, col.offset + reach);
            (reach > 0.0 && lo.is_finite() && hi.is_finite()).then_some((lo, hi))
        })
        .collect();
    for (i, v) in rows.iter().enumerate() {
        let c = i % f;
        if let Some((lo, hi)) = bounds[c]
            && !(lo..=hi).contains(v)
        {
            return Err(ApiError::unprocessable(
                "out_of_range",
                format!(
                    "{}[{}] feature `{}` is {v}; this model accepts {lo:e} to {hi:e} (PREDICT_MAX_SCALED_INPUT = {max_scaled:e} times its training range)",
                    wpath(i / per_window),
                    (i % per_window) / f,
                    features[c],
                ),
            ));
        }
    }
    Ok(())
}

/// Earliest and latest accepted timestamp (ms): years 1 to 9999, what every
/// calendar library can represent; forecast times must stay inside too.
const MIN_TIMESTAMP_MS: i64 = -62_135_596_800_000;
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// `timestamps`: one list per window (`windows`) or one list (`window`),
/// each with one integer (ms) per row, within years 1..=9999, and such that
/// `output_len` further steps of the last interval stay within them too.
fn timestamps(ts: &Value, single: bool, n: usize, t_len: usize, output_len: usize) -> Result<Vec<i64>, ApiError> {
    let bad = |msg: String| ApiError::unprocessable("invalid_timestamps", msg);
    let lists: Vec<&Value> = match (single, ts) {
        (true, v @ Value::Array(_)) => vec![v],
        (false, Value::Array(ws)) if ws.len() == n => ws.iter().collect(),
        (false, Value::Array(ws)) => {
            return Err(bad(format!("`timestamps` has {} lists for {n} windows", ws.len())));
        }
        (_, other) => return Err(bad(format!("`timestamps` must be an array, got {}", kind(other)))),
    };
    let mut out = Vec::with_capacity(n * t_len);
    for (i, list) in lists.iter().enumerate() {
        let at = if single { "timestamps".to_string() } else { format!("timestamps[{i}]") };
        let Value::Array(values) = list else {
            return Err(bad(format!("{at} must be an array of integers, got {}", kind(list))));
        };
        if values.len() != t_len {
            return Err(bad(format!("{at} has {} values; give one per row ({t_len})", values.len())));
        }
        for (r, v) in values.iter().enumerate() {
            let t = v.as_i64().ok_or_else(|| bad(format!("{at}[{r}] must be an integer (ms since the epoch)")))?;
            if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&t) {
                return Err(bad(format!(
                    "{at}[{r}] is {t}: timestamps must be ms since the epoch within years 1 to 9999 ({MIN_TIMESTAMP_MS} to {MAX_TIMESTAMP_MS})"
                )));
            }
            out.push(t);
        }
        // The forecast times continue the last interval: they must stay in range too.
        // In i128, which cannot overflow for in-range times and a u32 output length.
        if let [.., prev, last] = out[out.len() - t_len..] {
            let end = i128::from(last) + (i128::from(last) - i128::from(prev)) * output_len as i128;
            if last > prev && end > i128::from(MAX_TIMESTAMP_MS) {
                return Err(bad(format!(
                    "{at}: the {output_len} forecast steps after {last} at its interval of {} ms end past year 9999",
                    last - prev
                )));
            }
        }
    }
    Ok(out)
}
