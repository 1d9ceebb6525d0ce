//! Contract tests: the committed JSON Schemas equal the ones generated from the
//! Rust types, every message round-trips, and bad payloads fail with errors
//! that name the field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use contracts::*;

fn at(h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).single().expect("valid time")
}

fn claim(object: &str) -> ClaimCheck {
    ClaimCheck { bucket: "processed-data".into(), object: object.into(), size: 1234, sha256: "ab".repeat(32) }
}

fn metrics(x: f64) -> Metrics {
    Metrics { mse: x * x, rmse: x, mae: x * 0.8 }
}

fn artifact() -> ModelArtifact {
    ModelArtifact {
        format: ModelFormat::Onnx,
        path: "model/model.onnx".into(),
        scaler_path: "model/scaler.json".into(),
        input_len: 10,
        output_len: 1,
        features: vec!["down".into(), "up".into()],
        targets: vec!["down".into()],
    }
}

fn success() -> ModelTraining {
    ModelTraining {
        v: V1,
        identifier: "site-1".into(),
        model_type: ModelType::Gru,
        config_hash: "c".repeat(64),
        run_id: "r1".into(),
        status: TrainingStatus::Success(Box::new(TrainingSuccess {
            test_rmse: 0.1,
            test_mae: 0.08,
            test_mse: 0.01,
            train_start: at(1),
            train_end: at(2),
            artifact_uri: "mlflow-artifacts:/1/r1/artifacts".into(),
            model: artifact(),
            model_sha256: Some("d".repeat(64)),
            protocol: EvalProtocol::OneStepAhead,
            baselines: Baselines { last_value: metrics(0.2), seasonal_naive: Some(metrics(0.3)) },
            validation: None,
        })),
    }
}

/// One sample of every message, as JSON values.
fn samples() -> Vec<(&'static str, serde_json::Value)> {
    let td = TrainingData {
        v: V1,
        identifier: "site-1".into(),
        config_hash: "c".repeat(64),
        train: claim("site-1/c/train.parquet"),
        test: claim("site-1/c/test.parquet"),
        scaler: claim("site-1/c/scaler.json"),
        created_at: at(0),
    };
    let id = InferenceData {
        v: V1,
        identifier: "site-1".into(),
        config_hash: "c".repeat(64),
        test: claim("site-1/c/test.parquet"),
        scaler: claim("site-1/c/scaler.json"),
        created_at: at(0),
    };
    let running = ModelTraining { status: TrainingStatus::Running { train_start: at(1) }, ..success() };
    let failed = ModelTraining {
        status: TrainingStatus::Failed {
            reason: "loss became NaN".into(),
            error_kind: "nan_loss".into(),
            failed_at: at(2),
        },
        ..success()
    };
    let sel = ModelSelected {
        v: V1,
        identifier: "site-1".into(),
        model_uri: "runs:/r1/model/model.onnx".into(),
        model_type: ModelType::Lstm,
        run_id: "r1".into(),
        config_hash: "c".repeat(64),
        composite_score: 0.08,
        test_rmse: 0.1,
        test_mae: 0.08,
        test_mse: 0.01,
        promotion_time: at(3),
        artifact_uri: "mlflow-artifacts:/1/r1/artifacts".into(),
        model: artifact(),
        model_sha256: Some("d".repeat(64)),
        missing: vec![ModelType::Prophet],
        decision_object: "site-1/c/decision.json".into(),
        sequence: 3,
    };
    let pe = PerformanceEval {
        v: V1,
        identifier: "site-1".into(),
        config_hash: "c".repeat(64),
        model_type: ModelType::Gru,
        run_id: "r1".into(),
        windows: 990,
        metrics: metrics(0.1),
        per_target: BTreeMap::from([("down".to_string(), metrics(1e6))]),
        results: claim("site-1/20261122/results.jsonl"),
        plot: None,
        source: claim("site-1/c/test.parquet"),
        created_at: at(4),
    };
    let pr = PreprocessRequest {
        v: V1,
        identifier: "site-1".into(),
        input: "s3://processed-data/raw/site-1.csv".into(),
        test_input: None,
        config: Some(serde_json::json!({"scaling": "minmax"})),
        force: false,
        requested_at: at(0),
    };
    let dlq = DlqEnvelope {
        v: V1,
        identifier: Some("site-1".into()),
        original_topic: "training-data".into(),
        partition: 1,
        offset: 7,
        key_base64: Some("c2l0ZS0x".into()),
        payload_base64: "e30=".into(),
        payload_truncated_from: None,
        payload_sha256: None,
        key_truncated_from: None,
        key_sha256: None,
        error: DlqError { kind: FailureKind::Decode, code: "decode".into(), message: "missing field `v`".into() },
        attempts: 1,
        service: "train-gru".into(),
        failed_at: at(5),
    };
    let j = |v: &dyn erased::Ser| v.to_value();
    vec![
        ("training-data", j(&td)),
        ("inference-data", j(&id)),
        ("model-training", j(&success())),
        ("model-training", j(&running)),
        ("model-training", j(&failed)),
        ("model-selected", j(&sel)),
        ("performance-eval", j(&pe)),
        ("preprocess-requests", j(&pr)),
        ("dlq-envelope", j(&dlq)),
    ]
}

