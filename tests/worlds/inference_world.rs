//! The inference service's test world, shared by `tests/inference.rs` and
//! `tests/hostile_promotion.rs`: a synthetic ONNX network uploaded to a real
//! MLflow run, promotions recorded as eval records them (pointer first, then
//! the event, with eval's sequence and the model's digest), real topics.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use claim_check::ClaimCheckStore;
use contracts::*;
use flts_tests::*;
use inference::batch::{WindowRecord, per_target_from_jsonl, result_stem};
use kafka_utils::{ConsumerArgs, Producer};
use mlflow_client::MlflowClient;
use model_runtime::synthetic::{Cell, NetSpec, SyntheticNet};
use rdkafka::message::Message as _;
use serde_json::{Value, json};
use series::{Column, Frame, ProcessedMeta, Roles, Scaler, ScalerKind, WindowSpec, make_windows};
use tokio_util::sync::CancellationToken;

/// Promotion numbers handed out by [`World::promotion`]: increasing, like eval's.
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

pub const INPUT_LEN: usize = 10;
pub const OUTPUT_LEN: usize = 2;
pub const ROWS: usize = 240;
pub const INTERVAL_MS: i64 = 120_000;
pub const FEATURES: [&str; 2] = ["load", "temp"];
pub const TARGET: &str = "load";

/// The test set in original units: a daily wave plus a slower one.
pub fn raw_frame() -> Frame {
    let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let ts: Vec<i64> = (0..ROWS as i64).map(|i| t0 + i * INTERVAL_MS).collect();
    let load =
        (0..ROWS).map(|i| 500.0 + 200.0 * (i as f64 * std::f64::consts::TAU / 90.0).sin() + (i % 7) as f64).collect();
    let temp = (0..ROWS).map(|i| 15.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 240.0).cos()).collect();
    Frame::new(ts, vec![Column::new("load", load), Column::new("temp", temp)]).expect("frame")
}

pub fn names() -> Vec<String> {
    FEATURES.iter().map(|s| s.to_string()).collect()
}

pub fn scaler() -> Scaler {
    Scaler::fit(ScalerKind::MinMax, &raw_frame(), &names(), &[]).expect("scaler")
}

pub fn roles() -> Roles {
    Roles { timestamp: "timestamp".into(), features: names(), targets: vec![TARGET.into()], interval_ms: INTERVAL_MS }
}

pub fn synthetic(cell: Cell, seed: u64) -> SyntheticNet {
    SyntheticNet::random(
        NetSpec { cell, n_features: 2, hidden: vec![8], input_len: INPUT_LEN, output_len: OUTPUT_LEN, n_targets: 1 },
        seed,
    )
}

/// One member of [`World::ensemble_promotion`].
pub struct EnsembleMemberSpec<'a> {
    pub model_type: ModelType,
    pub net: &'a SyntheticNet,
    pub weight: f64,
    /// The member's own scaler (its clip and floor included).
    pub scaler: Scaler,
    pub forged: bool,
}

/// What a member forecasts for one raw window (`[input_len][features]`), per
/// step of the target, in original units: inputs clipped then scaled by its
/// own scaler, forecasts inverted and floored by it (the reference forward pass).
pub fn member_forecast(m: &EnsembleMemberSpec<'_>, window: &[Vec<f64>]) -> Vec<f64> {
    let x: Vec<f32> = window
        .iter()
        .flat_map(|row| row.iter().zip(FEATURES).map(|(v, f)| m.scaler.scale_input(f, *v).expect("feature") as f32))
        .collect();
    m.net.forward(&x, 1).iter().map(|s| m.scaler.unscale_forecast(TARGET, f64::from(*s)).expect("target")).collect()
}

/// One test's world: its topics, dataset and consumer groups.
pub struct World {
    pub identifier: String,
    pub config_hash: String,
    pub data_topic: String,
    pub selected_topic: String,
    pub training_topic: String,
    pub perf_topic: String,
    pub group: String,
    pub experiment: String,
    pub store: ClaimCheckStore,
    pub mlflow: MlflowClient,
}

