//! The inference service against the real stack: models produced by the test
//! (a synthetic ONNX network uploaded to a real MLflow run's artifacts),
//! promotions recorded as eval records them, events on real topics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use claim_check::ClaimCheckStore;
use contracts::topics::dlq_topic;
use contracts::*;
use flts_tests::*;
use inference::batch::{WindowRecord, per_target_from_jsonl, result_stem};
use inference::synthetic::{Cell, NetSpec, SyntheticNet};
use kafka_utils::{ConsumerArgs, Producer};
use mlflow_client::MlflowClient;
use rdkafka::message::Message as _;
use serde_json::{Value, json};
use series::{Column, Frame, ProcessedMeta, Roles, Scaler, ScalerKind, WindowSpec, make_windows};
use tokio_util::sync::CancellationToken;

const INPUT_LEN: usize = 10;
const OUTPUT_LEN: usize = 2;
const ROWS: usize = 240;
const INTERVAL_MS: i64 = 120_000;
const FEATURES: [&str; 2] = ["load", "temp"];
const TARGET: &str = "load";

/// The test set in original units: a daily wave plus a slower one.
fn raw_frame() -> Frame {
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let ts: Vec<i64> = (0..ROWS as i64).map(|i| t0 + i * INTERVAL_MS).collect();
    let load =
        (0..ROWS).map(|i| 500.0 + 200.0 * (i as f64 * std::f64::consts::TAU / 90.0).sin() + (i % 7) as f64).collect();
    let temp = (0..ROWS).map(|i| 15.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 240.0).cos()).collect();
    Frame::new(ts, vec![Column::new("load", load), Column::new("temp", temp)]).expect("frame")
}

fn names() -> Vec<String> {
    FEATURES.iter().map(|s| s.to_string()).collect()
}

fn scaler() -> Scaler {
    Scaler::fit(ScalerKind::MinMax, &raw_frame(), &names(), &[]).expect("scaler")
}

fn roles() -> Roles {
    Roles { timestamp: "timestamp".into(), features: names(), targets: vec![TARGET.into()], interval_ms: INTERVAL_MS }
}

fn synthetic(cell: Cell, seed: u64) -> SyntheticNet {
    SyntheticNet::random(
        NetSpec { cell, n_features: 2, hidden: vec![8], input_len: INPUT_LEN, output_len: OUTPUT_LEN, n_targets: 1 },
        seed,
    )
}

/// One test's world: its topics, dataset and consumer groups.
struct World {
    identifier: String,
    config_hash: String,
    data_topic: String,
    selected_topic: String,
    training_topic: String,
    perf_topic: String,
    group: String,
    experiment: String,
    store: ClaimCheckStore,
    mlflow: MlflowClient,
}

impl World {
    async fn new(name: &str) -> Self {
        let mlflow = MlflowClient::new(&stack().mlflow).expect("mlflow client");
        let w = World {
            identifier: unique(&format!("inf-{name}")),
            config_hash: unique("cfg"),
            data_topic: unique(&format!("t-{name}-data")),
            selected_topic: unique(&format!("t-{name}-selected")),
            training_topic: unique(&format!("t-{name}-training")),
            perf_topic: unique(&format!("t-{name}-perf")),
            group: unique(&format!("g-inf-{name}")),
            experiment: mlflow.get_or_create_experiment("flts-tests-inference").await.expect("experiment"),
            store: ClaimCheckStore::new(&stack().s3),
            mlflow,
        };
        for t in [&w.data_topic, &w.selected_topic, &w.training_topic, &w.perf_topic] {
            create_topic_with_dlq(t, 1).await;
        }
        w
    }

    fn artifact(&self, format: ModelFormat) -> ModelArtifact {
        ModelArtifact {
            format,
            path: "model/model.onnx".into(),
            scaler_path: "model/scaler.json".into(),
            input_len: INPUT_LEN as u32,
            output_len: OUTPUT_LEN as u32,
            features: names(),
            targets: vec![TARGET.into()],
        }
    }

    /// A real MLflow run holding `net` as `model/model.onnx` and the scaler.
    async fn upload(&self, model_type: ModelType, net: &SyntheticNet) -> (String, String) {
        let run = self.mlflow.create_run(&self.experiment, model_type.as_str(), &[]).await.expect("run");
        let uri = run.info.artifact_uri.clone();
        self.mlflow.upload_artifact(&uri, "model/model.onnx", net.to_onnx()).await.expect("upload model");
        self.mlflow
            .upload_artifact(&uri, "model/scaler.json", scaler().to_json().into_bytes())
            .await
            .expect("upload scaler");
        (run.info.run_id, uri)
    }

