//! Issue 17, the promotion trust chain, against the real stack: forged or
//! hostile model-training and model-selected records, strings that reach
//! MLflow searches, oversized promotions and replaced model files. Each test
//! ends with the pipeline still doing the right thing for honest input.

use std::time::Duration;

use bytes::Bytes;
use claim_check::ClaimCheckStore;
use contracts::topics::dlq_topic;
use contracts::*;
use flts_tests::*;
use mlflow_client::{KeyValue, MlflowClient};
use model_runtime::synthetic::Cell;
use serde_json::json;

use crate::eval_world;
use crate::inference_world;

use eval::state::Trigger;

const SHORT: Duration = Duration::from_secs(4);
const LONG: Duration = Duration::from_secs(60);

/// Dead letters of `topic`'s DLQ, at least `n`, within a minute.
fn dlq(topic: &str, n: usize) -> Vec<DlqEnvelope> {
    envelopes(&read_topic(&dlq_topic(topic), n, LONG))
}

// ---------------------------------------------------------------------------
// Class 3: eval believes what a model-training event says.
// ---------------------------------------------------------------------------

/// Seen: a forged SUCCESS copying another dataset's run, with an artifact_uri
/// in another bucket, was promoted. Also: the right set's own run with a
/// rewritten artifact_uri or model, a run of another experiment with the
/// right tags, and a SUCCESS for a run that did not finish. Each is
/// dead-lettered alone with its reason; the honest SUCCESS after them is
/// promoted, from what its run records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_successes_are_dead_lettered_and_the_honest_one_is_promoted() {
    let victim = eval_world::World::new("forged").await;
    let other = victim.sibling("forged-other");
    let (cancel, task) = eval_world::start(victim.cli("GRU", 3600));

    // 1. Another dataset's real run, re-labelled as the victim's, artifacts elsewhere.
    let theirs = other.success(ModelType::Gru, 0.01, 1.0).await;
    let mut copied = ModelTraining {
        identifier: victim.identifier.clone(),
        config_hash: victim.config_hash.clone(),
        ..theirs.clone()
    };
    if let TrainingStatus::Success(s) = &mut copied.status {
        s.artifact_uri = "s3://attacker-bucket/1/abc/artifacts".into();
    }
    victim.send(&copied).await;

    // 2. The victim's own run, but the event points the artifacts elsewhere.
    let honest = victim.success(ModelType::Gru, 0.2, 1.0).await;
    let mut moved = honest.clone();
    if let TrainingStatus::Success(s) = &mut moved.status {
        s.artifact_uri = "s3://attacker-bucket/1/abc/artifacts".into();
    }
    victim.send(&moved).await;

    // 3. The victim's own run, but a bigger input_len than was trained.
    let mut resized = honest.clone();
    if let TrainingStatus::Success(s) = &mut resized.status {
        s.model.input_len = 4_294_967_295;
    }
    victim.send(&resized).await;

    // 4. A run with the victim's tags in an experiment the trainers do not use.
    let stray_exp = victim.mlflow.get_or_create_experiment(&unique("flts-tests-stray")).await.expect("experiment");
    let stray = victim.run(&stray_exp, ModelType::Gru).await;
    victim.send(&ModelTraining { run_id: stray.info.run_id.clone(), ..honest.clone() }).await;

    // 5. A SUCCESS for a run that is still running.
    let running = victim.run(&victim.experiment, ModelType::Gru).await;
    victim.send(&ModelTraining { run_id: running.info.run_id.clone(), ..honest.clone() }).await;

    let dead = victim.dead_letters(5, LONG);
    let codes: Vec<&str> = dead.iter().map(|e| e.error.code.as_str()).collect();
    assert_eq!(
        codes,
        ["run_mismatch", "artifact_mismatch", "model_mismatch", "run_not_in_experiment", "run_not_finished"],
        "{dead:#?}"
    );
    assert!(
        dead[0].error.message.contains(&other.identifier),
        "names the run's real dataset: {}",
        dead[0].error.message
    );
    assert!(victim.decision().await.is_none(), "no forged event joined the set");
    assert!(victim.pointer().await.is_none(), "nothing promoted");

    // The honest SUCCESS is promoted, with its run's artifact root and digest.
    victim.send(&honest).await;
    let d = victim.wait_decision(LONG).await;
    let p = d.promotion.expect("promoted");
    assert_eq!(p.run_id, honest.run_id);
    let TrainingStatus::Success(s) = &honest.status else { unreachable!() };
    assert_eq!(p.artifact_uri, s.artifact_uri);
    assert_eq!(p.model_sha256, s.model_sha256);
    assert_eq!(p.sequence, 1, "the first promotion of the dataset");
    assert_eq!(victim.pointer().await.expect("pointer").run_id, honest.run_id);
    assert_eq!(victim.dead_letters(6, SHORT).len(), 5, "the honest event is not dead-lettered");
    eval_world::stop(cancel, task).await;
}

