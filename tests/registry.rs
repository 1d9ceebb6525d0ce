//! Issue 20, Model Registry and operator promotions, on the real stack: eval's
//! promotion registers a version of `flts-<identifier>` with alias `champion`
//! (read back with MLflow's REST API); `flts promote` and `flts rollback` take
//! the same path (decision record, pointer, model-selected, alias, a new
//! higher sequence) and a running inference serves the result within seconds.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use claim_check::ClaimCheckStore;
use contracts::promotion::run_tags;
use contracts::*;
use flts::promote::{PromoteArgs, PromotionPlace, RollbackArgs};
use flts_tests::*;
use mlflow_client::{KeyValue, Metric, RunStatus};
use model_runtime::synthetic::{Cell, SyntheticNet};
use serde_json::Value;

use crate::eval_world;
use crate::inference_world;

const LONG: Duration = Duration::from_secs(60);
/// How soon a running inference must serve an operator's promotion.
const FOLLOW: Duration = Duration::from_secs(15);

/// A finished run as a trainer leaves it: `net` as the model, the trainer's
/// tags, metrics and digest, and the SUCCESS payload as `success.json`.
async fn trained_run(w: &inference_world::World, model_type: ModelType, net: &SyntheticNet, rmse: f64) -> String {
    let (run_id, uri) = w.upload(model_type, net).await;
    let onnx = net.to_onnx();
    let digest = claim_check::sha256_hex(&onnx);
    let (mae, mse) = (rmse * 0.8, rmse * rmse);
    let metrics = [Metric::now("test_rmse", rmse, 0), Metric::now("test_mae", mae, 0), Metric::now("test_mse", mse, 0)];
    let tags = [
        KeyValue::new(run_tags::IDENTIFIER, &w.identifier),
        KeyValue::new(run_tags::CONFIG_HASH, &w.config_hash),
        KeyValue::new(run_tags::MODEL_TYPE, model_type.as_str()),
        KeyValue::new(run_tags::MODEL_SHA256, &digest),
    ];
    w.mlflow.log_batch(&run_id, &metrics, &[], &tags).await.expect("log run");
    let m = |r: f64| Metrics { mse: r * r, rmse: r, mae: r * 0.8 };
    let at = |h| Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).single().expect("valid");
    let ev = ModelTraining {
        v: V1,
        identifier: w.identifier.clone(),
        model_type,
        config_hash: w.config_hash.clone(),
        run_id: run_id.clone(),
        status: TrainingStatus::Success(Box::new(TrainingSuccess {
            test_rmse: rmse,
            test_mae: mae,
            test_mse: mse,
            train_start: at(1),
            train_end: at(2),
            artifact_uri: uri.clone(),
            model: w.artifact(ModelFormat::Onnx),
            model_sha256: Some(digest),
            protocol: EvalProtocol::OneStepAhead,
            baselines: Baselines { last_value: m(1.0), seasonal_naive: None },
            validation: None,
        })),
    };
    let success = serde_json::to_vec(&ev).expect("json");
    w.mlflow.upload_artifact(&uri, run_tags::SUCCESS_ARTIFACT, success).await.expect("success.json");
    w.mlflow.update_run(&run_id, RunStatus::Finished).await.expect("finish run");
    run_id
}

fn place(w: &inference_world::World) -> PromotionPlace {
    PromotionPlace {
        promotion_bucket: "model-promotion".into(),
        experiment: "flts-tests-inference".into(),
        model_selected_topic: w.selected_topic.clone(),
        s3: stack().s3.clone(),
        mlflow: stack().mlflow.clone(),
    }
}

async fn flts_promote(w: &inference_world::World, run_id: &str, reason: &str) -> anyhow::Result<()> {
    let args =
        PromoteArgs { identifier: w.identifier.clone(), run_id: run_id.into(), reason: reason.into(), place: place(w) };
    flts::promote::promote(&stack().kafka, &args).await
}

async fn flts_rollback(w: &inference_world::World) -> anyhow::Result<()> {
    let args = RollbackArgs { identifier: w.identifier.clone(), reason: "bad forecasts".into(), place: place(w) };
    flts::promote::rollback(&stack().kafka, &args).await
}

/// MLflow's own REST answer for `endpoint` (no client code of ours).
async fn rest(endpoint: &str, query: &[(&str, &str)]) -> Value {
    let url = format!("{}/api/2.0/mlflow/{endpoint}", stack().mlflow.tracking_uri.trim_end_matches('/'));
    let resp = reqwest::Client::new().get(url).query(query).send().await.expect("MLflow answers");
    resp.json().await.expect("json")
}

