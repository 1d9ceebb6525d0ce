use super::*;
use contracts::V1;
use contracts::messages::{ModelArtifact, ModelFormat};

fn selected(sequence: u64, run: &str) -> ModelSelected {
    ModelSelected {
        v: V1,
        identifier: "site-1".into(),
        model_uri: format!("runs:/{run}/model/model.onnx"),
        model_type: ModelType::Gru,
        run_id: run.into(),
        config_hash: "c".repeat(64),
        composite_score: 0.1,
        test_rmse: 0.1,
        test_mae: 0.1,
        test_mse: 0.01,
        promotion_time: Utc::now(),
        artifact_uri: format!("mlflow-artifacts:/1/{run}/artifacts/"),
        model: ModelArtifact {
            format: ModelFormat::Onnx,
            path: "model/model.onnx".into(),
            scaler_path: "model/scaler.json".into(),
            input_len: 24,
            output_len: 1,
            features: vec!["a".into()],
            targets: vec!["a".into()],
        },
        model_sha256: Some("a".repeat(64)),
        missing: vec![],
        decision_object: String::new(),
        sequence,
    }
}

fn record(sequence: u64, run: &str) -> Record {
    Record {
        action: Action::Eval,
        reason: String::new(),
        by: "eval".into(),
        decided_at: Utc::now(),
        replaced: None,
        promotion: selected(sequence, run),
    }
}

#[test]
fn history_keys_sort_by_sequence() {
    let mut keys = vec![history_key("s", 10), history_key("s", 9), history_key("s", 100)];
    keys.sort();
    assert_eq!(keys, vec![history_key("s", 9), history_key("s", 10), history_key("s", 100)]);
    assert!(history_key("s", 1).starts_with(&history_prefix("s")));
    assert!(contracts::promotion::identifier_of_current_key(&history_key("s", 1)).is_none());
    assert!(is_registry_pending_key(&registry_pending_key("s", 3)));
    assert!(!is_registry_pending_key(&history_key("s", 3)));
    assert!(!is_registry_pending_key("s/0abc/decision.json"));
    assert!(contracts::promotion::identifier_of_current_key(&registry_pending_key("s", 1)).is_none());
}

#[test]
fn the_model_source_is_the_model_folder_of_the_run() {
    assert_eq!(model_source(&selected(1, "r")), "mlflow-artifacts:/1/r/artifacts/model");
    let mut flat = selected(1, "r");
    flat.model.path = "model.json".into();
    assert_eq!(model_source(&flat), "mlflow-artifacts:/1/r/artifacts");
}

#[test]
fn rollback_goes_to_the_latest_earlier_promotion_of_another_run() {
    let history = vec![record(1, "a"), record(2, "b"), record(3, "b"), record(4, "c")];
    assert_eq!(rollback_target(&history, &selected(4, "c")).map(|r| r.promotion.sequence), Some(3));
    // Rolled back to a (sequence 5): the next rollback goes to c, the one before it.
    let mut h = history.clone();
    h.push(record(5, "a"));
    assert_eq!(rollback_target(&h, &selected(5, "a")).map(|r| r.promotion.run_id.as_str()), Some("c"));
    assert!(rollback_target(&history[..1], &selected(1, "a")).is_none(), "nothing before the first");
    assert!(rollback_target(&[record(1, "a"), record(2, "a")], &selected(2, "a")).is_none(), "same run only");
}

#[test]
fn history_reads_records_and_evals_decisions_only() {
    let hash = "c".repeat(64);
    assert_eq!(classify("s", &history_key("s", 4)), Some(HistoryKey::Record));
    assert_eq!(classify("s", &format!("s/{hash}/decision.json")), Some(HistoryKey::Decision));
    assert_eq!(classify("s", &format!("s/{hash}/decision-3.json")), Some(HistoryKey::Decision));
    for other in [
        format!("s/{hash}/state.json"),
        format!("s/{hash}/decision-x.json"),
        "s/current.json".to_string(),
        "s/sequence.json".to_string(),
        registry_pending_key("s", 1),
        history_key("s-2", 1),
    ] {
        assert_eq!(classify("s", &other), None, "{other}");
    }
}

#[test]
fn registered_models_are_named_per_dataset() {
    assert_eq!(registered_model_name("site-1"), "flts-site-1");
}