/// Seen: a SUCCESS naming a run that does not exist made eval dead-letter an
/// innocent FAILED event of the same set. Now the bad event is dead-lettered
/// alone when it arrives; the FAILED counts, and the set is decided by the
/// honest events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_naming_a_missing_run_is_dead_lettered_alone() {
    let w = eval_world::World::new("missing-run").await;
    let (cancel, task) = eval_world::start(w.cli("GRU,LSTM", 3600));
    let honest_gru = w.success(ModelType::Gru, 0.2, 1.0).await;
    let ghost = ModelTraining { run_id: "0123456789abcdef0123456789abcdef".into(), ..honest_gru.clone() };
    w.send(&ghost).await;
    let lstm_failed = w.failed(ModelType::Lstm).await;
    w.send(&lstm_failed).await;
    w.send(&honest_gru).await;
    let d = w.wait_decision(LONG).await;
    assert_eq!(d.trigger, Trigger::Complete);
    assert_eq!(d.promotion.expect("GRU promoted").run_id, honest_gru.run_id);
    let lstm = d.outcome.candidates.iter().find(|c| c.model_type == ModelType::Lstm).expect("LSTM recorded");
    assert_eq!(lstm.status, "FAILED", "the FAILED event counted");
    let dead = w.dead_letters(2, SHORT);
    assert_eq!(dead.len(), 1, "only the ghost is dead-lettered: {dead:#?}");
    assert_eq!(dead[0].error.code, "run_not_found");
    let (_, payload) = kafka_utils::dlq::original_bytes(&dead[0]).expect("base64");
    let original: ModelTraining = decode(&payload).expect("the ghost event");
    assert_eq!(original.run_id, ghost.run_id);
    eval_world::stop(cancel, task).await;
}

