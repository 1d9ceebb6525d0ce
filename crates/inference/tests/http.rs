//! The HTTP API over real loopback HTTP: every endpoint, every bad input,
//! backpressure, and model swaps under requests. No Kafka or S3 needed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::{ModelArtifact, ModelFormat, ModelType};
use inference::http::{self, Api, HttpArgs, ModelsResponse, PredictResponse};
use model_runtime::model::{Model, ModelInfo, ModelSource, ModelSpec};
use model_runtime::net::{Net, NetError, NetInput};
use model_runtime::synthetic::{Cell, NetSpec, SyntheticNet};
use model_runtime::{Registry, loader};
use reqwest::StatusCode;
use serde_json::{Value, json};
use series::{Scaler, ScalerColumn, ScalerKind};
use service_kit::admin::Readiness;
use tokio_util::sync::CancellationToken;

const INPUT_LEN: usize = 4;
const OUTPUT_LEN: usize = 2;

fn spec(identifier: &str, run_id: &str) -> ModelSpec {
    ModelSpec {
        identifier: identifier.into(),
        model_type: ModelType::Lstm,
        run_id: run_id.into(),
        config_hash: "cfg".into(),
        artifact_uri: "mlflow-artifacts:/1/run/artifacts".into(),
        artifact: ModelArtifact {
            format: ModelFormat::Onnx,
            path: "model/model.onnx".into(),
            scaler_path: "model/scaler.json".into(),
            input_len: INPUT_LEN as u32,
            output_len: OUTPUT_LEN as u32,
            features: vec!["load".into(), "temp".into()],
            targets: vec!["load".into()],
        },
        source: ModelSource::Promotion,
        promotion_time: Some(Utc::now()),
        sequence: 1,
        model_sha256: None,
        trained_at: None,
        test_rmse: 0.1,
        test_mae: 0.08,
        test_mse: 0.01,
    }
}

fn scaler() -> Scaler {
    Scaler {
        kind: ScalerKind::MinMax,
        columns: vec![ScalerColumn::new("load".into(), 100.0, 50.0), ScalerColumn::new("temp".into(), -5.0, 40.0)],
    }
}

fn synthetic() -> SyntheticNet {
    SyntheticNet::random(
        NetSpec {
            cell: Cell::Lstm,
            n_features: 2,
            hidden: vec![6, 5],
            input_len: INPUT_LEN,
            output_len: OUTPUT_LEN,
            n_targets: 1,
        },
        5,
    )
}

fn onnx_model(identifier: &str, run_id: &str) -> Arc<Model> {
    loader::build(&spec(identifier, run_id), &synthetic().to_onnx(), scaler()).expect("model builds")
}

/// A model that takes `delay` per forward pass and forecasts a constant.
struct SlowNet {
    delay: Duration,
    value: f32,
}

impl Net for SlowNet {
    fn kind(&self) -> &'static str {
        "slow"
    }
    fn forecast(&self, input: &NetInput<'_>) -> Result<Vec<f32>, NetError> {
        std::thread::sleep(self.delay);
        Ok(vec![self.value; input.n * OUTPUT_LEN])
    }
}

fn slow_model(run_id: &str, delay: Duration, value: f32) -> Arc<Model> {
    let net = SlowNet { delay, value };
    Arc::new(Model::new(ModelInfo::new(&spec("site", run_id)), scaler(), Box::new(net)).expect("model"))
}

