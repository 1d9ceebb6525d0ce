//! Outputs the usual tools read as they are (issue 20), checked with the
//! standard Python clients from the interop venv `scripts/stack install`
//! makes (pinned: mlflow, onnx, onnxruntime, pyarrow, openapi-spec-validator,
//! schemathesis):
//!
//! - `schemas/inference-openapi.yaml` is valid OpenAPI (openapi-spec-validator),
//!   the server answers its own examples with 200, and schemathesis finds no
//!   failure against the running HTTP server;
//! - pyarrow's `read_schema(...).metadata` shows the `flts.*` metadata of
//!   processed Parquet (written by `dataset`, and by preprocess on the stack);
//! - a network trained by `train-gru` on the stack is an MLflow Model:
//!   `mlflow.models.get_model_info` and `mlflow.pyfunc.load_model` work on
//!   `runs:/<id>/model` and its forecasts equal the inference service's; a
//!   Prophet run has an `MLmodel` too; both runs carry Source, User and the
//!   git commit.
//!
//! The Python scripts are in `scripts/interop/`. A missing venv fails the
//! test with what to run; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use contracts::{ModelTraining, ModelType, TrainingData, TrainingStatus};
use flts_tests::pipeline::{World, decoded, generated_csv};
use flts_tests::*;
use serde_json::{Value, json};
use series::{Roles, Scaler, ScalerKind};

/// A tool of the interop venv (`$FLTS_CACHE/interop-venv`, default `~/.cache/flts`).
fn venv_tool(name: &str) -> PathBuf {
    let cache = std::env::var_os("FLTS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/flts"));
    let tool = cache.join("interop-venv/bin").join(name);
    assert!(tool.exists(), "{} is missing: run `scripts/stack install`", tool.display());
    tool
}

/// Run `cmd`; its stdout, or a panic with everything it printed.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

/// `scripts/interop/<script>` with the venv's Python; its JSON output.
fn python_json(script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(venv_tool("python"));
    cmd.arg(repo_root().join("scripts/interop").join(script)).args(args).envs(env.iter().copied());
    let out = run(cmd, script);
    serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{script}: {e}: {out}"))
}

fn spec_path() -> PathBuf {
    repo_root().join("schemas/inference-openapi.yaml")
}

// ---------------------------------------------------------------------------
// OpenAPI: a real validator, the document's own examples, a schema fuzzer.

const FEATURES: [&str; 11] = dataset::generate::COLUMNS;

/// A served GRU for `identifier`, shaped like the pipeline's networks (10
/// rows of the 11 generated columns, forecasting `down` and `up` one step),
/// with a scaler fitted on generated data as preprocess would.
fn served_network(identifier: &str, seed: u64) -> Arc<model_runtime::model::Model> {
    use model_runtime::synthetic::{Cell, NetSpec, SyntheticNet};
    let event: ModelTraining = serde_json::from_value(json!({
        "v": 1, "identifier": identifier, "model_type": "GRU", "config_hash": "c0ffee",
        "run_id": format!("interop-{identifier}"), "status": "SUCCESS",
        "test_rmse": 0.1, "test_mae": 0.08, "test_mse": 0.01,
        "train_start": "2026-01-01T00:00:00Z", "train_end": "2026-01-01T00:01:00Z",
        "artifact_uri": "mlflow-artifacts:/1/interop/artifacts",
        "model": { "format": "onnx", "path": "model/model.onnx", "scaler_path": "model/scaler.json",
                   "input_len": 10, "output_len": 1, "features": FEATURES, "targets": ["down", "up"] },
        "protocol": "one_step_ahead",
        "baselines": { "last_value": { "rmse": 1.0, "mae": 1.0, "mse": 1.0 },
                       "seasonal_naive": null }
    }))
    .expect("a SUCCESS event");
    let spec = model_runtime::model::ModelSpec::from_training(&event).expect("success");
    let net = SyntheticNet::random(
        NetSpec { cell: Cell::Gru, n_features: 11, hidden: vec![8], input_len: 10, output_len: 1, n_targets: 2 },
        seed,
    );
    let frame = dataset::generate::traffic(&dataset::generate::Spec { rows: 2000, nan_every: 0, ..Default::default() });
    let names: Vec<String> = FEATURES.map(String::from).to_vec();
    let scaler = Scaler::fit(ScalerKind::MinMax, &frame, &names, &[]).expect("scaler");
    model_runtime::loader::build(&spec, &net.to_onnx(), scaler).expect("model builds")
}