    async fn promotion(&self, model_type: ModelType, net: &SyntheticNet) -> ModelSelected {
        let (run_id, artifact_uri) = self.upload(model_type, net).await;
        ModelSelected {
            v: V1,
            identifier: self.identifier.clone(),
            model_uri: format!("runs:/{run_id}/model/model.onnx"),
            model_type,
            run_id,
            config_hash: self.config_hash.clone(),
            composite_score: 0.1,
            test_rmse: 0.1,
            test_mae: 0.08,
            test_mse: 0.01,
            promotion_time: Utc::now(),
            artifact_uri,
            model: self.artifact(ModelFormat::Onnx),
            missing: vec![],
            decision_object: format!("{}/{}/decision.json", self.identifier, self.config_hash),
        }
    }

    /// What eval does on a promotion: the pointer first, then the event.
    async fn promote(&self, sel: &ModelSelected, publish: bool) {
        let key = format!("{}/current.json", self.identifier);
        let body = Bytes::from(serde_json::to_vec(sel).expect("json"));
        self.store.put("model-promotion", &key, body, "application/json").await.expect("current.json");
        if publish {
            self.send(&self.selected_topic, sel).await;
        }
    }

    async fn send<T: serde::Serialize>(&self, topic: &str, value: &T) {
        Producer::new(&stack().kafka, "test")
            .expect("producer")
            .send_json(topic, Some(&self.identifier), value)
            .await
            .expect("ack");
    }

    /// Processed test part and scaler in S3, as preprocess writes them.
    async fn inference_data(&self) -> InferenceData {
        let meta = ProcessedMeta {
            config_hash: self.config_hash.clone(),
            config: json!({"test": true}),
            scaler: scaler(),
            roles: roles(),
        };
        let scaled = scaler().transform(&raw_frame()).expect("scale");
        let parquet = dataset::write_processed(&scaled, &meta).expect("parquet");
        let prefix = format!("{}/{}", self.identifier, self.config_hash);
        let test = self
            .store
            .put(
                "processed-data",
                &format!("{prefix}/test.parquet"),
                Bytes::from(parquet),
                "application/vnd.apache.parquet",
            )
            .await
            .expect("put test");
        let scaler = self
            .store
            .put(
                "processed-data",
                &format!("{prefix}/scaler.json"),
                Bytes::from(scaler().to_json()),
                "application/json",
            )
            .await
            .expect("put scaler");
        InferenceData {
            v: V1,
            identifier: self.identifier.clone(),
            config_hash: self.config_hash.clone(),
            test,
            scaler,
            created_at: Utc::now(),
        }
    }

    fn cli(&self, port: u16, fast_path: bool) -> inference::Cli {
        inference::Cli {
            http: inference::HttpArgs {
                http_addr: format!("127.0.0.1:{port}").parse().expect("addr"),
                ..Default::default()
            },
            batch: inference::BatchArgs::default(),
            run_inference_on_train_success: fast_path,
            identifiers: vec![self.identifier.clone()],
            promotion_bucket: "model-promotion".into(),
            mlflow_artifacts_destination: "s3://mlflow".parse().expect("destination"),
            group_id: self.group.clone(),
            instance_id: Some("test".into()),
            inference_data_topic: self.data_topic.clone(),
            model_training_topic: self.training_topic.clone(),
            model_selected_topic: self.selected_topic.clone(),
            performance_eval_topic: self.perf_topic.clone(),
            kafka: stack().kafka.clone(),
            consumer: ConsumerArgs {
                handler_backoff_ms: 50,
                handler_max_attempts: 3,
                commit_interval_ms: 200,
                session_timeout_ms: 6_000,
                ..Default::default()
            },
            s3: stack().s3.clone(),
            admin: service_kit::admin::AdminArgs { metrics_addr: "127.0.0.1:0".parse().expect("addr") },
        }
    }

    fn perf_events(&self, at_least: usize, wait: Duration) -> Vec<PerformanceEval> {
        read_topic(&self.perf_topic, at_least, wait)
            .iter()
            .map(|m| decode(m.payload().unwrap_or_default()).expect("performance-eval"))
            .collect()
    }