mod erased {
    pub trait Ser {
        fn to_value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_value(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("serializable")
        }
    }
}

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn schemas_match_rust_types() {
    let update = std::env::var("UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
    for (name, schema) in schema::all() {
        let path = schema_dir().join(format!("{name}.schema.json"));
        let generated = serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n";
        if update {
            std::fs::write(&path, &generated).expect("write schema");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            generated,
            "{} drifted from the Rust types: run `UPDATE_SCHEMAS=1 cargo test -p contracts`",
            path.display()
        );
    }
}

#[test]
fn every_sample_round_trips_and_has_v_and_identifier() {
    for (topic, value) in samples() {
        assert_eq!(value["v"], 1, "{topic}: v");
        assert!(value.get("identifier").is_some(), "{topic}: identifier");
        let bytes = serde_json::to_vec(&value).expect("encode");
        let again = match topic {
            "training-data" => serde_json::to_value(decode::<TrainingData>(&bytes).expect(topic)),
            "inference-data" => serde_json::to_value(decode::<InferenceData>(&bytes).expect(topic)),
            "model-training" => serde_json::to_value(decode::<ModelTraining>(&bytes).expect(topic)),
            "model-selected" => serde_json::to_value(decode::<ModelSelected>(&bytes).expect(topic)),
            "performance-eval" => serde_json::to_value(decode::<PerformanceEval>(&bytes).expect(topic)),
            "preprocess-requests" => serde_json::to_value(decode::<PreprocessRequest>(&bytes).expect(topic)),
            "dlq-envelope" => serde_json::to_value(decode::<DlqEnvelope>(&bytes).expect(topic)),
            other => panic!("no decoder for {other}"),
        }
        .expect("re-encode");
        assert_eq!(again, value, "{topic} changed in a round trip");
    }
}

#[test]
fn training_data_keeps_seed_002_field_names() {
    let (_, td) = &samples()[0];
    for field in ["bucket", "object", "size", "v", "identifier"] {
        assert!(td.get(field).is_some(), "seed 002 field `{field}` missing: {td}");
    }
    assert_eq!(success().status_name(), "SUCCESS");
}

trait StatusName {
    fn status_name(&self) -> String;
}
impl StatusName for ModelTraining {
    fn status_name(&self) -> String {
        serde_json::to_value(self).expect("encode")["status"].as_str().unwrap_or_default().to_string()
    }
}

#[test]
fn unknown_fields_are_tolerated() {
    let mut v = serde_json::to_value(success()).expect("encode");
    v["added_by_a_newer_producer"] = serde_json::json!({"x": 1});
    let decoded: ModelTraining = decode(&serde_json::to_vec(&v).expect("encode")).expect("extra fields are fine");
    assert_eq!(decoded, success());
}

#[test]
fn missing_field_is_named() {
    let mut v = serde_json::to_value(&samples()[0].1).expect("value");
    v["test"].as_object_mut().expect("object").remove("sha256");
    let err = decode::<TrainingData>(&serde_json::to_vec(&v).expect("encode")).expect_err("sha256 is required");
    assert!(err.to_string().contains("sha256"), "error should name the field: {err}");
}

#[test]
fn wrong_version_is_rejected_with_both_versions() {
    let mut v = serde_json::to_value(&samples()[0].1).expect("value");
    v["v"] = serde_json::json!(2);
    let err = decode::<TrainingData>(&serde_json::to_vec(&v).expect("encode")).expect_err("v2 is unsupported");
    let text = err.to_string();
    assert!(text.contains("`v` = 2") && text.contains("v1"), "{text}");
}

#[test]
fn wrong_type_names_the_path() {
    let mut v = serde_json::to_value(&samples()[0].1).expect("value");
    v["scaler"]["size"] = serde_json::json!("big");
    let err = decode::<TrainingData>(&serde_json::to_vec(&v).expect("encode")).expect_err("size must be a number");
    assert!(err.to_string().contains("scaler.size"), "{err}");
}

#[test]
fn unknown_status_and_garbage_are_decode_errors() {
    let mut v = serde_json::to_value(success()).expect("value");
    v["status"] = serde_json::json!("EXPLODED");
    assert!(decode::<ModelTraining>(&serde_json::to_vec(&v).expect("encode")).is_err());
    assert!(matches!(decode::<ModelTraining>(b""), Err(DecodeError::Empty)));
    assert!(matches!(decode::<ModelTraining>(b"\xff\xfe"), Err(DecodeError::NotUtf8 { .. })));
    assert!(matches!(decode::<ModelTraining>(b"{not json"), Err(DecodeError::Invalid { .. })));
}

#[test]
fn dlq_topic_naming() {
    assert_eq!(topics::dlq_topic("training-data"), "DLQ-training-data");
    let all = contracts::topology::all_topics();
    assert!(all.contains(&"DLQ-model-selected".to_string()));
    assert!(all.contains(&"DLQ-preprocess-requests".to_string()));
    assert!(!all.contains(&"DLQ-preprocess".to_string()), "DLQs are named after a consumed topic, not a stage");
    assert_eq!(all.len(), 2 * contracts::topology::pipeline_topics().len());
}
