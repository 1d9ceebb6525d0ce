//! The trainer stages against the real stack, run as the real binaries:
//! a training-data claim check yields RUNNING then SUCCESS events, an MLflow
//! run with params, metrics and artifacts, and a loadable model; a redelivered
//! claim check trains nothing new; a bad claim check ends in the DLQ with a
//! FAILED event.

use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use claim_check::{ClaimCheckStore, sha256_hex};
use contracts::{ModelFormat, ModelTraining, ModelType, TrainingData, TrainingStatus, V1};
use flts_tests::*;
use kafka_utils::Producer;
use mlflow_client::MlflowClient;
use series::{Frame, ProcessedMeta, Roles, Scaler, ScalerKind};

/// A small generated dataset, scaled and uploaded like preprocess would.
async fn upload_dataset(identifier: &str, rows: usize) -> TrainingData {
    let spec = dataset::generate::Spec { rows, gap_every: 0, nan_every: 0, ..Default::default() };
    let raw = dataset::generate::traffic(&spec);
    let names: Vec<String> = raw.columns.iter().map(|c| c.name.clone()).collect();
    let cut = rows * 4 / 5;
    let (train, test) = (raw.slice(0..cut), raw.slice(cut..rows));
    let scaler = Scaler::fit(ScalerKind::MinMax, &train, &names, &[]).expect("fit scaler");
    let roles = Roles {
        timestamp: "timestamp".into(),
        features: names.clone(),
        targets: vec!["down".into(), "up".into()],
        interval_ms: spec.interval_ms,
    };
    let config_hash = sha256_hex(format!("{identifier}-training-test").as_bytes());
    let meta = ProcessedMeta {
        config_hash: config_hash.clone(),
        config: serde_json::json!({"test": true}),
        scaler: scaler.clone(),
        roles,
        gaps: Vec::new(),
    };
    let store = ClaimCheckStore::new(&stack().s3);
    let put = |name: &str, frame: &Frame| {
        let bytes = dataset::write_processed(&scaler.transform(frame).expect("scale"), &meta).expect("parquet");
        let key = format!("{identifier}/{config_hash}/{name}.parquet");
        let store = store.clone();
        async move { store.put("processed-data", &key, bytes.into(), "application/vnd.apache.parquet").await.expect("put") }
    };
    let train_claim = put("train", &train).await;
    let test_claim = put("test", &test).await;
    let scaler_claim = store
        .put(
            "processed-data",
            &format!("{identifier}/{config_hash}/scaler.json"),
            scaler.to_json().into(),
            "application/json",
        )
        .await
        .expect("put scaler");
    TrainingData {
        v: V1,
        identifier: identifier.into(),
        config_hash,
        train: train_claim,
        test: test_claim,
        scaler: scaler_claim,
        created_at: Utc::now(),
    }
}

/// Start `bin` on the test's own topics, group and experiment.
fn start_trainer(bin: &str, input: &str, events: &str, group: &str, experiment: &str) -> StageProcess {
    StageProcess::spawn(trainer_command(bin, input, events, group, experiment))
}