/// (version, run_id, flts.sequence) of the version alias `champion` of `flts-<identifier>` names.
async fn champion(identifier: &str) -> (String, String, String) {
    let name = format!("flts-{identifier}");
    let body = rest("registered-models/alias", &[("name", &name), ("alias", "champion")]).await;
    let v = &body["model_version"];
    assert!(v["aliases"].as_array().is_some_and(|a| a.iter().any(|x| x == "champion")), "{body}");
    let tag = |k: &str| {
        v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["key"] == k)
            .map(|t| t["value"].as_str().unwrap().to_string())
    };
    (
        v["version"].as_str().unwrap_or_default().into(),
        v["run_id"].as_str().unwrap_or_default().into(),
        tag("flts.sequence").unwrap_or_default(),
    )
}

async fn version_count(identifier: &str) -> usize {
    let filter = format!("name = 'flts-{identifier}'");
    let body = rest("model-versions/search", &[("filter", &filter)]).await;
    body["model_versions"].as_array().map_or(0, Vec::len)
}

async fn pointer(identifier: &str) -> ModelSelected {
    let store = ClaimCheckStore::new(&stack().s3);
    let bytes = store.get_object("model-promotion", &promotion::current_key(identifier)).await.expect("pointer");
    serde_json::from_slice(&bytes).expect("pointer json")
}