/// Seen: a training-data record with no `v` naming another dataset made the
/// trainers emit FAILED events for that set (no run behind them), eval closed
/// the set with "nothing promoted", and the real dataset's three successes
/// were never promoted. Now: such FAILED events are refused, and a set that
/// was closed (here by real failures) is decided again when successes come,
/// with a new promotion number each time it promotes, across an eval restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_that_were_never_the_sets_do_not_close_it_and_later_successes_decide_again() {
    let w = eval_world::World::new("reopen").await;
    // One consumer group across the restarts, as a deployed eval has.
    let cli = w.cli("GRU,LSTM,PROPHET", 3600);
    let (cancel, task) = eval_world::start(cli.clone());

    // What the trainers used to emit for an undecodable record: FAILED, no run.
    for model_type in [ModelType::Gru, ModelType::Lstm, ModelType::Prophet] {
        let mut ev = w.failed(model_type).await;
        ev.run_id = String::new();
        w.send(&ev).await;
    }
    let dead = w.dead_letters(3, LONG);
    assert!(dead.iter().all(|e| e.error.code == "unverifiable_event"), "{dead:#?}");
    assert!(w.decision().await.is_none(), "run-less failures do not close the set");

    // Real failures do close it (nothing promoted)...
    for model_type in [ModelType::Gru, ModelType::Lstm, ModelType::Prophet] {
        w.send(&w.failed(model_type).await).await;
    }
    let closed = w.wait_decision(LONG).await;
    assert!(closed.promotion.is_none());
    assert_eq!(closed.outcome.reason, "no trainer reported SUCCESS");
    eval_world::stop(cancel, task).await;

    // ...but the successes trained later decide it again, across a restart.
    let (cancel, task) = eval_world::start(cli.clone());
    let gru = w.success(ModelType::Gru, 0.3, 1.0).await;
    w.send(&gru).await;
    let d = w.wait_decision_where(LONG, |d| d.promotion.is_some()).await;
    assert_eq!(d.trigger, Trigger::Update);
    assert_eq!(d.revision, 1, "the closed decision is kept as decision-0.json");
    assert_eq!(d.promotion.as_ref().map(|p| (p.run_id.clone(), p.sequence)), Some((gru.run_id.clone(), 1)));
    let lstm = w.success(ModelType::Lstm, 0.1, 1.0).await;
    w.send(&lstm).await;
    let d = w.wait_decision_where(LONG, |d| d.promotion.as_ref().is_some_and(|p| p.run_id == lstm.run_id)).await;
    assert_eq!(d.promotion.expect("LSTM").sequence, 2, "every promotion gets the next number");
    eval_world::stop(cancel, task).await;

    let (cancel, task) = eval_world::start(cli);
    let prophet = w.success(ModelType::Prophet, 0.5, 1.0).await;
    w.send(&prophet).await;
    let d = w.wait_decision_where(LONG, |d| d.revision == 3).await;
    assert_eq!(d.promotion.as_ref().expect("still LSTM").run_id, lstm.run_id, "a worse model changes nothing");
    let sel = w.selected_events(3, SHORT);
    let seqs: Vec<(String, u64)> = sel.iter().map(|s| (s.run_id.clone(), s.sequence)).collect();
    assert_eq!(seqs, vec![(gru.run_id.clone(), 1), (lstm.run_id.clone(), 2)], "two promotions, numbered");
    assert_eq!(w.pointer().await.expect("pointer").sequence, 2);
    let store = ClaimCheckStore::new(&stack().s3);
    let history = store.list(eval_world::BUCKET, &format!("{}/{}/", w.identifier, w.config_hash)).await.expect("list");
    let names: Vec<&str> = history.iter().filter_map(|(k, _)| k.rsplit('/').next()).collect();
    for kept in ["decision-0.json", "decision-1.json", "decision-2.json", "decision.json", "state.json"] {
        assert!(names.contains(&kept), "{kept} in {names:?}");
    }
    eval_world::stop(cancel, task).await;
}

/// The trainer half of the same case: an undecodable training-data record
/// that names a dataset is dead-lettered, and no FAILED event is published
/// for the dataset it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_announces_no_failure_for_a_record_that_did_not_decode() {
    let (input, events) = (unique("t-hostile-td"), unique("t-hostile-mt"));
    create_topic_with_dlq(&input, 1).await;
    create_topic_with_dlq(&events, 1).await;
    let mut cmd = StageProcess::command("train-gru");
    cmd.env("TRAINER_GROUP_ID", unique("g-hostile-gru"))
        .env("TRAINING_DATA_TOPIC", &input)
        .env("MODEL_TRAINING_TOPIC", &events)
        .env("MLFLOW_EXPERIMENT", unique("exp-hostile"))
        .env("KAFKA_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS.to_string())
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("RUST_LOG", "warn");
    let _trainer = StageProcess::spawn(cmd);
    let victim_hash = eval_world::hex_hash("victim");
    let producer = kafka_utils::Producer::new(&stack().kafka, "test").expect("producer");
    let claim = |object: &str| ClaimCheck {
        bucket: "processed-data".into(),
        object: format!("victim-site/{object}"),
        size: 1,
        sha256: "0".repeat(64),
    };
    let quoted = TrainingData {
        v: V1,
        identifier: "victim-site".into(),
        config_hash: "x' and tags.`flts.identifier` != '".into(),
        train: claim("train.parquet"),
        test: claim("test.parquet"),
        scaler: claim("scaler.json"),
        created_at: chrono::Utc::now(),
    };
    // No `v`: not a training-data record, whatever it names.
    let hostile = [
        json!({"identifier": "victim-site", "config_hash": victim_hash}),
        serde_json::to_value(&quoted).expect("json"),
    ];
    for record in &hostile {
        let body = serde_json::to_vec(record).expect("json");
        producer.send_bytes(&input, Some(b"victim-site"), &body, &[]).await.expect("ack");
    }
    let dead = dlq(&input, 2);
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().all(|e| e.error.kind == FailureKind::Decode), "{dead:#?}");
    let published = read_topic(&events, 1, SHORT);
    assert!(published.is_empty(), "no FAILED event for a set the record never belonged to");
}