/// The command [`start_trainer`] runs: small, fast settings; add env to override them.
fn trainer_command(bin: &str, input: &str, events: &str, group: &str, experiment: &str) -> Command {
    let mut cmd = StageProcess::command(bin);
    cmd.env("TRAINING_DATA_TOPIC", input)
        .env("MODEL_TRAINING_TOPIC", events)
        .env("TRAINER_GROUP_ID", group)
        .env("MLFLOW_EXPERIMENT", experiment)
        .env("HIDDEN_SIZE", "16")
        .env("NUM_LAYERS", "1")
        .env("EPOCHS", "3")
        .env("BATCH_SIZE", "32")
        .env("LEARNING_RATE", "0.005")
        .env("HANDLER_MAX_ATTEMPTS", "2")
        .env("HANDLER_BACKOFF_MS", "100")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// The first `n` records of `topic` as JSON, exactly as sent.
fn raw_events(topic: &str, n: usize) -> Vec<serde_json::Value> {
    read_topic(topic, n, Duration::from_secs(240))
        .iter()
        .map(|m| serde_json::from_slice(rdkafka::Message::payload(m).expect("payload")).expect("JSON event"))
        .collect()
}

fn events(topic: &str, n: usize) -> Vec<ModelTraining> {
    read_topic(topic, n, Duration::from_secs(240))
        .iter()
        .map(|m| serde_json::from_slice(rdkafka::Message::payload(m).expect("payload")).expect("model-training event"))
        .collect()
}

async fn train_and_check(bin: &str, model_type: ModelType) {
    let id = unique("trainer");
    let (input, out) = (unique("t-training-data"), unique("t-model-training"));
    create_topic_with_dlq(&input, 1).await;
    create_topic_with_dlq(&out, 1).await;
    let dlq = contracts::topics::dlq_topic(&input);
    let experiment = unique("exp");
    let msg = upload_dataset(&id, 1_500).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    producer.send_json(&input, Some(&id), &msg).await.expect("send claim check");
    let _trainer = start_trainer(bin, &input, &out, &unique("g-trainer"), &experiment);

    // RUNNING, then SUCCESS with the promised fields.
    let evs = events(&out, 2);
    assert!(matches!(evs[0].status, TrainingStatus::Running { .. }), "first event is RUNNING: {:?}", evs[0]);
    let TrainingStatus::Success(s) = &evs[1].status else { panic!("second event is SUCCESS: {:?}", evs[1]) };
    assert_eq!((evs[1].model_type, evs[1].identifier.as_str()), (model_type, id.as_str()));
    assert_eq!(evs[1].config_hash, msg.config_hash);
    assert_eq!(evs[0].run_id, evs[1].run_id);
    assert!(s.test_rmse.is_finite() && s.test_rmse > 0.0 && (s.test_rmse * s.test_rmse - s.test_mse).abs() < 1e-9);
    assert!(s.train_end >= s.train_start);
    assert_eq!(s.model.targets, vec!["down".to_string(), "up".to_string()]);
    assert_eq!(s.model.features.len(), 11);
    assert!(s.baselines.last_value.rmse > 0.0);
    // Seed 002's fields, by name, in the JSON as sent, plus the model's format and location.
    let raw = raw_events(&out, 2);
    for key in [
        "model_type",
        "config_hash",
        "run_id",
        "status",
        "test_rmse",
        "test_mae",
        "test_mse",
        "train_start",
        "train_end",
        "identifier",
        "artifact_uri",
    ] {
        assert!(!raw[1][key].is_null(), "SUCCESS event lacks {key}: {}", raw[1]);
    }
    assert_eq!(raw[1]["status"], "SUCCESS");
    assert!(raw[1]["model"]["format"].is_string() && raw[1]["model"]["path"] == s.model.path.as_str(), "{}", raw[1]);

    // The MLflow run holds what the event claims, and the artifacts.
    let mlflow = MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let run = mlflow.get_run(&evs[1].run_id).await.expect("run");
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.metric("test_rmse"), Some(s.test_rmse));
    assert!(run.metric("baseline_last_value_rmse").is_some());
    assert!(run.param("input_seq_len") == Some("10"));
    assert_eq!(run.param("targets"), Some("down,up"));
    for m in ["test_mae", "test_mse", "test_rmse_down", "test_rmse_up", "test_mae_down", "test_mae_up"] {
        assert!(run.metric(m).is_some_and(f64::is_finite), "metric {m} missing from the run");
    }
    let mut files = Vec::new();
    for dir in ["", "model", "predictions"] {
        files.extend(
            mlflow.list_artifacts(&evs[1].run_id, dir).await.expect("list artifacts").into_iter().map(|a| a.path),
        );
    }
    for expected in
        [s.model.path.as_str(), "model/scaler.json", "model/model_card.md", "model/forecast.png", "success.json"]
    {
        assert!(files.iter().any(|f| f == expected), "artifact {expected} missing from {files:?}");
    }
    let model = mlflow.download_artifact(&s.artifact_uri, &s.model.path).await.expect("download model");
    if model_type == ModelType::Prophet {
        prophet_model::FittedSet::from_json(std::str::from_utf8(&model).expect("utf-8")).expect("prophet.json loads");
    } else {
        assert!(files.iter().any(|f| f == "model/loss_curve.png"), "loss curve in {files:?}");
        assert_eq!((s.model.format, s.model.path.as_str()), (ModelFormat::Onnx, "model/model.onnx"));
        assert_eq!(s.model.scaler_path, "model/scaler.json");
        for f in ["predictions/test_predictions.csv", "predictions/test_predictions.parquet"] {
            assert!(files.iter().any(|x| x == f), "{f} missing from {files:?}");
        }
        for (k, v) in [("hidden_size", "16"), ("num_layers", "1"), ("batch_size", "32"), ("epochs", "3")] {
            assert_eq!(run.param(k), Some(v), "param {k}");
        }
        // Per-epoch losses (the run keeps the last epoch's) and the fit's summary.
        for m in ["train_loss", "val_loss", "best_val_loss"] {
            assert!(run.metric(m).is_some_and(|v| v.is_finite() && v > 0.0), "metric {m}");
        }
        assert_eq!(run.metric("epochs_run"), Some(3.0));
        use tract_onnx::prelude::*;
        let net = tract_onnx::onnx()
            .model_for_read(&mut &model[..])
            .and_then(|m| m.with_input_fact(0, f32::fact([10, 1, 11]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .expect("ONNX loads in tract");
        let input = Tensor::from_shape(&[10, 1, 11], &[0.5f32; 110]).expect("input");
        let out = net.run(tvec!(input.into())).expect("tract runs");
        assert_eq!(out[0].shape(), &[1, 2], "one window -> one step x two targets");
    }

    // Redelivery: the SUCCESS is re-published from MLflow, nothing is trained.
    producer.send_json(&input, Some(&id), &msg).await.expect("redeliver");
    let evs = events(&out, 3);
    let TrainingStatus::Success(again) = &evs[2].status else { panic!("redelivery answers SUCCESS: {:?}", evs[2]) };
    assert_eq!(evs[2].run_id, evs[1].run_id, "same run, no new training");
    assert_eq!(again.test_rmse, s.test_rmse);

    // A claim check whose checksum does not match: DLQ and FAILED.
    let mut bad = msg.clone();
    bad.config_hash = sha256_hex(b"another config");
    bad.train.sha256 = "0".repeat(64);
    producer.send_json(&input, Some(&id), &bad).await.expect("send bad claim check");
    let dead = envelopes(&read_topic(&dlq, 1, Duration::from_secs(120)));
    assert!(
        dead[0].error.message.contains("checksum") || dead[0].error.code.contains("checksum"),
        "{:?}",
        dead[0].error
    );
    let evs = events(&out, 5);
    let failed = evs.iter().find(|e| matches!(e.status, TrainingStatus::Failed { .. })).expect("a FAILED event");
    assert_eq!(failed.identifier, id);
    let runs = mlflow
        .search_runs(
            &[mlflow.get_or_create_experiment(&experiment).await.expect("experiment")],
            "attributes.status = 'FINISHED'",
            &[],
            10,
        )
        .await
        .expect("search");
    assert_eq!(runs.len(), 1, "exactly one finished run for the set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gru_trains_publishes_and_is_idempotent() {
    train_and_check("train-gru", ModelType::Gru).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lstm_trains_publishes_and_is_idempotent() {
    train_and_check("train-lstm", ModelType::Lstm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prophet_trains_publishes_and_is_idempotent() {
    train_and_check("prophet", ModelType::Prophet).await;
}

/// Topics (input with its DLQ, events) and an experiment of the test's own.
struct Topics {
    input: String,
    out: String,
    dlq: String,
    experiment: String,
}

async fn topics() -> Topics {
    let (input, out) = (unique("t-training-data"), unique("t-model-training"));
    create_topic_with_dlq(&input, 1).await;
    create_topic_with_dlq(&out, 1).await;
    let dlq = contracts::topics::dlq_topic(&input);
    Topics { input, out, dlq, experiment: unique("exp") }
}

/// The FAILED events among `evs`, as (identifier, error_kind, reason).
fn failures(evs: &[ModelTraining]) -> Vec<(String, String, String)> {
    evs.iter()
        .filter_map(|e| match &e.status {
            TrainingStatus::Failed { reason, error_kind, .. } => {
                Some((e.identifier.clone(), error_kind.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Runs of `experiment` matching `filter` ("" for all).
async fn runs(experiment: &str, filter: &str) -> Vec<mlflow_client::Run> {
    let mlflow = MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let id = mlflow.get_or_create_experiment(experiment).await.expect("experiment");
    mlflow.search_runs(&[id], filter, &[], 50).await.expect("search runs")
}

/// Bad Parquet (bytes that are not Parquet, checksum right) and a test part
/// too short for one window: each ends in the DLQ with its reason, a FAILED
/// event after its RUNNING, and a FAILED MLflow run; nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gru_bad_parquet_and_too_few_rows_end_in_the_dlq() {
    let t = topics().await;
    let store = ClaimCheckStore::new(&stack().s3);
    let producer = Producer::new(&stack().kafka, "test").expect("producer");

    let bad_id = unique("bad-parquet");
    let mut bad = upload_dataset(&bad_id, 300).await;
    bad.train = store
        .put(
            "processed-data",
            &format!("{bad_id}/x/train.parquet"),
            "not parquet".into(),
            "application/vnd.apache.parquet",
        )
        .await
        .expect("put");
    producer.send_json(&t.input, Some(&bad_id), &bad).await.expect("send");
    // 15 rows: 12 train rows (2 windows), 3 test rows: no test window.
    let short_id = unique("short");
    let short = upload_dataset(&short_id, 15).await;
    producer.send_json(&t.input, Some(&short_id), &short).await.expect("send");

    let started = std::time::Instant::now();
    let _trainer = start_trainer("train-gru", &t.input, &t.out, &unique("g-trainer"), &t.experiment);
    let dead = envelopes(&read_topic(&t.dlq, 2, Duration::from_secs(120)));
    assert_eq!(dead.len(), 2, "both claim checks dead-lettered within 120 s");
    assert_eq!(dead[0].error.code, "bad_parquet", "{:?}", dead[0].error);
    assert!(dead[0].error.message.contains("train part"), "{:?}", dead[0].error);
    assert_eq!(dead[1].error.code, "too_few_rows", "{:?}", dead[1].error);
    assert!(dead[1].error.message.contains("test part: series has 3 rows"), "{:?}", dead[1].error);
    assert_eq!((dead[0].attempts, dead[1].attempts), (1, 1), "permanent errors are not retried");

    let evs = events(&t.out, 4);
    let kinds: Vec<&str> = evs
        .iter()
        .map(|e| match e.status {
            TrainingStatus::Running { .. } => "RUNNING",
            TrainingStatus::Success(_) => "SUCCESS",
            TrainingStatus::Failed { .. } => "FAILED",
        })
        .collect();
    assert_eq!(kinds, ["RUNNING", "FAILED", "RUNNING", "FAILED"]);
    let failed = failures(&evs);
    assert_eq!((failed[0].0.as_str(), failed[0].1.as_str()), (bad_id.as_str(), "bad_parquet"));
    assert_eq!((failed[1].0.as_str(), failed[1].1.as_str()), (short_id.as_str(), "too_few_rows"));
    assert!(failed[1].2.contains("one window needs"), "the reason says why: {}", failed[1].2);
    assert_eq!(evs[1].run_id, evs[0].run_id, "FAILED names the run RUNNING opened");
    let all = runs(&t.experiment, "").await;
    assert_eq!(all.len(), 2);
    assert!(
        all.iter().all(|r| r.info.status == "FAILED"),
        "{:?}",
        all.iter().map(|r| &r.info.status).collect::<Vec<_>>()
    );
    eprintln!("two failures dead-lettered {:.1} s after the trainer started", started.elapsed().as_secs_f64());
}

/// A fit whose loss turns NaN (learning rate 1e38, no clipping) ends in the
/// DLQ as `nan_loss` with a FAILED event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lstm_nan_loss_ends_in_the_dlq() {
    let t = topics().await;
    let id = unique("nan");
    let msg = upload_dataset(&id, 600).await;
    Producer::new(&stack().kafka, "test").expect("producer").send_json(&t.input, Some(&id), &msg).await.expect("send");
    let mut cmd = trainer_command("train-lstm", &t.input, &t.out, &unique("g-trainer"), &t.experiment);
    cmd.env("LEARNING_RATE", "1e38").env("CLIP_NORM", "0");
    let _trainer = StageProcess::spawn(cmd);
    let dead = envelopes(&read_topic(&t.dlq, 1, Duration::from_secs(120)));
    assert_eq!(dead.len(), 1, "dead-lettered within 120 s");
    assert_eq!(dead[0].error.code, "nan_loss", "{:?}", dead[0].error);
    assert!(dead[0].error.message.contains("NaN or infinite"), "{:?}", dead[0].error);
    let failed = failures(&events(&t.out, 2));
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].0.as_str(), failed[0].1.as_str()), (id.as_str(), "nan_loss"));
    assert_eq!(runs(&t.experiment, "attributes.status = 'FINISHED'").await.len(), 0);
}

/// MLflow unreachable (a closed port): the handler's retries run out, the
/// claim check goes to the DLQ as `mlflow_unavailable` and a FAILED event
/// goes out (Kafka still works), within seconds, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gru_with_mlflow_down_ends_in_the_dlq_without_hanging() {
    let t = topics().await;
    let id = unique("no-mlflow");
    let msg = upload_dataset(&id, 300).await;
    Producer::new(&stack().kafka, "test").expect("producer").send_json(&t.input, Some(&id), &msg).await.expect("send");
    // Port 9 (discard) is not listening on loopback: connections are refused at once.
    let mut cmd = trainer_command("train-gru", &t.input, &t.out, &unique("g-trainer"), &t.experiment);
    cmd.env("MLFLOW_TRACKING_URI", "http://127.0.0.1:9").env("TRAINER_RETRY_BUDGET_SECS", "1");
    let started = std::time::Instant::now();
    let _trainer = StageProcess::spawn(cmd);
    let dead = envelopes(&read_topic(&t.dlq, 1, Duration::from_secs(90)));
    assert_eq!(dead.len(), 1, "dead-lettered within 90 s");
    assert_eq!(dead[0].error.code, "mlflow_unavailable", "{:?}", dead[0].error);
    assert_eq!(dead[0].attempts, 2, "HANDLER_MAX_ATTEMPTS");
    let evs = events(&t.out, 1);
    let failed = failures(&evs);
    assert_eq!(failed.len(), 1, "{evs:?}");
    assert_eq!((failed[0].0.as_str(), failed[0].1.as_str()), (id.as_str(), "mlflow_unavailable"));
    assert!(failed[0].2.contains("127.0.0.1:9"), "the reason names the server: {}", failed[0].2);
    eprintln!("MLflow down: dead-lettered {:.1} s after the trainer started", started.elapsed().as_secs_f64());
}

/// A fit that outlasts `max.poll.interval.ms` (here 5 s) with a second member
/// waiting in the group: the consumer stays in the group while it trains, so
/// the claim check is trained exactly once (one RUNNING, one SUCCESS, one
/// MLflow run) and the other member never gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fit_longer_than_max_poll_interval_trains_once_with_two_members() {
    const MAX_POLL_MS: u64 = 5_000;
    let t = topics().await;
    let group = unique("g-trainer");
    let members: Vec<StageProcess> = (0..2)
        .map(|_| {
            let mut cmd = trainer_command("train-gru", &t.input, &t.out, &group, &t.experiment);
            cmd.env("KAFKA_MAX_POLL_INTERVAL_MS", MAX_POLL_MS.to_string())
                .env("KAFKA_SESSION_TIMEOUT_MS", MAX_POLL_MS.to_string())
                .env("HIDDEN_SIZE", "64")
                .env("EPOCHS", "250")
                .env("PATIENCE", "0")
                .env("SEEDS", "1");
            StageProcess::spawn(cmd)
        })
        .collect();
    // Let both join before the claim check arrives, so that the only reason
    // for a rebalance later is a member that stopped polling.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let id = unique("long-fit");
    let msg = upload_dataset(&id, 3_000).await;
    Producer::new(&stack().kafka, "test").expect("producer").send_json(&t.input, Some(&id), &msg).await.expect("send");

    let evs = events(&t.out, 2);
    assert_eq!(evs.len(), 2, "RUNNING and SUCCESS within 240 s: {evs:?}");
    let TrainingStatus::Success(s) = &evs[1].status else { panic!("second event is SUCCESS: {:?}", evs[1]) };
    let fit_ms = (s.train_end - s.train_start).num_milliseconds();
    assert!(
        fit_ms > 2 * MAX_POLL_MS as i64,
        "the fit took {fit_ms} ms, not more than twice max.poll.interval.ms ({MAX_POLL_MS}): raise EPOCHS"
    );
    // A member that had left the group would have handed the partition over
    // and the claim check would be trained again: wait well past a session
    // timeout and look for a second RUNNING.
    tokio::time::sleep(Duration::from_millis(3 * MAX_POLL_MS)).await;
    let after = read_topic(&t.out, 3, Duration::from_secs(5));
    assert_eq!(after.len(), 2, "exactly one RUNNING and one SUCCESS: {:?}", events(&t.out, after.len()));
    let all = runs(&t.experiment, "").await;
    assert_eq!(all.len(), 1, "exactly one MLflow run");
    assert_eq!(all[0].info.status, "FINISHED");
    assert!(read_topic(&t.dlq, 1, Duration::from_secs(1)).is_empty(), "nothing dead-lettered");
    eprintln!("fit of {fit_ms} ms with max.poll.interval.ms = {MAX_POLL_MS}: trained once");
    drop(members);
}

/// Prophet's own part of the contract: its settings from env logged as params, the one-step-ahead
/// equivalent next to the from-train-end metrics, a model card that names each number's protocol, the
/// interval plot, and a `prophet.json` that forecasts exactly the logged test predictions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prophet_logs_its_settings_protocols_and_a_model_that_forecasts_its_predictions() {
    let id = unique("prophet");
    let (input, out) = (unique("t-training-data"), unique("t-model-training"));
    create_topic_with_dlq(&input, 1).await;
    create_topic_with_dlq(&out, 1).await;
    let experiment = unique("exp");
    let msg = upload_dataset(&id, 1_500).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    producer.send_json(&input, Some(&id), &msg).await.expect("send claim check");
    let mut cmd = StageProcess::command("prophet");
    cmd.env("TRAINING_DATA_TOPIC", &input)
        .env("MODEL_TRAINING_TOPIC", &out)
        .env("TRAINER_GROUP_ID", unique("g-prophet"))
        .env("MLFLOW_EXPERIMENT", &experiment)
        .env("PROPHET_N_CHANGEPOINTS", "10")
        .env("PROPHET_SEASONALITY_MODE", "multiplicative")
        .env("PROPHET_COUNTRY_HOLIDAYS", "US")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _trainer = StageProcess::spawn(cmd);

    let evs = events(&out, 2);
    let TrainingStatus::Success(s) = &evs[1].status else { panic!("second event is SUCCESS: {:?}", evs[1]) };
    assert_eq!(evs[1].model_type, ModelType::Prophet);
    assert_eq!(s.protocol, contracts::EvalProtocol::FromTrainEnd);

    let mlflow = MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let run = mlflow.get_run(&evs[1].run_id).await.expect("run");
    for (param, value) in [("n_changepoints", "10"), ("seasonality_mode", "multiplicative"), ("country_holidays", "US")]
    {
        assert_eq!(run.param(param), Some(value), "param {param}");
    }
    for metric in ["one_step_equiv_rmse", "one_step_equiv_rmse_down", "test_rmse_down", "test_rmse_up", "fit_seconds"] {
        assert!(run.metric(metric).is_some_and(|v| v.is_finite() && v >= 0.0), "metric {metric}");
    }
    let files: Vec<String> =
        mlflow.list_artifacts(&evs[1].run_id, "model").await.expect("list").into_iter().map(|a| a.path).collect();
    assert!(files.iter().any(|f| f == "model/forecast_interval.png"), "interval plot in {files:?}");

    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8");
    let card = text(mlflow.download_artifact(&s.artifact_uri, "model/model_card.md").await.expect("card"));
    for needle in ["Test metrics above: `from_train_end`", "Baselines: one step ahead", "One-step-ahead equivalent"] {
        assert!(card.contains(needle), "model card lacks {needle:?}:\n{card}");
    }

    // prophet.json forecasts the logged test predictions (scaled units, inverse-scaled in the CSV).
    let model = text(mlflow.download_artifact(&s.artifact_uri, &s.model.path).await.expect("model"));
    let set = prophet_model::FittedSet::from_json(&model).expect("prophet.json loads");
    let holidays =
        set.targets[0].columns.iter().filter(|c| matches!(c.feature, prophet_model::Feature::Holiday { .. }));
    assert!(holidays.count() >= 10, "US holidays are columns of the model");
    let scaler = text(mlflow.download_artifact(&s.artifact_uri, "model/scaler.json").await.expect("scaler"));
    let scaler = Scaler::from_json(&scaler).expect("scaler loads");
    let csv = text(mlflow.download_artifact(&s.artifact_uri, "predictions/test_predictions.csv").await.expect("csv"));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("timestamp,down_predicted,down_actual,up_predicted,up_actual"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let ts: Vec<i64> =
        rows.iter().map(|r| chrono::DateTime::parse_from_rfc3339(r[0]).expect("RFC 3339").timestamp_millis()).collect();
    let forecasts = set.predict(&ts).expect("forecast");
    for (j, (target, column)) in [("down", 1), ("up", 3)].into_iter().enumerate() {
        assert_eq!(forecasts[j].name, target);
        for (row, yhat) in rows.iter().zip(&forecasts[j].yhat) {
            let logged: f64 = row[column].parse().expect("a number");
            // The model's scaler inverts and applies its forecast floor (0: targets never negative in
            // training); the logged forecasts went through f32 scaled units, so allow an f32 step of the scale.
            let ours = scaler.unscale_forecast(target, *yhat as f32 as f64).expect("target in scaler");
            let step = scaler.columns.iter().find(|c| c.name == target).map_or(1.0, |c| c.scale) * 1e-6;
            assert!(
                (ours - logged).abs() <= 1e-9 * logged.abs().max(1.0) + step,
                "{target} at {}: {ours} vs {logged}",
                row[0]
            );
        }
    }
}