    /// The performance-eval event `ev` for `data`, made by the promoted `net`:
    /// results where the contract says, verified by their claim checks, and
    /// metrics that the test recomputes (the scaled ones from the reference
    /// forward pass, the per-target ones from the JSONL lines).
    async fn check_results(&self, ev: &PerformanceEval, data: &InferenceData, sel: &ModelSelected, net: &SyntheticNet) {
        let n_windows = ROWS - INPUT_LEN - OUTPUT_LEN + 1;
        assert_eq!(
            (ev.identifier.as_str(), ev.config_hash.as_str()),
            (self.identifier.as_str(), self.config_hash.as_str())
        );
        assert_eq!((ev.model_type, ev.run_id.as_str()), (sel.model_type, sel.run_id.as_str()));
        assert_eq!(ev.windows, n_windows as u64);
        assert_eq!(ev.source, data.test);

        // The results are where the contract says, and verify against their claim checks.
        let stem = result_stem(data, &sel.run_id);
        assert_eq!(ev.results.bucket, "inference-logs");
        assert_eq!(ev.results.object, format!("{stem}.jsonl"));
        assert!(ev.results.object.starts_with(&format!("{}/{}/", self.identifier, data.created_at.format("%Y%m%d"))));
        let jsonl = self.store.get(&ev.results).await.expect("JSONL verifies");
        let plot = ev.plot.as_ref().expect("a plot");
        assert_eq!(plot.object, format!("{stem}.png"));
        let png = self.store.get(plot).await.expect("PNG verifies");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        // Recompute: the scaled metrics from the reference forward pass on the
        // same windows, the per-target metrics from the JSONL lines.
        let scaled = scaler().transform(&raw_frame()).expect("scale");
        let windows =
            make_windows(&scaled, &roles(), WindowSpec { input_len: INPUT_LEN, output_len: OUTPUT_LEN }).unwrap();
        let reference = net.forward(&windows.x, windows.n);
        let (mut sq, mut abs) = (0.0, 0.0);
        for (p, a) in reference.iter().zip(&windows.y) {
            let e = f64::from(*p) - f64::from(*a);
            sq += e * e;
            abs += e.abs();
        }
        let mse = sq / reference.len() as f64;
        assert!(close(ev.metrics.mse, mse, 1e-4), "mse {} vs recomputed {mse}", ev.metrics.mse);
        assert!(close(ev.metrics.rmse, mse.sqrt(), 1e-4), "rmse {} vs {}", ev.metrics.rmse, mse.sqrt());
        assert!(close(ev.metrics.mae, abs / reference.len() as f64, 1e-4), "mae {}", ev.metrics.mae);
        let lines: Vec<WindowRecord> = jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), n_windows);
        assert_eq!(lines[0].steps.len(), OUTPUT_LEN);
        assert_eq!(lines[0].steps[0].timestamp, raw_frame().timestamps[INPUT_LEN]);
        assert!(close(lines[0].steps[0].actual[TARGET], raw_frame().columns[0].values[INPUT_LEN], 1e-9));
        let per_target = per_target_from_jsonl(&jsonl).expect("JSONL parses");
        let (got, want) = (&ev.per_target[TARGET], &per_target[TARGET]);
        assert!(close(got.rmse, want.rmse, 1e-5) && close(got.mae, want.mae, 1e-5), "{got:?} vs {want:?}");
        // Original units are the scaled ones times the load column's scale.
        let load_scale = scaler().columns[0].scale;
        assert!(
            close(got.rmse, ev.metrics.rmse * load_scale, 1e-4),
            "{} vs {}",
            got.rmse,
            ev.metrics.rmse * load_scale
        );
    }

    /// Keys of the requests parked for this world's identifier.
    async fn parked(&self) -> Vec<String> {
        let listed = self.store.list("inference-logs", &inference::pending::prefix(&self.identifier)).await;
        listed.expect("list pending").into_iter().map(|(k, _)| k).collect()
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn start(cli: inference::Cli) -> (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    (cancel, tokio::spawn(async move { inference::run(cli, c).await }))
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    match client.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// The version `/model` shows once `/readyz` says ready.
async fn wait_served(port: u16, want: Option<&str>, timeout: Duration) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.map(|r| r.status().as_u16());
        if ready.is_ok_and(|s| s == 200) {
            let (_, body) = get_json(&client, &format!("http://127.0.0.1:{port}/model")).await;
            let version = body["models"][0]["version"].as_str().unwrap_or_default().to_string();
            if want.is_none_or(|w| w == version) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "model {want:?} not served on port {port} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn raw_window(offset: usize) -> Vec<Vec<f64>> {
    let f = raw_frame();
    (offset..offset + INPUT_LEN).map(|r| f.columns.iter().map(|c| c.values[r]).collect()).collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inference_data_claim_check_yields_jsonl_and_performance_eval_that_recompute() {
    let w = World::new("batch").await;
    let net = synthetic(Cell::Lstm, 11);
    let sel = w.promotion(ModelType::Lstm, &net).await;
    w.promote(&sel, false).await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    wait_served(port, Some(&format!("LSTM/{}", sel.run_id)), Duration::from_secs(60)).await;

    let data = w.inference_data().await;
    w.send(&w.data_topic, &data).await;
    let events = w.perf_events(1, Duration::from_secs(90));
    assert_eq!(events.len(), 1, "one performance-eval event");
    let ev = &events[0];
    w.check_results(ev, &data, &sel, &net).await;

    // The offset is committed after the results are durable; a redelivered
    // claim check overwrites the same objects instead of adding new ones.
    wait_for_commit(&w.group, &w.data_topic, 0, 1, Duration::from_secs(30));
    w.send(&w.data_topic, &data).await;
    let events = w.perf_events(2, Duration::from_secs(90));
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].results.object, ev.results.object);
    let day_prefix = format!("{}/{}/", w.identifier, data.created_at.format("%Y%m%d"));
    let objects = w.store.list("inference-logs", &day_prefix).await.expect("list");
    assert_eq!(objects.len(), 2, "one JSONL and one PNG, not duplicates: {objects:?}");

    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// No record on `topic` within a few seconds.
fn assert_empty(topic: &str, what: &str) {
    let got = read_topic(topic, 1, Duration::from_secs(3));
    assert!(got.is_empty(), "{what}: {} record(s) on {topic}", got.len());
}

/// Send a test set before any model is served: it is parked (offset committed,
/// `pending/` object written), not dead-lettered and not forecast.
async fn send_and_see_it_parked(w: &World) -> InferenceData {
    let data = w.inference_data().await;
    w.send(&w.data_topic, &data).await;
    wait_for_commit(&w.group, &w.data_topic, 0, 1, Duration::from_secs(60));
    assert_eq!(w.parked().await, vec![inference::pending::key(&data)], "parked before its offset was committed");
    assert_empty(&dlq_topic(&w.data_topic), "a request before any promotion is not an error");
    assert_empty(&w.perf_topic, "nothing is forecast without a model");
    data
}

/// After the promotion: exactly one performance-eval event, whose results
/// recompute, the parked copy gone, nothing dead-lettered.
async fn see_it_run_once(w: &World, data: &InferenceData, sel: &ModelSelected, net: &SyntheticNet, models_group: &str) {
    let events = w.perf_events(1, Duration::from_secs(90));
    assert_eq!(events.len(), 1, "the promotion runs the parked request");
    w.check_results(&events[0], data, sel, net).await;
    // Once the promotion's offset is committed its handler is done: still one event.
    wait_for_commit(models_group, &w.selected_topic, 0, 1, Duration::from_secs(60));
    let events = w.perf_events(2, Duration::from_secs(3));
    assert_eq!(events.len(), 1, "the parked request ran exactly once");
    assert!(w.parked().await.is_empty(), "the parked copy is deleted after the run");
    assert_empty(&dlq_topic(&w.data_topic), "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_data_before_any_promotion_is_parked_and_run_once_by_the_promotion() {
    let w = World::new("park").await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    let data = send_and_see_it_parked(&w).await;
    let client = reqwest::Client::new();
    let metrics = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("flts_inference_parked_requests_total{event=\"parked\"}"), "{text}");

    let net = synthetic(Cell::Gru, 21);
    let sel = w.promotion(ModelType::Gru, &net).await;
    w.promote(&sel, true).await;
    see_it_run_once(&w, &data, &sel, &net, &format!("{}-models-test", w.group)).await;
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// `name`'s value in a Prometheus text exposition (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

async fn wait_alive(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "inference on port {port} not alive within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_request_survives_a_kill_and_runs_once_after_the_restart() {
    let w = World::new("park-kill").await;
    let process = spawn_inference(&w, free_port(), &w.selected_topic);
    let data = send_and_see_it_parked(&w).await;
    process.crash();

    let port = free_port();
    let restarted = spawn_inference(&w, port, &w.selected_topic);
    wait_alive(port).await;
    let net = synthetic(Cell::Lstm, 22);
    let sel = w.promotion(ModelType::Lstm, &net).await;
    w.promote(&sel, true).await;
    see_it_run_once(&w, &data, &sel, &net, &format!("{}-models-restart", w.group)).await;
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics").text().await.unwrap();
    assert_eq!(metric(&text, "flts_inference_parked_requests_total{event=\"run\"}"), 1.0, "{text}");
    assert!(restarted.terminate().success(), "a SIGTERM stops the service cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_parked_before_a_kill_runs_at_start_up_when_the_promotion_came_meanwhile() {
    let w = World::new("park-down").await;
    let process = spawn_inference(&w, free_port(), &w.selected_topic);
    let data = send_and_see_it_parked(&w).await;
    process.crash();
    // Eval promotes while inference is down.
    let net = synthetic(Cell::Gru, 23);
    let sel = w.promotion(ModelType::Gru, &net).await;
    w.promote(&sel, true).await;

    // The start-up load of current.json runs it; the event, read later, does not run it again.
    let port = free_port();
    let restarted = spawn_inference(&w, port, &w.selected_topic);
    see_it_run_once(&w, &data, &sel, &net, &format!("{}-models-restart", w.group)).await;
    let body = wait_served(port, Some(&format!("GRU/{}", sel.run_id)), Duration::from_secs(60)).await;
    assert_eq!(body["models"][0]["source"], "promotion");
    assert!(restarted.terminate().success(), "a SIGTERM stops the service cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_selected_switches_the_served_model_while_requests_continue() {
    let w = World::new("switch").await;
    let old = w.promotion(ModelType::Lstm, &synthetic(Cell::Lstm, 1)).await;
    w.promote(&old, false).await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    let old_version = format!("LSTM/{}", old.run_id);
    wait_served(port, Some(&old_version), Duration::from_secs(60)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let body = json!({ "window": raw_window(c * 5) }).to_string();
                let mut seen: Vec<String> = Vec::new();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let resp = client
                        .post(format!("http://127.0.0.1:{port}/predict"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = r.json().await.expect("json");
                            assert!(v["forecasts"][0][0][0].as_f64().is_some_and(f64::is_finite));
                            let version = v["model"]["version"].as_str().unwrap_or_default().to_string();
                            if seen.last() != Some(&version) {
                                seen.push(version);
                            }
                        }
                        Ok(r) => failures.push(format!("status {}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (seen, failures)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new = w.promotion(ModelType::Gru, &synthetic(Cell::Gru, 2)).await;
    w.promote(&new, true).await;
    let new_version = format!("GRU/{}", new.run_id);
    let body = wait_served(port, Some(&new_version), Duration::from_secs(60)).await;
    assert_eq!(body["models"][0]["source"], "promotion");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (seen, failures) = c.await.expect("client");
        assert!(failures.is_empty(), "failed requests during the swap: {failures:?}");
        assert_eq!(seen, vec![old_version.clone(), new_version.clone()], "old model, then the new one, never back");
    }
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// The real binary, so that a restart is a new process.
fn spawn_inference(w: &World, port: u16, selected_topic: &str) -> StageProcess {
    let mut cmd = StageProcess::command("inference");
    cmd.env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("INFERENCE_IDENTIFIERS", &w.identifier)
        .env("INFERENCE_GROUP_ID", &w.group)
        .env("INFERENCE_INSTANCE_ID", "restart")
        .env("INFERENCE_DATA_TOPIC", &w.data_topic)
        .env("MODEL_SELECTED_TOPIC", selected_topic)
        .env("MODEL_TRAINING_TOPIC", &w.training_topic)
        .env("PERFORMANCE_EVAL_TOPIC", &w.perf_topic)
        .env("KAFKA_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS.to_string())
        // The rebalance timeout: how long a restarted member may wait for its killed predecessor.
        .env("KAFKA_MAX_POLL_INTERVAL_MS", "10000")
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("RUST_LOG", "warn");
    StageProcess::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_serves_the_promoted_model_before_any_new_event() {
    let w = World::new("restart").await;
    let first = w.promotion(ModelType::Lstm, &synthetic(Cell::Lstm, 3)).await;
    w.promote(&first, false).await;
    let port = free_port();
    let process = spawn_inference(&w, port, &w.selected_topic);
    wait_served(port, Some(&format!("LSTM/{}", first.run_id)), Duration::from_secs(60)).await;

    // A promotion arrives over Kafka while it runs; then the process dies.
    let second = w.promotion(ModelType::Gru, &synthetic(Cell::Gru, 4)).await;
    w.promote(&second, true).await;
    let second_version = format!("GRU/{}", second.run_id);
    wait_served(port, Some(&second_version), Duration::from_secs(60)).await;
    drop(process); // SIGKILL

    // Restarted on an empty promotion topic, no event can tell it about the
    // promotion: the first answer once ready must already be the promoted model.
    let empty = unique("t-restart-empty-selected");
    create_topic_with_dlq(&empty, 1).await;
    let port = free_port();
    let restarted = spawn_inference(&w, port, &empty);
    let body = wait_served(port, None, Duration::from_secs(60)).await;
    assert_eq!(body["models"][0]["version"], second_version, "{body}");
    assert_eq!(body["models"][0]["source"], "promotion");
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/predict"))
        .header("content-type", "application/json")
        .body(json!({ "window": raw_window(0) }).to_string())
        .send()
        .await
        .expect("predict");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["model"]["version"], second_version);
    assert!(restarted.terminate().success(), "a SIGTERM stops the service cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_serves_a_fresh_model_until_a_promotion_wins() {
    let w = World::new("fast").await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, true));
    let success = |run_id: &str, artifact_uri: &str, model_type| ModelTraining {
        v: V1,
        identifier: w.identifier.clone(),
        model_type,
        config_hash: w.config_hash.clone(),
        run_id: run_id.into(),
        status: TrainingStatus::Success(Box::new(TrainingSuccess {
            test_rmse: 0.1,
            test_mae: 0.08,
            test_mse: 0.01,
            train_start: Utc::now(),
            train_end: Utc::now(),
            artifact_uri: artifact_uri.into(),
            model: w.artifact(ModelFormat::Onnx),
            protocol: EvalProtocol::OneStepAhead,
            baselines: Baselines { last_value: Metrics { mse: 1.0, rmse: 1.0, mae: 1.0 }, seasonal_naive: None },
        })),
    };
    // No promotion yet: a SUCCESS is served at once.
    let (fresh_run, fresh_uri) = w.upload(ModelType::Gru, &synthetic(Cell::Gru, 5)).await;
    w.send(&w.training_topic, &success(&fresh_run, &fresh_uri, ModelType::Gru)).await;
    let body = wait_served(port, Some(&format!("GRU/{fresh_run}")), Duration::from_secs(60)).await;
    assert_eq!(body["models"][0]["source"], "training");

    // The promotion replaces it; a later SUCCESS of the same config does not.
    let promoted = w.promotion(ModelType::Lstm, &synthetic(Cell::Lstm, 6)).await;
    w.promote(&promoted, true).await;
    let promoted_version = format!("LSTM/{}", promoted.run_id);
    wait_served(port, Some(&promoted_version), Duration::from_secs(60)).await;
    let (late_run, late_uri) = w.upload(ModelType::Gru, &synthetic(Cell::Gru, 7)).await;
    w.send(&w.training_topic, &success(&late_run, &late_uri, ModelType::Gru)).await;

    wait_for_commit(&format!("{}-models-test", w.group), &w.training_topic, 0, 2, Duration::from_secs(60));

    // A promotion whose artifacts are missing goes to the DLQ and changes nothing.
    let mut broken = w.promotion(ModelType::Gru, &synthetic(Cell::Gru, 8)).await;
    broken.model.path = "model/missing.onnx".into();
    broken.promotion_time = Utc::now();
    w.send(&w.selected_topic, &broken).await;
    let dlq = envelopes(&read_topic(&dlq_topic(&w.selected_topic), 1, Duration::from_secs(60)));
    assert_eq!(dlq.len(), 1, "the broken promotion is dead-lettered");
    assert_eq!(dlq[0].error.code, "object_not_found", "{:?}", dlq[0].error);
    let client = reqwest::Client::new();
    let (_, body) = get_json(&client, &format!("http://127.0.0.1:{port}/model")).await;
    assert_eq!(body["models"][0]["version"], promoted_version, "promotion still served: {body}");
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}