// ---------------------------------------------------------------------------
// Class 7: strings that reach query languages.
// ---------------------------------------------------------------------------

/// Seen: a config hash containing a quote was copied into an MLflow search
/// filter. Eval refuses it before any search; and a filter built by
/// mlflow-client from a hostile value matches only that literal value on the
/// real MLflow (the raw format matched every run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_in_identifiers_never_change_an_mlflow_search() {
    let w = eval_world::World::new("quote").await;
    let (cancel, task) = eval_world::start(w.cli("GRU", 3600));
    let mut ev = w.success(ModelType::Gru, 0.2, 1.0).await;
    ev.config_hash = "x' or attributes.status != '".into();
    w.send(&ev).await;
    let dead = w.dead_letters(1, LONG);
    assert_eq!(dead[0].error.code, "invalid_config_hash", "{:?}", dead[0].error);
    eval_world::stop(cancel, task).await;

    let mlflow = MlflowClient::new(&stack().mlflow).expect("client");
    let exp = mlflow.get_or_create_experiment(&unique("flts-tests-filter")).await.expect("experiment");
    let exps = std::slice::from_ref(&exp);
    for value in ["site-a", "o'brien"] {
        mlflow.create_run(&exp, "r", &[KeyValue::new("flts.identifier", value)]).await.expect("run");
    }
    let client = &mlflow;
    let search = |f: mlflow_client::Filter| async move {
        client.search_runs(exps, &f.as_str(), &[], 10).await.expect("MLflow accepts every built filter")
    };
    // The raw format (what the trainer did) breaks on a quote...
    let raw = mlflow.search_runs(exps, "tags.`flts.identifier` = 'o'brien'", &[], 10).await;
    assert!(raw.is_err(), "a quote ends the raw string early: {raw:?}");
    // ...the built filter finds exactly the literal value, quote included,
    let quoted = search(mlflow_client::Filter::new().tag_eq("flts.identifier", "o'brien").expect("quotable")).await;
    assert_eq!(quoted.len(), 1);
    assert_eq!(quoted[0].tag("flts.identifier"), Some("o'brien"));
    // and a value trying to add a clause is only a value that matches nothing.
    let hostile = "site-a' and tags.`flts.identifier` != 'x";
    assert!(
        search(mlflow_client::Filter::new().tag_eq("flts.identifier", hostile).expect("quotable")).await.is_empty()
    );
    assert_eq!(search(mlflow_client::Filter::new().tag_eq("flts.identifier", "site-a").expect("plain")).await.len(), 1);
    assert!(mlflow_client::Filter::new().tag_eq("k", "both ' and \"").is_err(), "unquotable values are refused");
}

// ---------------------------------------------------------------------------
// Class 4: inference believes promotion times (and promotion records).
// ---------------------------------------------------------------------------

