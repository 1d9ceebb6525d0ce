//! The eval stage against the real stack, with events produced by the test
//! and MLflow runs holding the metrics the events claim.

use std::time::Duration;

use claim_check::ClaimCheckStore;
use contracts::topics::dlq_topic;
use contracts::*;
use eval::state::Trigger;
use flts_tests::*;
use mlflow_client::MlflowClient;

use crate::eval_world;
use eval_world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_successes_promote_the_best_once_even_when_replayed() {
    let w = World::new("best").await;
    let events = vec![
        w.success(ModelType::Gru, 0.30, 1.0).await,
        w.success(ModelType::Lstm, 0.20, 1.0).await,
        w.success(ModelType::Prophet, 0.50, 1.0).await,
    ];
    let (cancel, task) = start(w.cli("GRU,LSTM,PROPHET", 3600));
    for ev in &events {
        w.send(ev).await;
    }
    let d = w.wait_decision(Duration::from_secs(60)).await;
    assert_eq!(d.trigger, Trigger::Complete);
    assert!(d.missing.is_empty());
    let p = d.promotion.clone().expect("a promotion");
    assert_eq!(p.model_type, ModelType::Lstm);
    let expected_score = 0.5 * 0.2 + 0.3 * 0.16 + 0.2 * 0.04;
    assert!((p.composite_score - expected_score).abs() < 1e-12, "score {}", p.composite_score);
    assert_eq!(d.outcome.candidates.len(), 3, "every candidate is in the history");

    let sel = w.selected_events(1, Duration::from_secs(30));
    assert_eq!(sel.len(), 1);
    assert_eq!(sel[0].run_id, events[1].run_id);
    assert_eq!(sel[0].model_uri, format!("runs:/{}/model/model.bin", events[1].run_id));

    let store = ClaimCheckStore::new(&stack().s3);
    let current: ModelSelected = serde_json::from_slice(
        &store.get_object(BUCKET, &format!("{}/current.json", w.identifier)).await.expect("current.json"),
    )
    .expect("json");
    assert_eq!(current.run_id, events[1].run_id);
    let global: ModelSelected =
        serde_json::from_slice(&store.get_object(BUCKET, "current.json").await.expect("global current.json"))
            .expect("json");
    assert!(!global.run_id.is_empty());
    let tag = MlflowClient::new(&stack().mlflow).expect("client").get_run(&events[1].run_id).await.expect("run");
    assert!(tag.tag("flts.promoted_at").is_some(), "winning run is tagged");

    // Replay the same three events: nothing new is promoted.
    for ev in &events {
        w.send(ev).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(w.selected_events(2, Duration::from_secs(5)).len(), 1, "a replay must not promote twice");
    stop(cancel, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_trainer_and_the_timeout_still_promote_and_say_why() {
    let w = World::new("timeout").await;
    let (cancel, task) = start(w.cli("GRU,LSTM,PROPHET", 3));
    w.send(&w.failed(ModelType::Gru).await).await;
    let prophet = w.success(ModelType::Prophet, 0.4, 1.0).await;
    w.send(&prophet).await;
    let d = w.wait_decision(Duration::from_secs(60)).await;
    assert_eq!(d.trigger, Trigger::Timeout);
    assert_eq!(d.missing, vec![ModelType::Lstm]);
    let p = d.promotion.expect("promoted among what arrived");
    assert_eq!((p.model_type, p.missing.clone()), (ModelType::Prophet, vec![ModelType::Lstm]));
    let gru = d.outcome.candidates.iter().find(|c| c.model_type == ModelType::Gru).expect("GRU recorded");
    assert!(gru.note.contains("nan_loss"), "{}", gru.note);
    let sel = w.selected_events(1, Duration::from_secs(30));
    assert!(
        !sel.is_empty(),
        "no model-selected event within 30 s of the published promotion {p:?}; watermarks of {}: {:?}",
        w.selected,
        watermarks(&w.selected)
    );
    assert_eq!(sel[0].missing, vec![ModelType::Lstm], "the event says what was missing");
    stop(cancel, task).await;
}

/// A timeout decision whose publish fails is decided again at the sweeper's
/// next tick, and that decision publishes the model-selected event the first
/// one could not send (it used to take the saved promotion as done, and the
/// event was never sent). The publish fails here because model-selected does
/// not exist yet: the broker does not create topics on use. Meanwhile another
/// eval, publishing to another topic from the same bucket, starts and
/// promotes its own set: it leaves the unfinished decision alone (its start-up
/// recovery used to publish it on its own topic and mark it published).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_whose_publish_failed_is_published_later_by_its_own_eval_only() {
    let mut w = World::new("republish").await;
    w.selected = unique("t-republish-selected-later");
    let mut cli = w.cli("GRU,LSTM", 2);
    cli.kafka.delivery_timeout_ms = 2_000;
    let (cancel, task) = start(cli);
    let gru = w.success(ModelType::Gru, 0.3, 1.0).await;
    w.send(&gru).await;

    wait_until(Duration::from_secs(60), "timeout decision", async || w.decision().await).await;
    // Longer than a publish attempt: at least one has failed by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let d = w.decision().await.expect("decision");
    assert!(!d.published, "published to a topic that does not exist: {d:?}");
    assert!(read_topic(&w.selected, 1, Duration::from_secs(1)).is_empty());

    // Another eval on the same bucket, past its start-up recovery.
    let (other, other_cancel, other_task) = another_eval_promoting_its_own("republish-other", 3600).await;
    let on_other = other.selected_topic_events(2, Duration::from_secs(5));
    let ids: Vec<&str> = on_other.iter().map(|s| s.identifier.as_str()).collect();
    assert_eq!(ids, [other.identifier.as_str()], "the other eval published only its own promotion");
    assert!(!w.decision().await.expect("decision").published, "the other eval left this decision alone");
    stop(other_cancel, other_task).await;

    create_topic_with_dlq(&w.selected, 1).await;
    let d = w.wait_decision(Duration::from_secs(60)).await;
    assert_eq!(d.promotion.expect("promoted").run_id, gru.run_id);
    let sel = w.selected_events(1, Duration::from_secs(30));
    assert_eq!(sel.len(), 1, "the retried decision sent model-selected; watermarks: {:?}", watermarks(&w.selected));
    assert_eq!(sel[0].run_id, gru.run_id);
    stop(cancel, task).await;
}

/// A set still waiting for models is another eval's business: an eval that
/// starts while it is pending (on the same bucket, publishing to another
/// topic) neither takes it up nor decides it when its own, shorter, timeout
/// runs out. Its recovery used to adopt every pending set in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_evals_recovery_leaves_a_pending_set_alone() {
    let w = World::new("pending-own").await;
    let (cancel, task) = start(w.cli("GRU,LSTM", 3600));
    w.send(&w.success(ModelType::Gru, 0.3, 1.0).await).await;
    wait_until(Duration::from_secs(60), "saved set state", async || w.state().await).await;

    // Another eval with a 2 s timeout on the same bucket, past its start-up recovery.
    let (_other, other_cancel, other_task) = another_eval_promoting_its_own("pending-other", 2).await;
    // Past the other eval's timeout and a sweep tick.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.decision().await.map(|d| d.trigger), None, "the other eval decided a set it does not track");
    stop(other_cancel, other_task).await;

    w.send(&w.success(ModelType::Lstm, 0.2, 1.0).await).await;
    let d = w.wait_decision(Duration::from_secs(60)).await;
    assert_eq!(d.trigger, Trigger::Complete, "decided by its own eval when complete");
    assert_eq!(w.selected_events(1, Duration::from_secs(30)).len(), 1);
    stop(cancel, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_promoted_when_every_model_is_worse_than_naive() {
    let w = World::new("naive").await;
    let (cancel, task) = start(w.cli("GRU,LSTM", 3600));
    w.send(&w.success(ModelType::Gru, 0.3, 0.1).await).await;
    w.send(&w.success(ModelType::Lstm, 0.2, 0.1).await).await;
    let d = w.wait_decision(Duration::from_secs(60)).await;
    assert!(d.promotion.is_none());
    assert!(d.outcome.reason.starts_with("no candidate beat its naive baseline"), "{}", d.outcome.reason);
    assert!(w.selected_events(1, Duration::from_secs(5)).is_empty(), "no model-selected event");
    let store = ClaimCheckStore::new(&stack().s3);
    assert!(store.head(BUCKET, &format!("{}/current.json", w.identifier)).await.expect("head").is_none(), "no pointer");
    stop(cancel, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_that_disagree_with_mlflow_go_to_the_dlq() {
    let w = World::new("mismatch").await;
    let (cancel, task) = start(w.cli("GRU", 3600));
    let mut ev = w.success(ModelType::Gru, 0.3, 1.0).await;
    if let TrainingStatus::Success(s) = &mut ev.status {
        s.test_rmse = 0.01; // the event claims better than what was logged
    }
    w.send(&ev).await;
    let dlq = envelopes(&read_topic(&dlq_topic(&w.training), 1, Duration::from_secs(60)));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].error.code, "metrics_mismatch");
    assert!(dlq[0].error.message.contains("test_rmse"), "{}", dlq[0].error.message);
    assert!(w.selected_events(1, Duration::from_secs(3)).is_empty());
    stop(cancel, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_killed_after_two_of_three_events_promotes_once_after_restart() {
    let w = World::new("killed").await;
    let group = unique("g-eval-killed");
    let first = spawn_eval(&w, &group);
    w.send(&w.success(ModelType::Gru, 0.3, 1.0).await).await;
    w.send(&w.success(ModelType::Lstm, 0.2, 1.0).await).await;

    // Wait until eval has persisted both reports, then SIGKILL it.
    let two = async || w.state().await.filter(|s| s.reports.len() == 2);
    wait_until(Duration::from_secs(60), "state with two reports persisted by eval", two).await;
    first.crash();

    let _second = spawn_eval(&w, &group);
    let prophet = w.success(ModelType::Prophet, 0.5, 1.0).await;
    w.send(&prophet).await;
    let d = w.wait_decision(Duration::from_secs(90)).await;
    assert_eq!(d.trigger, Trigger::Complete, "all three reports counted across the restart");
    assert_eq!(d.promotion.expect("promoted").model_type, ModelType::Lstm);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.selected_events(2, Duration::from_secs(5)).len(), 1, "exactly one promotion");
}

/// GRU over-forecasts where LSTM under-forecasts (by 1.5 times as much): each
/// alone is good, their inverse-MSE mix is better on validation.
fn opposite_errors(n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|i| scale * if i % 3 == 0 { -2.0 } else { 1.5 }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_better_on_validation_than_every_model_is_built_and_promoted() {
    let w = World::new("ensemble").await;
    let scaler = w.put_dataset_scaler().await;
    let gru = w.success_forecasting(ModelType::Gru, &opposite_errors(48, 1.0), &opposite_errors(24, 1.0), 1.0).await;
    let lstm =
        w.success_forecasting(ModelType::Lstm, &opposite_errors(48, -1.5), &opposite_errors(24, -1.5), 1.0).await;
    let (cancel, task) = start(w.cli("GRU,LSTM", 3600));
    w.send(&gru).await;
    w.send(&lstm).await;
    let d = w.wait_decision(Duration::from_secs(90)).await;
    let p = d.promotion.clone().expect("a promotion");
    assert_eq!(p.model_type, ModelType::Ensemble, "{}", d.outcome.reason);
    let e = d.ensemble.clone().expect("the decision records the ensemble");
    assert!(e.beats_members && e.run_id.as_deref() == Some(p.run_id.as_str()), "{e:?}");
    // Inverse validation MSE: GRU's errors are 1.5 times smaller, so 2.25 times the weight.
    let weight = |m: ModelType| e.members.iter().find(|x| x.model_type == m).expect("member").weight;
    assert!((weight(ModelType::Gru) - 2.25 / 3.25).abs() < 1e-9, "{e:?}");
    assert!((weight(ModelType::Lstm) - 1.0 / 3.25).abs() < 1e-9, "{e:?}");
    assert!(e.members.iter().all(|m| e.validation_score < m.validation_score));
    assert_eq!(e.rows, 48);
    // Every single model and the naive forecasts are reported with their test NRMSE.
    for c in d.outcome.candidates.iter().filter(|c| c.status == "SUCCESS") {
        assert!(c.test_nrmse["down"] > 0.0, "{c:?}");
        assert_eq!(c.choice.get("seed").map(String::as_str), Some("1"));
    }
    assert!(d.naive_test_nrmse["down"].last_value.expect("last value") > 0.0);

    // The ensemble is a run like a trainer's: tags, digest, manifest, member files.
    let run = w.mlflow.get_run(&p.run_id).await.expect("ensemble run");
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.tag("flts.model_type"), Some("ENSEMBLE"));
    assert_eq!(run.tag("flts.identifier"), Some(w.identifier.as_str()));
    assert_eq!(run.metric("val_rmse"), Some(e.validation.rmse));
    let manifest_bytes =
        w.mlflow.download_artifact(&run.info.artifact_uri, ensemble::MANIFEST_PATH).await.expect("manifest");
    assert_eq!(p.model_sha256.as_deref(), Some(claim_check::sha256_hex(&manifest_bytes).as_str()));
    assert_eq!(run.tag("flts.model_sha256"), p.model_sha256.as_deref());
    let manifest: ensemble::EnsembleManifest = serde_json::from_slice(&manifest_bytes).expect("manifest JSON");
    manifest.check().expect("a valid manifest");
    for (m, ev) in manifest.members.iter().zip([&gru, &lstm]) {
        assert_eq!((m.model_type, &m.run_id), (ev.model_type, &ev.run_id));
        let copied = w.mlflow.download_artifact(&run.info.artifact_uri, &m.artifact.path).await.expect("member");
        assert_eq!(claim_check::sha256_hex(&copied), m.sha256, "the member's file is copied whole");
    }
    let own_scaler = w.mlflow.download_artifact(&run.info.artifact_uri, "model/scaler.json").await.expect("scaler");
    assert_eq!(own_scaler, scaler, "the ensemble's scaler is the dataset's");
    let card = w.mlflow.download_artifact(&run.info.artifact_uri, "model/model_card.md").await.expect("card");
    assert!(String::from_utf8_lossy(&card).contains("weight"));
    let sel = w.selected_events(1, Duration::from_secs(30));
    assert_eq!((sel[0].model_type, sel[0].model.format), (ModelType::Ensemble, ModelFormat::Ensemble));
    assert!(eval::metrics::ENSEMBLE_PROMOTIONS.get() >= 1);
    stop(cancel, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_no_model_beats_gets_the_best_naive_forecast_promoted() {
    let w = World::new("fallback").await;
    let scaler = w.put_dataset_scaler().await;
    // Both models miss by 5 (0.5 scaled) where last value misses by 0.1: both
    // fail the gate, so neither is an ensemble member.
    let gru = w.success_forecasting(ModelType::Gru, &[5.0; 48], &[5.0; 24], 0.1).await;
    let lstm = w.success_forecasting(ModelType::Lstm, &[4.0; 48], &[4.0; 24], 0.1).await;
    let (cancel, task) = start(w.cli("GRU,LSTM", 3600));
    w.send(&gru).await;
    w.send(&lstm).await;
    let d = w.wait_decision(Duration::from_secs(90)).await;
    let p = d.promotion.clone().expect("never without forecasts: a baseline is promoted");
    assert_eq!(p.model_type, ModelType::Baseline, "{}", d.outcome.reason);
    assert!(d.fallback.as_deref().is_some_and(|f| f.contains("last_value")), "{:?}", d.fallback);
    assert!(d.ensemble.is_none(), "models behind naive are no members: {:?}", d.ensemble);
    assert!(d.outcome.candidates.iter().filter(|c| c.status == "SUCCESS").all(|c| c.passed_gate == Some(false)));
    // The served model is the naive graph, shaped like the trained models, with the dataset scaler.
    let run = w.mlflow.get_run(&p.run_id).await.expect("baseline run");
    assert_eq!(run.tag("flts.model_type"), Some("BASELINE"));
    let onnx = w.mlflow.download_artifact(&run.info.artifact_uri, &p.model.path).await.expect("model");
    let want = nn::export_naive(&nn::NaiveSpec {
        kind: nn::Naive::LastValue,
        input_len: 10,
        n_features: 1,
        target_columns: vec![0],
        output_len: 1,
    })
    .expect("naive");
    assert_eq!(onnx, want);
    assert_eq!(p.model_sha256.as_deref(), Some(claim_check::sha256_hex(&want).as_str()));
    let own_scaler = w.mlflow.download_artifact(&run.info.artifact_uri, &p.model.scaler_path).await.expect("scaler");
    assert_eq!(own_scaler, scaler);
    assert_eq!(w.pointer().await.expect("pointer").run_id, p.run_id, "inference is pointed at it");
    assert!(eval::metrics::BASELINE_PROMOTIONS.get() >= 1);
    stop(cancel, task).await;
}

/// The naive graphs eval promotes run in onnxruntime (the interop venv of
/// `scripts/stack install`, as tests/interop.rs uses it) and forecast what
/// they say: last value and seasonal naive, symbolic batch.
#[test]
fn naive_onnx_models_forecast_the_same_in_onnxruntime() {
    let cache = std::env::var_os("FLTS_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/flts"));
    let python = cache.join("interop-venv/bin/python");
    assert!(python.exists(), "{} is missing: run `scripts/stack install`", python.display());
    let dir = std::env::temp_dir().join(unique("naive-onnx"));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, kind, input_len, output_len) in
        [("last", nn::Naive::LastValue, 5, 2), ("seasonal", nn::Naive::SeasonalNaive { season: 4 }, 6, 3)]
    {
        let spec = nn::NaiveSpec { kind, input_len, n_features: 3, target_columns: vec![2, 0], output_len };
        let path = dir.join(format!("{name}.onnx"));
        std::fs::write(&path, nn::export_naive(&spec).expect("export")).expect("write");
        // x[t, b, f] = 100 t + 10 b + f; the expected rows per step, in Python.
        let rows: Vec<usize> = match kind {
            nn::Naive::LastValue => vec![input_len - 1; output_len],
            nn::Naive::SeasonalNaive { season } => (0..output_len).map(|h| input_len - season + h).collect(),
        };
        let script = format!(
            "import numpy as np, onnxruntime as ort\n\
             s = ort.InferenceSession({path:?}, providers=['CPUExecutionProvider'])\n\
             t, b, f = {input_len}, 3, 3\n\
             x = np.array([[[100*i + 10*j + k for k in range(f)] for j in range(b)] for i in range(t)], dtype=np.float32)\n\
             y = s.run(None, {{'input': x}})[0]\n\
             want = np.array([[x[r, j, c] for r in {rows:?} for c in [2, 0]] for j in range(b)], dtype=np.float32)\n\
             assert y.shape == want.shape, (y.shape, want.shape)\n\
             assert (y == want).all(), (y, want)\n\
             print('ok')\n",
            path = path.display().to_string(),
        );
        let out = std::process::Command::new(&python).arg("-c").arg(&script).output().expect("python");
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}
