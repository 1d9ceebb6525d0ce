//! The trainer stages against the real stack, run as the real binaries:
//! a training-data claim check yields RUNNING then SUCCESS events, an MLflow
//! run with params, metrics and artifacts, and a loadable model; a redelivered
//! claim check trains nothing new; a bad claim check ends in the DLQ with a
//! FAILED event.

use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use claim_check::{ClaimCheckStore, sha256_hex};
use contracts::{ModelTraining, ModelType, TrainingData, TrainingStatus, V1};
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
fn start_trainer(bin: &str, input: &str, events: &str, dlq: &str, group: &str, experiment: &str) -> StageProcess {
    let mut cmd = StageProcess::command(bin);
    cmd.env("TRAINING_DATA_TOPIC", input)
        .env("MODEL_TRAINING_TOPIC", events)
        .env("DLQ_MODEL_TRAINING", dlq)
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
    StageProcess::spawn(cmd)
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
    let _trainer = start_trainer(bin, &input, &out, &dlq, &unique("g-trainer"), &experiment);

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

    // The MLflow run holds what the event claims, and the artifacts.
    let mlflow = MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let run = mlflow.get_run(&evs[1].run_id).await.expect("run");
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.metric("test_rmse"), Some(s.test_rmse));
    assert!(run.metric("baseline_last_value_rmse").is_some());
    assert!(run.param("input_seq_len") == Some("10"));
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