/// Seen: a model-selected record dated 9999-12-31 was installed and every
/// later real promotion refused as older. Now records are confirmed against
/// eval's pointer and ordered by eval's sequence: the forged records (far
/// future, huge sequence, another bucket) are dead-lettered, a stale replay
/// changes nothing, and the real promotions after them, a rollback to an
/// earlier run included, are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_promotion_records_are_refused_and_real_ones_are_served_in_eval_order() {
    let w = inference_world::World::new("forged-sel").await;
    let (first, port, cancel, task) = inference_world::serving_a_first_promotion(&w, 31).await;

    let forged_net = inference_world::synthetic(Cell::Gru, 32);
    let mut far_future = w.promotion(ModelType::Gru, &forged_net).await;
    far_future.promotion_time = "9999-12-31T23:59:59Z".parse().expect("time");
    w.send(&w.selected_topic, &far_future).await;
    let mut huge_sequence = w.promotion(ModelType::Gru, &forged_net).await;
    huge_sequence.sequence = u64::MAX;
    w.send(&w.selected_topic, &huge_sequence).await;
    let mut elsewhere = first.clone();
    elsewhere.artifact_uri = "s3://attacker-bucket/1/abc/artifacts".into();
    w.send(&w.selected_topic, &elsewhere).await;
    let dead = dlq(&w.selected_topic, 3);
    let codes: Vec<&str> = dead.iter().map(|e| e.error.code.as_str()).collect();
    assert_eq!(codes, ["unconfirmed_promotion"; 3], "{dead:#?}");
    assert!(dead[2].error.message.contains("artifact_uri"), "{}", dead[2].error.message);

    let second = w.promotion(ModelType::Gru, &inference_world::synthetic(Cell::Gru, 33)).await;
    w.promote(&second, true).await;
    inference_world::wait_served(port, Some(&format!("GRU/{}", second.run_id)), LONG).await;
    // A replay of the first promotion is stale: nothing changes, nothing is dead-lettered.
    w.send(&w.selected_topic, &first).await;
    tokio::time::sleep(SHORT).await;
    let body = inference_world::wait_served(port, None, LONG).await;
    assert_eq!(body["models"][0]["version"], format!("GRU/{}", second.run_id), "{body}");
    assert_eq!(body["models"][0]["sequence"], second.sequence);
    // A rollback: the first run promoted again under a new number.
    let rollback =
        ModelSelected { sequence: w.promotion(ModelType::Lstm, &forged_net).await.sequence, ..first.clone() };
    w.promote(&rollback, true).await;
    inference_world::wait_served(port, Some(&format!("LSTM/{}", first.run_id)), LONG).await;
    assert_eq!(envelopes(&read_topic(&dlq_topic(&w.selected_topic), 4, SHORT)).len(), 3, "nothing else dead-lettered");
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// Issue 16: model events are followed without a consumer group. Two
/// replicas both serve a promotion, and no group is left behind for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_sees_every_promotion_and_leaves_no_consumer_group() {
    let w = inference_world::World::new("replicas").await;
    let (p1, p2) = (inference_world::free_port(), inference_world::free_port());
    let (c1, t1) = inference_world::start(w.cli(p1, false));
    let (c2, t2) = inference_world::start(w.cli(p2, false));
    for port in [p1, p2] {
        inference_world::wait_alive(port).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sel = w.promotion(ModelType::Gru, &inference_world::synthetic(Cell::Gru, 41)).await;
    w.promote(&sel, true).await;
    for port in [p1, p2] {
        inference_world::wait_served(port, Some(&format!("GRU/{}", sel.run_id)), LONG).await;
    }
    // tansu answers no ListGroups, so the groups are asked for by name: the
    // per-replica group of the old scheme (`<group>-models-<instance>`, which
    // both replicas would have shared here, so one of them would have missed
    // the promotion) and the follower's placeholder group hold no offsets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for group in [format!("{}-models-test", w.group), "inference-follower-unused".to_string()] {
        assert_eq!(committed_offset(&group, &w.selected_topic, 0), None, "{group} committed on model-selected");
    }
    for (c, t) in [(c1, t1), (c2, t2)] {
        c.cancel();
        t.await.expect("join").expect("inference ran cleanly");
    }
}

// ---------------------------------------------------------------------------
// Class 8 (model-selected side): sizes in a promotion.
// ---------------------------------------------------------------------------