/// The HTTP API (the real router and server) serving `datasets`, on a free port.
async fn api_server(datasets: &[&str]) -> (String, tokio_util::sync::CancellationToken) {
    use inference::http::{self, Api, HttpArgs};
    let ready = service_kit::admin::Readiness::default();
    let registry = Arc::new(model_runtime::Registry::new(ready.clone()));
    for (seed, id) in datasets.iter().enumerate() {
        registry.install(served_network(id, seed as u64)).expect("installed");
    }
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let args = HttpArgs { workers: 2, ..HttpArgs::default() };
    let cancel = tokio_util::sync::CancellationToken::new();
    let timeout = args.header_timeout();
    tokio::spawn(http::serve(listener, http::router(Api::new(registry, args), ready), timeout, cancel.clone()));
    (url, cancel)
}

#[test]
fn the_openapi_document_is_valid_openapi() {
    let mut cmd = Command::new(venv_tool("openapi-spec-validator"));
    cmd.arg(spec_path());
    let out = run(cmd, "openapi-spec-validator");
    assert!(out.contains("OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_the_documents_own_examples_with_200() {
    let doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(spec_path()).expect("OpenAPI document")).expect("YAML");
    let examples = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .expect("/predict has request examples")
        .clone();
    assert!(examples.len() >= 2, "{examples:?}");
    // Two datasets: `identifier` is required, as in a multi-dataset deployment.
    let (url, _cancel) = api_server(&["site-a", "site-b"]).await;
    let client = reqwest::Client::new();
    for (name, example) in examples {
        let resp = client.post(format!("{url}/predict")).json(&example["value"]).send().await.expect("response");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "example {name}: {body}");
        let windows = example["value"]["windows"].as_array().map_or(1, Vec::len);
        assert_eq!(body["forecasts"].as_array().map(Vec::len), Some(windows), "example {name}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_against_the_running_server() {
    let (url, _cancel) = api_server(&["site-a", "site-b"]).await;
    let report = std::env::temp_dir().join(unique("schemathesis"));
    let mut cmd = Command::new(venv_tool("schemathesis"));
    cmd.args(["run", spec_path().to_str().expect("utf-8 path"), "--url", &url])
        // Every check but positive_data_acceptance: a window's length and row width are the
        // served model's, which the document cannot state, so most schema-valid bodies get
        // 422; the document's own examples are checked to get 200 in the test above.
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "60", "--seed", "20261206", "--workers", "2"])
        .args(["--no-color", "--generation-database", "none"])
        .args(["--report", "junit", "--report-dir", report.to_str().expect("utf-8 path")])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(std::env::temp_dir());
    let out = tokio::task::spawn_blocking(move || run(cmd, "schemathesis")).await.expect("join");
    println!("{out}");
    // Exit 0 (checked by `run`), and every generated case passed: "N generated, N passed".
    let counts = out.lines().map(str::trim).find(|l| l.contains(" generated, ")).unwrap_or_else(|| panic!("{out}"));
    let numbers: Vec<u64> = counts.split([' ', ',']).filter_map(|w| w.parse().ok()).collect();
    assert!(numbers.len() == 2 && numbers[0] == numbers[1] && numbers[0] >= 100, "{counts}\n{out}");
}

// ---------------------------------------------------------------------------
// Parquet metadata where Arrow readers look.

/// pyarrow's view of the Parquet `bytes`; checks the `flts.*` keys of `meta`.
fn check_pyarrow_sees(bytes: &[u8], meta: &series::ProcessedMeta) {
    let file = std::env::temp_dir().join(format!("{}.parquet", unique("interop")));
    std::fs::write(&file, bytes).expect("write parquet");
    let seen = python_json("parquet_metadata.py", &[file.to_str().expect("utf-8 path")], &[]);
    let _ = std::fs::remove_file(&file);
    for view in ["read_schema", "read_table"] {
        let m = &seen[view];
        assert_eq!(m["flts.config_hash"], meta.config_hash, "{view}: {seen}");
        assert_eq!(m["flts.config"], meta.config.to_string(), "{view}: {seen}");
        assert_eq!(m["flts.scaler"], meta.scaler.to_json(), "{view}: {seen}");
        let roles: Roles = serde_json::from_str(m["flts.roles"].as_str().expect("roles")).expect("roles JSON");
        assert_eq!(roles, meta.roles, "{view}");
    }
    assert_eq!(seen["columns"][&meta.roles.timestamp], "int64", "{seen}");
    for f in &meta.roles.features {
        assert_eq!(seen["columns"][f], "double", "{seen}");
    }
}