impl World {
    pub async fn new(name: &str) -> Self {
        let mlflow = MlflowClient::new(&stack().mlflow).expect("mlflow client");
        let w = World {
            identifier: unique(&format!("inf-{name}")),
            config_hash: claim_check::sha256_hex(unique("cfg").as_bytes()),
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

    pub fn artifact(&self, format: ModelFormat) -> ModelArtifact {
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
    pub async fn upload(&self, model_type: ModelType, net: &SyntheticNet) -> (String, String) {
        self.upload_onnx(model_type, net.to_onnx()).await
    }

    /// A real MLflow run holding `onnx` as `model/model.onnx` and the scaler.
    pub async fn upload_onnx(&self, model_type: ModelType, onnx: Vec<u8>) -> (String, String) {
        let run = self.mlflow.create_run(&self.experiment, model_type.as_str(), &[]).await.expect("run");
        let uri = run.info.artifact_uri.clone();
        self.mlflow.upload_artifact(&uri, "model/model.onnx", onnx).await.expect("upload model");
        self.mlflow
            .upload_artifact(&uri, "model/scaler.json", scaler().to_json().into_bytes())
            .await
            .expect("upload scaler");
        (run.info.run_id, uri)
    }

    pub async fn promotion(&self, model_type: ModelType, net: &SyntheticNet) -> ModelSelected {
        self.promotion_of(model_type, net.to_onnx()).await
    }

    /// The promotion of an ONNX model of this world's shapes.
    pub async fn promotion_of(&self, model_type: ModelType, onnx: Vec<u8>) -> ModelSelected {
        let (run_id, artifact_uri) = self.upload_onnx(model_type, onnx.clone()).await;
        self.selected(model_type, run_id, artifact_uri, self.artifact(ModelFormat::Onnx), &onnx)
    }

    /// The promotion of `model` (whose file is `model_file`) in run `run_id`.
    fn selected(
        &self,
        model_type: ModelType,
        run_id: String,
        artifact_uri: String,
        model: ModelArtifact,
        model_file: &[u8],
    ) -> ModelSelected {
        ModelSelected {
            v: V1,
            identifier: self.identifier.clone(),
            model_uri: format!("runs:/{run_id}/{}", model.path),
            model_type,
            run_id,
            config_hash: self.config_hash.clone(),
            composite_score: 0.1,
            test_rmse: 0.1,
            test_mae: 0.08,
            test_mse: 0.01,
            promotion_time: Utc::now(),
            artifact_uri,
            model,
            model_sha256: Some(claim_check::sha256_hex(model_file)),
            missing: vec![],
            decision_object: promotion::decision_key(&self.identifier, &self.config_hash),
            // Eval's counter: every promotion made here gets the next number.
            sequence: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// An ensemble as eval writes one: a real MLflow run holding each member's
    /// model and own scaler under `model/members/<i>/`, the manifest at
    /// `model/ensemble.json` and the dataset's scaler at `model/scaler.json`.
    /// `forged` members get a wrong SHA-256 in the manifest.
    pub async fn ensemble_promotion(&self, members: &[EnsembleMemberSpec<'_>]) -> ModelSelected {
        let run = self.mlflow.create_run(&self.experiment, "ENSEMBLE", &[]).await.expect("run");
        let uri = run.info.artifact_uri.clone();
        let mut listed = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let onnx = m.net.to_onnx();
            let mut artifact = self.artifact(ModelFormat::Onnx);
            artifact.path = format!("model/members/{i}/model.onnx");
            artifact.scaler_path = format!("model/members/{i}/scaler.json");
            self.mlflow.upload_artifact(&uri, &artifact.path, onnx.clone()).await.expect("upload member");
            self.mlflow
                .upload_artifact(&uri, &artifact.scaler_path, m.scaler.to_json().into_bytes())
                .await
                .expect("upload member scaler");
            let sha256 = if m.forged { "0".repeat(64) } else { claim_check::sha256_hex(&onnx) };
            listed.push(ensemble::EnsembleMember {
                model_type: m.model_type,
                run_id: format!("member-{i}"),
                weight: m.weight,
                artifact,
                sha256,
            });
        }
        let manifest = ensemble::EnsembleManifest { kind: ensemble::EnsembleKind::WeightedMean, members: listed };
        let manifest = serde_json::to_vec(&manifest).expect("manifest");
        self.mlflow.upload_artifact(&uri, ensemble::MANIFEST_PATH, manifest.clone()).await.expect("upload manifest");
        self.mlflow
            .upload_artifact(&uri, "model/scaler.json", scaler().to_json().into_bytes())
            .await
            .expect("upload scaler");
        let mut model = self.artifact(ModelFormat::Ensemble);
        model.path = ensemble::MANIFEST_PATH.into();
        self.selected(ModelType::Ensemble, run.info.run_id, uri, model, &manifest)
    }

    /// What eval does on a promotion: the pointer first, then the event.
    pub async fn promote(&self, sel: &ModelSelected, publish: bool) {
        let key = promotion::current_key(&self.identifier);
        let body = Bytes::from(serde_json::to_vec(sel).expect("json"));
        self.store.put("model-promotion", &key, body, "application/json").await.expect("current.json");
        if publish {
            self.send(&self.selected_topic, sel).await;
        }
    }

    pub async fn send<T: serde::Serialize>(&self, topic: &str, value: &T) {
        Producer::new(&stack().kafka, "test")
            .expect("producer")
            .send_json(topic, Some(&self.identifier), value)
            .await
            .expect("ack");
    }

    /// Processed test part and scaler in S3, as preprocess writes them.
    pub async fn inference_data(&self) -> InferenceData {
        let meta = ProcessedMeta {
            config_hash: self.config_hash.clone(),
            config: json!({"test": true}),
            scaler: scaler(),
            roles: roles(),
            gaps: Vec::new(),
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

    pub fn cli(&self, port: u16, fast_path: bool) -> inference::Cli {
        inference::Cli {
            once: Default::default(),
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

    pub fn perf_events(&self, at_least: usize, wait: Duration) -> Vec<PerformanceEval> {
        read_topic(&self.perf_topic, at_least, wait)
            .iter()
            .map(|m| decode(m.payload().unwrap_or_default()).expect("performance-eval"))
            .collect()
    }

    /// The performance-eval event `ev` for `data`, made by the promoted `net`:
    /// results where the contract says, verified by their claim checks, and
    /// metrics that the test recomputes (the scaled ones from the reference
    /// forward pass, the per-target ones from the JSONL lines).
    pub async fn check_results(
        &self,
        ev: &PerformanceEval,
        data: &InferenceData,
        sel: &ModelSelected,
        net: &SyntheticNet,
    ) {
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
    pub async fn parked(&self) -> Vec<String> {
        let listed = self.store.list("inference-logs", &inference::pending::prefix(&self.identifier)).await;
        listed.expect("list pending").into_iter().map(|(k, _)| k).collect()
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn start(cli: inference::Cli) -> (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    (cancel, tokio::spawn(async move { inference::run(cli, c).await }))
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    match client.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// The version `/model` shows once `/readyz` says ready.
pub async fn wait_served(port: u16, want: Option<&str>, timeout: Duration) -> Value {
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

pub fn raw_window(offset: usize) -> Vec<Vec<f64>> {
    let f = raw_frame();
    (offset..offset + INPUT_LEN).map(|r| f.columns.iter().map(|c| c.values[r]).collect()).collect()
}

pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

/// Wait until inference on `port` answers /healthz (60 s at most).
pub async fn wait_alive(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "inference on port {port} not alive within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real binary, so that a restart is a new process.
pub fn spawn_inference(w: &World, port: u16, selected_topic: &str) -> StageProcess {
    let mut cmd = StageProcess::command("inference");
    cmd.env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("INFERENCE_IDENTIFIERS", &w.identifier)
        .env("INFERENCE_GROUP_ID", &w.group)
        .env("INFERENCE_DATA_TOPIC", &w.data_topic)
        .env("MODEL_SELECTED_TOPIC", selected_topic)
        .env("MODEL_TRAINING_TOPIC", &w.training_topic)
        .env("PERFORMANCE_EVAL_TOPIC", &w.perf_topic)
        .env("KAFKA_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS.to_string())
        // The rebalance timeout: how long a restarted member may wait for its killed predecessor.
        .env("KAFKA_MAX_POLL_INTERVAL_MS", "10000")
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("RUST_LOG", "info");
    StageProcess::spawn_logged(cmd)
}

/// A running in-process inference serving a first promoted LSTM (from
/// `seed`): the promotion, the HTTP port, and the service to stop.
pub async fn serving_a_first_promotion(
    w: &World,
    seed: u64,
) -> (ModelSelected, u16, CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let first = w.promotion(ModelType::Lstm, &synthetic(Cell::Lstm, seed)).await;
    w.promote(&first, false).await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    wait_served(port, Some(&format!("LSTM/{}", first.run_id)), Duration::from_secs(60)).await;
    (first, port, cancel, task)
}