/// Eval's promotion registers the winner as a version of `flts-<identifier>`
/// with its tags and the alias `champion`; a replay of the same events makes
/// no second version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_promotion_registers_a_champion_version_once() {
    let w = eval_world::World::new("registry").await;
    let events = vec![w.success(ModelType::Gru, 0.30, 1.0).await, w.success(ModelType::Lstm, 0.20, 1.0).await];
    let (cancel, task) = eval_world::start(w.cli("GRU,LSTM", 3600));
    for ev in &events {
        w.send(ev).await;
    }
    let d = w.wait_decision(LONG).await;
    let p = d.promotion.expect("a promotion");
    assert_eq!(p.run_id, events[1].run_id);
    let deadline = Instant::now() + LONG;
    while version_count(&w.identifier).await == 0 {
        assert!(Instant::now() < deadline, "no registered version");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (version, run, sequence) = champion(&w.identifier).await;
    assert_eq!((run.as_str(), sequence.as_str()), (p.run_id.as_str(), p.sequence.to_string().as_str()));
    let name = format!("flts-{}", w.identifier);
    let got = rest("model-versions/get", &[("name", &name), ("version", &version)]).await;
    let v = &got["model_version"];
    assert_eq!(v["source"], format!("{}/model", p.artifact_uri), "{got}");
    let tags: Vec<(String, String)> = v["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| (t["key"].as_str().unwrap().into(), t["value"].as_str().unwrap().into()))
        .collect();
    for (k, want) in [
        ("flts.model_type", "LSTM".to_string()),
        ("flts.config_hash", w.config_hash.clone()),
        ("flts.composite_score", p.composite_score.to_string()),
    ] {
        assert!(tags.contains(&(k.to_string(), want.clone())), "{k} = {want} not in {tags:?}");
    }
    // Redelivered events change nothing: still one version.
    for ev in &events {
        w.send(ev).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(version_count(&w.identifier).await, 1);
    cancel.cancel();
    task.await.expect("join").expect("eval ran cleanly");
}

/// `flts promote` of a chosen run and `flts rollback` move the alias, write a
/// decision record and a higher sequence, and a running inference serves the
/// model they name within seconds; runs that are not the dataset's are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_and_rollback_move_the_champion_and_inference_follows() {
    let w = inference_world::World::new("registry").await;
    let run_a = trained_run(&w, ModelType::Gru, &inference_world::synthetic(Cell::Gru, 71), 0.2).await;
    let run_b = trained_run(&w, ModelType::Lstm, &inference_world::synthetic(Cell::Lstm, 72), 0.3).await;

    flts_promote(&w, &run_a, "first model").await.expect("promote A");
    let first = pointer(&w.identifier).await;
    assert_eq!(first.run_id, run_a);
    assert_eq!(champion(&w.identifier).await.1, run_a);

    let port = inference_world::free_port();
    let (cancel, task) = inference_world::start(w.cli(port, false));
    inference_world::wait_served(port, Some(&format!("GRU/{run_a}")), LONG).await;

    let t = Instant::now();
    flts_promote(&w, &run_b, "operator prefers the LSTM").await.expect("promote B");
    inference_world::wait_served(port, Some(&format!("LSTM/{run_b}")), FOLLOW).await;
    let promoted_in = t.elapsed();
    let second = pointer(&w.identifier).await;
    assert!(second.sequence > first.sequence);
    assert_eq!(champion(&w.identifier).await.1, run_b);

    let t = Instant::now();
    flts_rollback(&w).await.expect("rollback");
    let body = inference_world::wait_served(port, Some(&format!("GRU/{run_a}")), FOLLOW).await;
    let rolled_back_in = t.elapsed();
    let third = pointer(&w.identifier).await;
    assert_eq!(third.run_id, run_a);
    assert!(third.sequence > second.sequence, "a rollback is a new, higher promotion");
    assert_eq!(body["models"][0]["sequence"], third.sequence, "{body}");
    let (_, run, sequence) = champion(&w.identifier).await;
    assert_eq!((run, sequence), (run_a.clone(), third.sequence.to_string()));
    // The decision record of the rollback.
    let store = ClaimCheckStore::new(&stack().s3);
    assert_eq!(third.decision_object, flts_promotion::history_key(&w.identifier, third.sequence));
    let record: flts_promotion::Record =
        serde_json::from_slice(&store.get_object("model-promotion", &third.decision_object).await.expect("record"))
            .expect("record json");
    assert_eq!(record.action, flts_promotion::Action::Rollback);
    assert_eq!(record.reason, "bad forecasts");
    assert_eq!(record.replaced.map(|r| (r.run_id, r.sequence)), Some((run_b.clone(), second.sequence)));
    println!("inference served the promotion in {promoted_in:?}, the rollback in {rolled_back_in:?}");

    // Registration again (a redelivery, eval's recover) adds no version.
    let versions = version_count(&w.identifier).await;
    assert_eq!(versions, 3, "one version per promotion");
    let promoter = flts_promotion::Promoter::new(
        store.clone(),
        "model-promotion",
        w.mlflow.clone(),
        kafka_utils::Producer::new(&stack().kafka, "test").expect("producer"),
        w.selected_topic.clone(),
    );
    promoter.ensure_registered(&second).await.expect("registered");
    assert_eq!(version_count(&w.identifier).await, versions);
    assert_eq!(champion(&w.identifier).await.1, run_a, "an older promotion registered again does not take the alias");

    // A run of another dataset, or one that is not finished, is refused and changes nothing.
    let other = inference_world::World::new("registry-other").await;
    let foreign = trained_run(&other, ModelType::Gru, &inference_world::synthetic(Cell::Gru, 73), 0.1).await;
    let err = flts_promote(&w, &foreign, "wrong dataset").await.expect_err("refused");
    assert!(err.to_string().contains(run_tags::IDENTIFIER), "{err:#}");
    let (running, _) = w.upload(ModelType::Gru, &inference_world::synthetic(Cell::Gru, 74)).await;
    assert!(flts_promote(&w, &running, "unfinished").await.is_err());
    assert_eq!(pointer(&w.identifier).await.sequence, third.sequence);
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// MLflow down at promotion time: the registration fails after its retries,
/// is counted and remembered as registry-pending, and eval's recover at its
/// next start registers it and clears the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_that_failed_is_completed_by_evals_next_start() {
    let w = eval_world::World::new("registry-down").await;
    let ev = w.success(ModelType::Gru, 0.2, 1.0).await;
    let TrainingStatus::Success(s) = &ev.status else { unreachable!() };
    let p = flts_promotion::selection(
        &ev.run_id,
        (&w.identifier, &w.config_hash, ev.model_type),
        s,
        0.2,
        1,
        flts_promotion::history_key(&w.identifier, 1),
    );
    let store = ClaimCheckStore::new(&stack().s3);
    let down = mlflow_client::MlflowClient::new(&mlflow_client::MlflowArgs {
        tracking_uri: format!("http://127.0.0.1:{}", inference_world::free_port()),
        timeout_secs: 2,
    })
    .expect("client");
    let promoter = flts_promotion::Promoter::new(
        store.clone(),
        "model-promotion",
        down,
        kafka_utils::Producer::new(&stack().kafka, "test").expect("producer"),
        w.selected.clone(),
    );
    let failures = flts_promotion::REGISTRY_FAILURES.with_label_values(&["register"]).get();
    assert!(promoter.ensure_registered(&p).await.is_none());
    assert_eq!(flts_promotion::REGISTRY_FAILURES.with_label_values(&["register"]).get(), failures + 1);
    let mark = flts_promotion::registry_pending_key(&w.identifier, 1);
    assert!(store.head("model-promotion", &mark).await.expect("head").is_some(), "the failure is remembered");
    assert_eq!(version_count(&w.identifier).await, 0);

    let (cancel, task) = eval_world::start(w.cli("GRU,LSTM", 3600));
    let deadline = Instant::now() + LONG;
    while version_count(&w.identifier).await == 0 {
        assert!(Instant::now() < deadline, "eval's recover did not register the pending promotion");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, run, sequence) = champion(&w.identifier).await;
    assert_eq!((run, sequence), (p.run_id.clone(), "1".to_string()));
    while store.head("model-promotion", &mark).await.expect("head").is_some() {
        assert!(Instant::now() < deadline, "the registry-pending mark was not cleared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cancel.cancel();
    task.await.expect("join").expect("eval ran cleanly");
}