struct Server {
    url: String,
    registry: Arc<Registry>,
    client: reqwest::Client,
    cancel: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn server(args: HttpArgs, models: Vec<Arc<Model>>) -> Server {
    let ready = Readiness::default();
    let registry = Arc::new(Registry::new(ready.clone()));
    for m in models {
        registry.install(m).expect("installed");
    }
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let header_timeout = args.header_timeout();
    let router = http::router(Api::new(registry.clone(), args), ready);
    tokio::spawn(http::serve(listener, router, header_timeout, cancel.clone()));
    Server { url, registry, client: reqwest::Client::new(), cancel }
}

fn args() -> HttpArgs {
    HttpArgs { body_limit_bytes: 4096, max_windows: 8, workers: 2, queue_capacity: 16, ..HttpArgs::default() }
}

impl Server {
    async fn post(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/predict", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("response");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(format!("{}{path}", self.url)).send().await.expect("response");
        (resp.status(), resp.text().await.unwrap())
    }
}

/// POST `body` with chunked transfer encoding (no Content-Length) over raw TCP.
async fn chunked_post(url: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(1000) {
        req.push_str(&format!("{:x}\r\n{}\r\n", chunk.len(), std::str::from_utf8(chunk).unwrap()));
    }
    req.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything: ignore write errors.
    let _ = conn.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn window(salt: f64) -> Vec<Vec<f64>> {
    (0..INPUT_LEN).map(|r| vec![120.0 + 5.0 * r as f64 + salt, 10.0 - r as f64]).collect()
}

/// What the model should answer, from the reference forward pass.
fn expected(windows: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    let s = scaler();
    let x: Vec<f32> = windows
        .iter()
        .flatten()
        .flat_map(|row| [((row[0] - 100.0) / 50.0) as f32, ((row[1] + 5.0) / 40.0) as f32])
        .collect();
    let y = synthetic().forward(&x, windows.len());
    y.chunks(OUTPUT_LEN).map(|w| w.iter().map(|v| s.inverse_value("load", f64::from(*v)).unwrap()).collect()).collect()
}

#[tokio::test]
async fn predict_one_window_in_original_units_with_the_model_version() {
    let s = server(args(), vec![onnx_model("site", "run-a")]).await;
    let w = window(0.0);
    let (status, body) = s.post(json!({ "window": w }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: PredictResponse = serde_json::from_value(body).unwrap();
    assert_eq!(resp.model.version, "LSTM/run-a");
    assert_eq!(resp.model.identifier, "site");
    assert_eq!(resp.model.source, ModelSource::Promotion);
    assert_eq!(resp.targets, vec!["load"]);
    assert_eq!(resp.output_len, OUTPUT_LEN);
    assert_eq!(resp.timestamps, None);
    let want = expected(&[w]);
    assert_eq!(resp.forecasts.len(), 1);
    for (step, got) in resp.forecasts[0].iter().enumerate() {
        assert_eq!(got.len(), 1);
        assert!((got[0] - want[0][step]).abs() < 1e-3, "step {step}: {} vs {}", got[0], want[0][step]);
    }
}

#[tokio::test]
async fn predict_several_windows_object_rows_and_timestamps() {
    let s = server(args(), vec![onnx_model("site", "run-a")]).await;
    let ws = vec![window(0.0), window(3.0), window(-7.5)];
    let (status, body) = s.post(json!({ "identifier": "site", "windows": ws }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: PredictResponse = serde_json::from_value(body).unwrap();
    let want = expected(&ws);
    assert_eq!(resp.forecasts.len(), 3);
    for (w, steps) in resp.forecasts.iter().enumerate() {
        for (k, v) in steps.iter().enumerate() {
            assert!((v[0] - want[w][k]).abs() < 1e-3);
        }
    }
    // Rows keyed by feature name, and timestamps: forecast times follow the interval.
    let rows: Vec<Value> = window(0.0).iter().map(|r| json!({ "temp": r[1], "load": r[0] })).collect();
    let ts: Vec<i64> = (0..INPUT_LEN as i64).map(|i| 1_700_000_000_000 + i * 120_000).collect();
    let (status, body) = s.post(json!({ "window": rows, "timestamps": ts }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: PredictResponse = serde_json::from_value(body).unwrap();
    assert!((resp.forecasts[0][0][0] - want[0][0]).abs() < 1e-3);
    let last = ts[INPUT_LEN - 1];
    assert_eq!(resp.timestamps, Some(vec![vec![last + 120_000, last + 240_000]]));
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_4xx() {
    let s = server(args(), vec![onnx_model("site", "run-a")]).await;
    let mut short = window(0.0);
    short.pop();
    let mut wide = window(0.0);
    wide[1].push(1.0);
    let mut text = serde_json::to_value(window(0.0)).unwrap();
    text[2][1] = json!("abc");
    let mut with_null = serde_json::to_value(window(0.0)).unwrap();
    with_null[0][0] = Value::Null;
    let mut nested = serde_json::to_value(window(0.0)).unwrap();
    nested[3][0] = json!([1.0]);
    let missing_feature: Vec<Value> = window(0.0).iter().map(|r| json!({ "load": r[0] })).collect();
    let extra_column: Vec<Value> =
        window(0.0).iter().map(|r| json!({ "load": r[0], "temp": r[1], "wind": 3 })).collect();
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            json!({ "windows": [window(0.0), short] }).to_string(),
            422,
            "wrong_window_length",
            "windows[1] has 3 rows; the model reads windows of 4 rows",
        ),
        (
            json!({ "window": wide }).to_string(),
            422,
            "wrong_column_count",
            "window[1] has 3 values; the model takes 2 per row, in this order: [\"load\", \"temp\"]",
        ),
        (json!({ "window": missing_feature }).to_string(), 422, "wrong_column_count", "window[0] lacks feature `temp`"),
        (
            json!({ "window": extra_column }).to_string(),
            422,
            "wrong_column_count",
            "window[0] has unknown column `wind`",
        ),
        (
            json!({ "window": text }).to_string(),
            422,
            "non_numeric",
            "window[2][1] is a string (\"abc\"); expected a number",
        ),
        (json!({ "window": with_null }).to_string(), 422, "non_numeric", "window[0][0] is null; expected a number"),
        (json!({ "window": nested }).to_string(), 422, "non_numeric", "window[3][0] is an array; expected a number"),
        (json!({ "window": [1, 2, 3, 4] }).to_string(), 422, "invalid_row", "window[0] must be an array of 2 numbers"),
        (
            json!({ "window": "x" }).to_string(),
            422,
            "invalid_window",
            "`window` must be an array of rows, got a string",
        ),
        (json!({ "windows": [] }).to_string(), 422, "empty", "`windows` is empty"),
        (json!({ "window": [] }).to_string(), 422, "empty", "window has no rows"),
        (
            json!({ "windows": vec![window(0.0); 9] }).to_string(),
            422,
            "too_many_windows",
            "9 windows in one request; at most 8 are accepted",
        ),
        (
            json!({ "window": window(0.0), "timestamps": [1, 2] }).to_string(),
            422,
            "invalid_timestamps",
            "timestamps has 2 values; give one per row (4)",
        ),
        (
            json!({ "window": window(0.0), "timestamps": [1, 2, 2, 3] }).to_string(),
            422,
            "invalid_input",
            "timestamps[0] must be strictly increasing",
        ),
        (String::new(), 400, "empty_body", "request body is empty"),
        ("  \n".into(), 400, "empty_body", "request body is empty"),
        ("{\"window\": [[1, 2]".into(), 400, "invalid_json", "request body is not valid JSON"),
        ("[1, 2]".into(), 400, "invalid_body", "request body must be a JSON object, got an array"),
        (json!({ "window": window(0.0), "horizon": 3 }).to_string(), 400, "unknown_field", "unknown field `horizon`"),
        (
            json!({ "window": window(0.0), "windows": [window(0.0)] }).to_string(),
            400,
            "invalid_body",
            "give either `window` or `windows`, not both",
        ),
        (json!({ "identifier": "site" }).to_string(), 400, "missing_window", "missing `window`"),
        (
            json!({ "identifier": 7, "window": window(0.0) }).to_string(),
            400,
            "invalid_identifier",
            "`identifier` must be a string, got a number",
        ),
        (
            json!({ "identifier": "elsewhere", "window": window(0.0) }).to_string(),
            404,
            "unknown_identifier",
            "no model is served for identifier `elsewhere`",
        ),
    ];
    for (body, status, code, message) in cases {
        let (got, resp) = s.post(body.clone()).await;
        assert_eq!(got.as_u16(), status, "body {body}: {resp}");
        assert_eq!(resp["error"]["code"], code, "body {body}: {resp}");
        let msg = resp["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(message), "body {body}: message {msg:?} lacks {message:?}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_and_other_media_types_415() {
    let s = server(args(), vec![onnx_model("site", "run-a")]).await;
    let big = json!({ "windows": vec![window(0.0); 200] }).to_string();
    assert!(big.len() > 4096);
    // With a Content-Length header (refused before reading) ...
    let (status, body) = s.post(big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
    assert_eq!(body["error"]["message"], "request body is larger than 4096 bytes");
    // ... and chunked, without one (refused while reading).
    let raw = chunked_post(&s.url, &big).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("\"body_too_large\""), "{raw}");

    for ct in [None, Some("text/plain")] {
        let mut req = s.client.post(format!("{}/predict", s.url)).body(json!({ "window": window(0.0) }).to_string());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("Content-Type: application/json"), "{body}");
    }
    // A charset parameter is fine.
    let resp = s
        .client
        .post(format!("{}/predict", s.url))
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "window": window(0.0) }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn model_health_readiness_and_metrics_endpoints() {
    let s = server(args(), vec![]).await;
    // Nothing loaded: alive, not ready, no model.
    assert_eq!(s.get("/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(s.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = s.get("/model").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"no_model\""), "{body}");
    let (status, body) = s.post(json!({ "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "no_model");

    s.registry.install(onnx_model("site", "run-a")).unwrap();
    assert_eq!(s.get("/readyz").await, (StatusCode::OK, "ready".into()));
    let (status, body) = s.get("/model").await;
    assert_eq!(status, StatusCode::OK);
    let models: ModelsResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(models.models.len(), 1);
    let m = &models.models[0];
    assert_eq!((m.identifier.as_str(), m.version.as_str(), m.input_len), ("site", "LSTM/run-a", INPUT_LEN as u32));
    assert_eq!(m.model_uri, "runs:/run-a/model/model.onnx");
    assert_eq!(m.features, vec!["load", "temp"]);
    let (status, body) = s.get("/model?identifier=site").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/model?identifier=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("unknown_identifier"), "{body}");

    // Two datasets: /predict needs the identifier.
    s.registry.install(onnx_model("other", "run-b")).unwrap();
    let (status, body) = s.post(json!({ "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "identifier_required");
    let (status, body) = s.post(json!({ "identifier": "other", "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"]["version"], "LSTM/run-b");

    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "flts_inference_http_requests_total{route=\"/predict\",status=\"200\"}",
        "flts_inference_http_request_seconds_bucket",
        "flts_inference_queue_depth",
        "flts_inference_model_seconds_bucket",
        "flts_inference_models_loaded",
        "flts_inference_errors_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    let (status, body) = s.get("/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"not_found\""), "{body}");
    assert_eq!(s.get("/predict").await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after_instead_of_waiting() {
    // One worker, two places: a forward pass takes 300 ms.
    let a = HttpArgs { workers: 1, queue_capacity: 2, retry_after_secs: 2, ..args() };
    let s = Arc::new(server(a, vec![slow_model("slow", Duration::from_millis(300), 0.5)]).await);
    let started = Instant::now();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let resp = s
                    .client
                    .post(format!("{}/predict", s.url))
                    .header("content-type", "application/json")
                    .body(json!({ "window": window(0.0) }).to_string())
                    .send()
                    .await
                    .unwrap();
                let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                let status = resp.status();
                let body: Value = resp.json().await.unwrap();
                (status, retry, body, t.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, retry, body, took) = t.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(retry.as_deref(), Some("2"));
                assert_eq!(body["error"]["code"], "queue_full");
                assert!(body["error"]["message"].as_str().unwrap().contains("work queue is full (2 requests)"));
                // Refused at once, not after waiting behind the queue.
                assert!(took < Duration::from_millis(250), "429 took {took:?}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok + refused, 12);
    assert!(ok >= 2, "the two admitted requests succeed ({ok} ok)");
    assert!(refused >= 8, "most requests are refused ({refused} refused)");
    // Admitted work is bounded: at most a few slow passes, not twelve in a row.
    assert!(started.elapsed() < Duration::from_millis(300 * 6), "took {:?}", started.elapsed());
    let (_, metrics) = s.get("/metrics").await;
    assert!(metrics.contains("flts_inference_http_requests_total{route=\"/predict\",status=\"429\"}"));
}

#[tokio::test]
async fn a_swap_lets_requests_in_flight_finish_on_the_old_model() {
    let s = Arc::new(server(args(), vec![slow_model("old", Duration::from_millis(400), 0.0)]).await);
    let in_flight = {
        let s = s.clone();
        tokio::spawn(async move { s.post(json!({ "window": window(0.0) }).to_string()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut new_spec = spec("site", "new");
    new_spec.sequence = 2; // eval's next promotion of the dataset
    let net = SlowNet { delay: Duration::ZERO, value: 1.0 };
    let new = Arc::new(Model::new(ModelInfo::new(&new_spec), scaler(), Box::new(net)).unwrap());
    s.registry.install(new).expect("newer promotion installs");
    let (status, body) = s.post(json!({ "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"]["version"], "LSTM/new");
    assert_eq!(body["forecasts"][0][0][0], 150.0, "1.0 scaled is 150 load");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"]["version"], "LSTM/old", "the request in flight finished on the old model");
    assert_eq!(body["forecasts"][0][0][0], 100.0);
}

/// A Prophet model (one target, a straight trend) served like any other.
fn prophet_model() -> Arc<Model> {
    use prophet_model::{FittedSet, FittedTarget, ProphetConfig};
    let day_s = 86_400;
    let target = FittedTarget {
        name: "load".into(),
        train_start_ms: 0,
        train_end_ms: 10 * day_s * 1000,
        train_rows: 241,
        y_scale: 1.0,
        t_start_s: 0,
        t_span_s: (10 * day_s) as f64,
        k: 1.0,
        m: 0.0,
        changepoints_t: vec![0.0],
        deltas: vec![0.0],
        sigma_obs: 0.01,
        columns: vec![],
    };
    let set = FittedSet { format_version: 1, config: ProphetConfig::default(), targets: vec![target] };
    let mut s = spec("site", "prophet-run");
    s.model_type = ModelType::Prophet;
    s.artifact.format = ModelFormat::ProphetJson;
    s.artifact.path = "model/prophet.json".into();
    loader::build(&s, set.to_json().as_bytes(), scaler()).expect("prophet model builds")
}

#[tokio::test]
async fn a_prophet_model_forecasts_the_times_after_the_window() {
    let s = server(args(), vec![prophet_model()]).await;
    let (status, body) = s.post(json!({ "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "timestamps_required");
    assert!(body["error"]["message"].as_str().unwrap().contains("PROPHET model forecasts by time"), "{body}");
    // Rows every 6 hours up to day 2: forecasts at days 2.25 and 2.5 (t = 0.225, 0.25).
    let quarter = 21_600_000i64;
    let ts: Vec<i64> = (0..INPUT_LEN as i64).map(|i| (5 + i) * quarter).collect();
    let (status, body) = s.post(json!({ "window": window(0.0), "timestamps": ts }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: PredictResponse = serde_json::from_value(body).unwrap();
    assert_eq!(resp.model.model_type, ModelType::Prophet);
    assert_eq!(resp.timestamps, Some(vec![vec![9 * quarter, 10 * quarter]]));
    // Scaled trend t, in original units 100 + 50 t.
    for (k, t) in [0.225, 0.25].iter().enumerate() {
        assert!((resp.forecasts[0][k][0] - (100.0 + 50.0 * t)).abs() < 1e-3, "{:?}", resp.forecasts);
    }
}

// ---------------------------------------------------------------------------
// Hostile input (issue 17, docs/reliability.md "Hostile input: HTTP").

#[tokio::test]
async fn timestamps_at_the_end_of_time_get_422_not_a_panic() {
    let prophet = server(args(), vec![prophet_model()]).await;
    let onnx = server(args(), vec![onnx_model("site", "run-a")]).await;
    let end = [i64::MAX - 3, i64::MAX - 2, i64::MAX - 1, i64::MAX];
    let huge_step = [i64::MIN, 0, 1, i64::MAX];
    // Forecast times of a valid window running past year 9999.
    let day = 86_400_000i64;
    let late: Vec<i64> = (0..INPUT_LEN as i64).map(|i| 253_402_000_000_000 + i * day).collect();
    for s in [&prophet, &onnx] {
        for ts in [&end[..], &huge_step[..], &late[..]] {
            let (status, body) = s.post(json!({ "window": window(0.0), "timestamps": ts }).to_string()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{ts:?}: {body}");
            assert_eq!(body["error"]["code"], "invalid_timestamps", "{body}");
            assert!(body["error"]["message"].as_str().unwrap().contains("9999"), "{body}");
        }
    }
    // The earliest and latest accepted times still work.
    let first: Vec<i64> = (0..INPUT_LEN as i64).map(|i| -62_135_596_800_000 + i * day).collect();
    let (status, body) = onnx.post(json!({ "window": window(0.0), "timestamps": first }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn values_the_model_cannot_forecast_from_get_422_never_null_forecasts() {
    let s = server(args(), vec![onnx_model("site", "run-a")]).await;
    for huge in [1e300, -1e300, 1e12] {
        let mut w = window(0.0);
        w[2][1] = huge;
        let (status, body) = s.post(json!({ "window": w }).to_string()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{huge}: {body}");
        assert_eq!(body["error"]["code"], "out_of_range", "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("window[2]") && msg.contains("`temp`"), "{msg}");
    }
    // Far outside the training range but within the limit: served, finite.
    let mut w = window(0.0);
    w[0][0] = 100.0 + 50.0 * 1e5;
    let (status, body) = s.post(json!({ "window": w }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // With the range check lifted, 1e300 reaches the model, whose f32 pass
    // overflows (inf minus inf in the gates): 422, not 200 with `null`.
    let open = server(HttpArgs { max_scaled_input: f64::INFINITY, ..args() }, vec![trainers_gru()]).await;
    let w = vec![vec![1e300, 1e300]; INPUT_LEN];
    let (status, body) = open.post(json!({ "window": w }).to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "non_finite_forecast", "{body}");
    // A model whose output is not finite on any input: 422 too, never a 200 with null.
    let nan = server(args(), vec![slow_model("nan", Duration::ZERO, f32::NAN)]).await;
    let (status, body) = nan.post(json!({ "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "non_finite_forecast", "{body}");
}

/// A GRU as the trainers export it (`nn::export_onnx`), shaped like [`spec`].
fn trainers_gru() -> Arc<Model> {
    let config = nn::ModelConfig {
        cell: nn::CellKind::Gru,
        n_features: 2,
        hidden: 8,
        layers: 1,
        input_len: INPUT_LEN,
        n_outputs: OUTPUT_LEN,
    };
    let mut s = spec("site", "gru");
    s.model_type = ModelType::Gru;
    loader::build(&s, &nn::export_onnx(&nn::Network::new(config, 3)), scaler()).expect("model builds")
}

/// Open `n` raw connections to `url` and send each `prefix`.
async fn open_connections(url: &str, n: usize, prefix: &[u8]) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let addr = url.trim_start_matches("http://");
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(prefix).await.expect("write");
        conns.push(c);
    }
    conns
}

/// How many of `conns` the server has closed within `wait` (reads end or fail),
/// and what they received before.
async fn closed_within(conns: Vec<tokio::net::TcpStream>, wait: Duration) -> (usize, Vec<String>) {
    use tokio::io::AsyncReadExt;
    let reads = conns.into_iter().map(|mut c| async move {
        let mut got = Vec::new();
        match tokio::time::timeout(wait, c.read_to_end(&mut got)).await {
            Ok(_) => (true, String::from_utf8_lossy(&got).into_owned()),
            Err(_) => (false, String::new()),
        }
    });
    let results = futures::future::join_all(reads).await;
    (results.iter().filter(|(closed, _)| *closed).count(), results.into_iter().map(|(_, text)| text).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_with_unfinished_headers_are_closed_after_the_header_timeout() {
    let a = HttpArgs { header_timeout_ms: 1_000, ..args() };
    let s = server(a, vec![onnx_model("site", "run-a")]).await;
    let started = Instant::now();
    let mut conns = open_connections(&s.url, 50, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty").await;
    // Idle connections that never send a byte are closed too.
    conns.extend(open_connections(&s.url, 10, b"").await);
    // Meanwhile the server answers complete requests.
    let (status, body) = s.post(json!({ "window": window(0.0) }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Generous bounds for a loaded machine; before the fix they stayed open for good.
    let (closed, _) = closed_within(conns, Duration::from_secs(20)).await;
    assert_eq!(closed, 60, "connections with unfinished headers still open after 20 s");
    assert!(started.elapsed() < Duration::from_secs(15), "closed after {:?}", started.elapsed());
    // New connections are still served. On a new connection: the POST's
    // pooled one was idle past the header timeout too, and the server closing
    // it can cross a request sent on it (the keep-alive race of any server
    // that closes idle connections; this check failed on it once).
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let status = fresh.get(format!("{}/healthz", s.url)).send().await.expect("response").status();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_408() {
    let a = HttpArgs { body_timeout_ms: 500, ..args() };
    let s = server(a, vec![onnx_model("site", "run-a")]).await;
    let head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"window\": [";
    let conns = open_connections(&s.url, 5, head).await;
    let started = Instant::now();
    let (closed, answers) = closed_within(conns, Duration::from_secs(20)).await;
    assert_eq!(closed, 5);
    assert!(started.elapsed() < Duration::from_secs(15), "answered after {:?}", started.elapsed());
    for a in answers {
        assert!(a.starts_with("HTTP/1.1 408"), "{a}");
        assert!(a.contains("body_timeout"), "{a}");
    }
}

/// The document's validity, its examples and its agreement with the running
/// server are checked with a real OpenAPI validator and schemathesis in
/// `tests/interop.rs`; this only checks that every error code the handlers
/// can answer is named in it, which no schema tool can know.
#[test]
fn every_error_code_the_handlers_answer_is_documented() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let doc = std::fs::read_to_string(format!("{root}/schemas/inference-openapi.yaml")).expect("OpenAPI document");
    let src: String = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http.rs"))
        .expect("source")
        .split_whitespace()
        .collect();
    let literal = |rest: &str| rest.split('"').next().unwrap_or_default().to_string();
    let mut codes: Vec<String> = ["bad_request(\"", "unprocessable(\""]
        .iter()
        .flat_map(|m| src.match_indices(m).map(|(i, m)| literal(&src[i + m.len()..])).collect::<Vec<_>>())
        .collect();
    for (i, m) in src.match_indices("StatusCode::") {
        let after = &src[i + m.len()..];
        let name_len = after.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').count();
        if let Some(rest) = after[name_len..].strip_prefix(",\"") {
            codes.push(literal(rest));
        }
    }
    codes.sort();
    codes.dedup();
    assert!(codes.len() >= 20, "found only {codes:?}");
    for code in codes {
        assert!(doc.contains(&format!("`{code}`")), "OpenAPI does not document error code `{code}`");
    }
}