#[test]
fn pyarrow_reads_the_flts_metadata_of_processed_parquet() {
    let raw = dataset::generate::traffic(&dataset::generate::Spec { rows: 300, nan_every: 0, ..Default::default() });
    let names: Vec<String> = raw.columns.iter().map(|c| c.name.clone()).collect();
    let scaler = Scaler::fit(ScalerKind::MinMax, &raw, &names, &[]).expect("scaler");
    let meta = series::ProcessedMeta {
        config_hash: "ab".repeat(32),
        config: json!({"targets": ["down", "up"], "note": "quoted \" and , and: colon"}),
        scaler: scaler.clone(),
        roles: Roles {
            timestamp: "timestamp".into(),
            features: names,
            targets: vec!["down".into()],
            interval_ms: 120_000,
        },
        gaps: Vec::new(),
    };
    let bytes = dataset::write_processed(&scaler.transform(&raw).expect("scale"), &meta).expect("parquet");
    check_pyarrow_sees(&bytes, &meta);
    // Our reader still reads it.
    let (_, back) = dataset::read_processed(&bytes).expect("read back");
    assert_eq!(back.config_hash, meta.config_hash);
}

// ---------------------------------------------------------------------------
// MLflow Models, source tags, and preprocess's Parquet, from real stages.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trained_models_are_mlflow_models_python_loads_and_forecasts_as_we_do() {
    let w = World::new().await;
    let _stages: Vec<StageProcess> = ["preprocess", "train-gru", "prophet"].iter().map(|b| w.stage(b)).collect();
    w.submit(&generated_csv(1500), r#"{"targets": ["down", "up"]}"#);
    let succeeded = |m: &[rdkafka::message::OwnedMessage], t: ModelType| {
        decoded::<ModelTraining>(m)
            .into_iter()
            .find(|e| e.identifier == w.id && e.model_type == t && matches!(e.status, TrainingStatus::Success(_)))
    };
    let events = w.wait_for(&w.model_training, Duration::from_secs(600), "GRU and Prophet SUCCESS", |m| {
        succeeded(m, ModelType::Gru).is_some() && succeeded(m, ModelType::Prophet).is_some()
    });
    let gru = succeeded(&events, ModelType::Gru).expect("GRU");
    let prophet = succeeded(&events, ModelType::Prophet).expect("Prophet");
    let mlflow_env = [("MLFLOW_TRACKING_URI", stack().mlflow.tracking_uri.as_str())];

    // The network, as MLflow's Python client sees it.
    let seen = python_json("mlflow_model.py", &[&gru.run_id], &mlflow_env);
    assert_eq!(seen["run_id"], gru.run_id.as_str(), "{seen}");
    assert_eq!(seen["flavors"], json!(["onnx", "python_function"]), "{seen}");
    let inputs: Value = serde_json::from_str(seen["signature"]["inputs"].as_str().expect("inputs")).expect("JSON");
    assert_eq!(inputs[0]["tensor-spec"], json!({"dtype": "float32", "shape": [10, -1, 11]}), "{seen}");
    let outputs: Value = serde_json::from_str(seen["signature"]["outputs"].as_str().expect("outputs")).expect("JSON");
    assert_eq!(outputs[0]["tensor-spec"], json!({"dtype": "float32", "shape": [-1, 2]}), "{seen}");
    assert_eq!(seen["input"]["shape"], json!([10, 2, 11]), "two test windows, time-major: {seen}");
    let theirs: Vec<f64> = seen["prediction"]["output"]
        .as_array()
        .expect("output")
        .iter()
        .flat_map(|w| w.as_array().expect("window").iter().map(|v| v.as_f64().expect("number")))
        .collect();

    // Ours: the inference service's model, on the same example.
    let TrainingStatus::Success(s) = &gru.status else { unreachable!() };
    let client = mlflow_client::MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let uri = &s.artifact_uri;
    let (onnx, scaler, example) = tokio::try_join!(
        client.download_artifact(uri, &s.model.path),
        client.download_artifact(uri, &s.model.scaler_path),
        client.download_artifact(uri, "model/input_example.json")
    )
    .expect("artifacts");
    let spec = model_runtime::model::ModelSpec::from_training(&gru).expect("success");
    let scaler = Scaler::from_json(std::str::from_utf8(&scaler).expect("utf-8")).expect("scaler");
    let model = model_runtime::loader::build(&spec, &onnx, scaler).expect("inference loads the model");
    let example: Vec<Vec<Vec<f32>>> = serde_json::from_slice(&example).expect("[step][window][feature]");
    let n = example[0].len();
    // [step][window][feature] -> [window][step][feature]
    let x: Vec<f32> = (0..n).flat_map(|i| example.iter().flat_map(move |step| step[i].clone())).collect();
    let ours = model.forecast_scaled(&x, n, None, "interop").expect("forecast");
    assert_eq!(theirs.len(), ours.len(), "{theirs:?} vs {ours:?}");
    for (a, b) in theirs.iter().zip(&ours) {
        assert!((a - f64::from(*b)).abs() <= 1e-5 * (1.0 + a.abs()), "onnxruntime {theirs:?} vs ours {ours:?}");
    }

    // Prophet: its point forecast as ONNX, loaded the same way; equal to prophet.json's forecast.
    let seen = python_json("mlflow_model.py", &[&prophet.run_id], &mlflow_env);
    assert_eq!(seen["flavors"], json!(["flts_prophet", "onnx", "python_function"]), "{seen}");
    assert_eq!(seen["input"]["name"], "timestamp", "{seen}");
    let times: Vec<i64> = serde_json::from_value(seen["input"]["values"].clone()).expect("timestamps");
    assert_eq!(times.len(), 5, "{seen}");
    let TrainingStatus::Success(p) = &prophet.status else { unreachable!() };
    let json = client.download_artifact(&p.artifact_uri, &p.model.path).await.expect("prophet.json");
    let set = prophet_model::FittedSet::from_json(std::str::from_utf8(&json).expect("utf-8")).expect("loads");
    let ours = set.predict(&times).expect("forecast");
    let theirs = seen["prediction"]["yhat"].as_array().expect("yhat");
    assert_eq!(theirs.len(), times.len(), "{seen}");
    for (i, row) in theirs.iter().enumerate() {
        for (k, f) in ours.iter().enumerate() {
            let (a, b) = (row[k].as_f64().expect("number"), f.yhat[i]);
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{} at {}: onnxruntime {a} vs ours {b}", f.name, times[i]);
        }
    }

    // Source, User and commit in the UI.
    let head = run(
        {
            let mut c = Command::new("git");
            c.args(["rev-parse", "HEAD"]).current_dir(repo_root());
            c
        },
        "git rev-parse",
    );
    for ev in [&gru, &prophet] {
        let run = client.get_run(&ev.run_id).await.expect("run");
        let tag = |k: &str| run.tag(k).map(str::to_string);
        assert_eq!(tag("mlflow.source.type").as_deref(), Some("JOB"));
        let source = tag("mlflow.source.name").unwrap_or_default();
        assert!(["train-gru", "prophet"].contains(&source.as_str()), "source {source}");
        assert!(tag("mlflow.user").is_some_and(|u| !u.is_empty()));
        let commit = tag("mlflow.source.git.commit").unwrap_or_default();
        assert!(commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()), "commit {commit}");
        // Built from this tree: HEAD now, or an ancestor when others committed since the build.
        let mut ancestor = Command::new("git");
        ancestor.args(["merge-base", "--is-ancestor", &commit, head.trim()]).current_dir(repo_root());
        assert!(ancestor.status().expect("git").success(), "tagged commit {commit} is not in this tree's history");
    }

    // preprocess's processed Parquet: the flts.* metadata where pyarrow looks.
    let data = decoded::<TrainingData>(&w.read(&w.training_data, Duration::from_secs(3)))
        .into_iter()
        .find(|d| d.identifier == w.id)
        .expect("training-data record");
    let store = claim_check::ClaimCheckStore::new(&stack().s3);
    let bytes = store.get(&data.train).await.expect("processed train part");
    let (_, meta) = dataset::read_processed(&bytes).expect("processed Parquet");
    check_pyarrow_sees(&bytes, &meta);
}