/// Seen: a model-selected record with input_len 4294967295 made inference
/// abort on allocation on every start. Now the record is dead-lettered as
/// `bad_data` (and a pointer with it cannot stop a start); an input_len that
/// does not fit the contract is a decode error; the next promotion is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_with_huge_sizes_are_bad_data_and_never_abort_inference() {
    let w = inference_world::World::new("huge").await;
    let net = inference_world::synthetic(Cell::Gru, 51);
    let mut huge = w.promotion(ModelType::Gru, &net).await;
    huge.model.input_len = 4_294_967_295;
    // The pointer itself says so (as if eval had been fooled): the start must survive it.
    w.promote(&huge, false).await;
    let port = inference_world::free_port();
    let process = inference_world::spawn_inference(&w, port, &w.selected_topic);
    inference_world::wait_alive(port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    w.send(&w.selected_topic, &huge).await;
    let mut wide = w.promotion(ModelType::Gru, &net).await;
    wide.model.features = (0..5_000).map(|i| format!("f{i}")).collect();
    w.send(&w.selected_topic, &wide).await;
    let mut beyond = serde_json::to_value(w.promotion(ModelType::Gru, &net).await).expect("json");
    beyond["model"]["input_len"] = json!(18_446_744_073_709_551_615u64);
    w.send(&w.selected_topic, &beyond).await;
    let dead = dlq(&w.selected_topic, 3);
    let got: Vec<(FailureKind, &str)> = dead.iter().map(|e| (e.error.kind, e.error.code.as_str())).collect();
    assert_eq!(
        got,
        [(FailureKind::Permanent, "bad_data"), (FailureKind::Permanent, "bad_data"), (FailureKind::Decode, "decode")],
        "{dead:#?}"
    );
    assert!(dead[0].error.message.contains("input_len"), "{}", dead[0].error.message);

    let good = w.promotion(ModelType::Gru, &net).await;
    w.promote(&good, true).await;
    inference_world::wait_served(port, Some(&format!("GRU/{}", good.run_id)), LONG).await;
    assert!(process.terminate().success(), "still running and stops cleanly");
}

// ---------------------------------------------------------------------------
// Class 9: served models are checked.
// ---------------------------------------------------------------------------

/// Seen: the promoted model.onnx overwritten in S3 by another model's ONNX was
/// served silently after a restart. Now the file must have the SHA-256
/// recorded at training: a replaced file is refused (error, metric), the
/// previous model stays served, and a restart does not serve it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_model_file_is_refused_and_the_previous_model_stays_served() {
    let w = inference_world::World::new("digest").await;
    let (first, port, cancel, task) = inference_world::serving_a_first_promotion(&w, 61).await;

    // The second promotion's file is replaced by another model's ONNX after training.
    let second = w.promotion(ModelType::Gru, &inference_world::synthetic(Cell::Gru, 62)).await;
    let intruder = inference_world::synthetic(Cell::Gru, 63).to_onnx();
    let (bucket, key) = model_runtime::loader::locate(
        &second.artifact_uri,
        &second.model.path,
        &"s3://mlflow".parse().expect("destination"),
    )
    .expect("key");
    ClaimCheckStore::new(&stack().s3)
        .put(&bucket, &key, Bytes::from(intruder), "application/octet-stream")
        .await
        .expect("overwrite");
    w.promote(&second, true).await;
    let dead = dlq(&w.selected_topic, 1);
    assert_eq!(dead[0].error.code, "digest_mismatch", "{:?}", dead[0].error);
    assert!(dead[0].error.message.contains("recorded at training"), "{}", dead[0].error.message);
    let body = inference_world::wait_served(port, None, LONG).await;
    assert_eq!(body["models"][0]["version"], format!("LSTM/{}", first.run_id), "the previous model stays: {body}");
    let metrics =
        reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics").text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("flts_inference_model_digest_failures_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");

    // After a restart the replaced file is still not served.
    let port = inference_world::free_port();
    let (cancel, task) = inference_world::start(w.cli(port, false));
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body) = inference_world::get_json(&client, &format!("http://127.0.0.1:{port}/model")).await;
    assert!(
        body["models"].as_array().is_none_or(|m| m.is_empty()),
        "nothing served after the restart (status {status}): {body}"
    );
    let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.expect("readyz").status();
    assert_eq!(ready, 503, "not ready without a model");
    // The model is served again once eval promotes an intact one.
    let third = w.promotion(ModelType::Lstm, &inference_world::synthetic(Cell::Lstm, 64)).await;
    w.promote(&third, true).await;
    inference_world::wait_served(port, Some(&format!("LSTM/{}", third.run_id)), LONG).await;
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}
