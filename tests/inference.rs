//! The inference service against the real stack: models produced by the test
//! (a synthetic ONNX network uploaded to a real MLflow run's artifacts),
//! promotions recorded as eval records them, events on real topics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use contracts::topics::dlq_topic;
use contracts::*;
use flts_tests::*;
use model_runtime::synthetic::{Cell, SyntheticNet};
use serde_json::{Value, json};

use crate::inference_world;
use inference_world::*;

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
async fn see_it_run_once(w: &World, data: &InferenceData, sel: &ModelSelected, net: &SyntheticNet) {
    let events = w.perf_events(1, Duration::from_secs(90));
    assert_eq!(events.len(), 1, "the promotion runs the parked request");
    w.check_results(&events[0], data, sel, net).await;
    // Model events are followed without a group (nothing committed): give the
    // promotion's handler time to finish, then there is still one event.
    let events = w.perf_events(2, Duration::from_secs(5));
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
    see_it_run_once(&w, &data, &sel, &net).await;
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// `name`'s value in a Prometheus text exposition (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

/// A parked test set that fails for good when its model arrives (its Parquet
/// was made for another config) is dead-lettered the way the consumer loop
/// dead-letters: to `DLQ-<inference-data>` with its original bytes and
/// offset, counted in `flts_kafka_records_dead_lettered_total` (issue 19
/// item 5: before, a private path sent it without the metric).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_request_that_fails_for_good_is_dead_lettered_through_the_common_path() {
    let w = World::new("parked-dlq").await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    wait_alive(port).await;
    let mut data = w.inference_data().await;
    data.config_hash = claim_check::sha256_hex(b"another preprocess config");
    w.send(&w.data_topic, &data).await;
    wait_for_commit(&w.group, &w.data_topic, 0, 1, Duration::from_secs(60));
    assert_eq!(w.parked().await, vec![inference::pending::key(&data)], "parked");

    let sel = w.promotion(ModelType::Lstm, &synthetic(Cell::Lstm, 43)).await;
    w.promote(&sel, true).await;
    let dead = envelopes(&read_topic(&dlq_topic(&w.data_topic), 1, Duration::from_secs(60)));
    assert_eq!(dead.len(), 1, "the parked request is dead-lettered");
    assert_eq!(dead[0].error.code, "bad_test_data", "{:?}", dead[0].error);
    assert_eq!((dead[0].original_topic.as_str(), dead[0].offset), (w.data_topic.as_str(), 0));
    let (_, original) = kafka_utils::dlq::original_bytes(&dead[0]).expect("base64");
    assert_eq!(decode::<InferenceData>(&original).expect("the request"), data);
    assert!(w.parked().await.is_empty(), "the parked copy is deleted");
    let metrics =
        reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics").text().await.expect("text");
    let counted = metrics.lines().any(|l| {
        l.starts_with("flts_kafka_records_dead_lettered_total{")
            && l.contains(&format!("topic=\"{}\"", w.data_topic))
            && l.contains("kind=\"permanent\"")
            && l.ends_with(" 1")
    });
    assert!(counted, "dead letter counted for {}:\n{metrics}", w.data_topic);
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
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
    see_it_run_once(&w, &data, &sel, &net).await;
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
    see_it_run_once(&w, &data, &sel, &net).await;
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
    let v = predict_ok(port, &raw_window(0)).await;
    assert_eq!(v["model"]["version"], second_version);
    assert!(restarted.terminate().success(), "a SIGTERM stops the service cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_serves_a_fresh_model_until_a_promotion_wins() {
    let w = World::new("fast").await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, true));
    let success = |run_id: &str, artifact_uri: &str, model_type, net: &SyntheticNet| ModelTraining {
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
            model_sha256: Some(claim_check::sha256_hex(&net.to_onnx())),
            protocol: EvalProtocol::OneStepAhead,
            baselines: Baselines { last_value: Metrics { mse: 1.0, rmse: 1.0, mae: 1.0 }, seasonal_naive: None },
            validation: None,
        })),
    };
    // No promotion yet: a SUCCESS is served at once.
    let fresh = synthetic(Cell::Gru, 5);
    let (fresh_run, fresh_uri) = w.upload(ModelType::Gru, &fresh).await;
    w.send(&w.training_topic, &success(&fresh_run, &fresh_uri, ModelType::Gru, &fresh)).await;
    let body = wait_served(port, Some(&format!("GRU/{fresh_run}")), Duration::from_secs(60)).await;
    assert_eq!(body["models"][0]["source"], "training");

    // The promotion replaces it; a later SUCCESS of the same config does not.
    let promoted = w.promotion(ModelType::Lstm, &synthetic(Cell::Lstm, 6)).await;
    w.promote(&promoted, true).await;
    let promoted_version = format!("LSTM/{}", promoted.run_id);
    wait_served(port, Some(&promoted_version), Duration::from_secs(60)).await;
    let late = synthetic(Cell::Gru, 7);
    let (late_run, late_uri) = w.upload(ModelType::Gru, &late).await;
    w.send(&w.training_topic, &success(&late_run, &late_uri, ModelType::Gru, &late)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A promotion whose artifacts are missing goes to the DLQ and changes nothing.
    let mut broken = w.promotion(ModelType::Gru, &synthetic(Cell::Gru, 8)).await;
    broken.model.path = "model/missing.onnx".into();
    w.promote(&broken, true).await;
    let dlq = envelopes(&read_topic(&dlq_topic(&w.selected_topic), 1, Duration::from_secs(60)));
    assert_eq!(dlq.len(), 1, "the broken promotion is dead-lettered");
    assert_eq!(dlq[0].error.code, "object_not_found", "{:?}", dlq[0].error);
    let client = reqwest::Client::new();
    let (_, body) = get_json(&client, &format!("http://127.0.0.1:{port}/model")).await;
    assert_eq!(body["models"][0]["version"], promoted_version, "promotion still served: {body}");
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// An ENSEMBLE promotion (issue 18) is served like any model: each member
/// clips and scales its own inputs, inverts and floors its own forecasts, and
/// the service answers their weighted mean in original units, over HTTP and in
/// batch, where the actuals stay the raw test values. A member whose file is
/// not the one the manifest records makes the whole ensemble refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_promotion_serves_the_weighted_mean_of_its_members() {
    let w = World::new("ensemble").await;
    let (gru, lstm) = (synthetic(Cell::Gru, 31), synthetic(Cell::Lstm, 32));
    // Member 0 clips `load` to [450, 600] and floors its forecasts at 520;
    // member 1 is scaled differently (standard) with neither.
    let mut clipped = scaler();
    clipped.columns[0].clip = Some([450.0, 600.0]);
    clipped.columns[0].floor = Some(520.0);
    let standard = series::Scaler::fit(series::ScalerKind::Standard, &raw_frame(), &names(), &[]).expect("fit");
    let member =
        |model_type, net, weight, scaler, forged| EnsembleMemberSpec { model_type, net, weight, scaler, forged };
    let members = [
        member(ModelType::Gru, &gru, 0.3, clipped.clone(), false),
        member(ModelType::Lstm, &lstm, 0.7, standard, false),
    ];
    let sel = w.ensemble_promotion(&members).await;
    w.promote(&sel, false).await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    let body = wait_served(port, Some(&format!("ENSEMBLE/{}", sel.run_id)), Duration::from_secs(60)).await;
    assert_eq!(body["models"][0]["members"].as_array().map(Vec::len), Some(2), "{body}");

    let expected = |window: &[Vec<f64>]| -> Vec<f64> {
        let parts: Vec<Vec<f64>> = members.iter().map(|m| member_forecast(m, window)).collect();
        (0..OUTPUT_LEN).map(|s| members.iter().zip(&parts).map(|(m, p)| m.weight * p[s]).sum()).collect()
    };
    // Window 15 reaches past member 0's clip (load peaks at ~706 in row 22).
    let window = raw_window(15);
    assert!(window.iter().any(|r| r[0] > 600.0), "the window exercises the clip");
    let v = predict_ok(port, &window).await;
    let got: Vec<f64> = (0..OUTPUT_LEN).map(|s| v["forecasts"][0][s][0].as_f64().expect("number")).collect();
    let want = expected(&window);
    assert!(got.iter().zip(&want).all(|(g, w)| close(*g, *w, 1e-4)), "served {got:?}, members' weighted mean {want:?}");
    // Without member 0's clip and floor the answer would differ.
    let plain = member(ModelType::Gru, &gru, 0.3, scaler(), false);
    let unclipped: f64 = 0.3 * member_forecast(&plain, &window)[0] + 0.7 * member_forecast(&members[1], &window)[0];
    assert!(!close(unclipped, want[0], 1e-4), "the clip or floor changes this window ({unclipped} vs {})", want[0]);

    // Batch: the same mean per window; actuals are the raw values.
    let data = w.inference_data().await;
    w.send(&w.data_topic, &data).await;
    let events = w.perf_events(1, Duration::from_secs(90));
    assert_eq!(events.len(), 1, "one performance-eval event");
    let jsonl = w.store.get(&events[0].results).await.expect("JSONL");
    let raw = raw_frame();
    for (i, line) in jsonl.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate().step_by(37) {
        let rec: inference::batch::WindowRecord = serde_json::from_slice(line).expect("line");
        let want = expected(&raw_window(i));
        for (s, step) in rec.steps.iter().enumerate() {
            assert!(
                close(step.forecast[TARGET], want[s], 1e-4),
                "window {i} step {s}: {} vs {}",
                step.forecast[TARGET],
                want[s]
            );
            assert!(close(step.actual[TARGET], raw.columns[0].values[i + INPUT_LEN + s], 1e-9), "raw actuals");
        }
    }

    // A member file that is not the one the manifest records: refused, the ensemble before stays.
    let forged =
        [member(ModelType::Gru, &gru, 0.5, clipped, false), member(ModelType::Lstm, &lstm, 0.5, scaler(), true)];
    let bad = w.ensemble_promotion(&forged).await;
    w.promote(&bad, true).await;
    let dead = envelopes(&read_topic(&dlq_topic(&w.selected_topic), 1, Duration::from_secs(60)));
    assert_eq!(dead.len(), 1, "the forged ensemble is dead-lettered");
    assert_eq!(dead[0].error.code, "digest_mismatch", "{:?}", dead[0].error);
    let body = wait_served(port, None, Duration::from_secs(10)).await;
    assert_eq!(body["models"][0]["version"], format!("ENSEMBLE/{}", sel.run_id), "{body}");

    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// `inference --once` (issue 19 item 6): the folder `train-gru --once` writes
/// forecasts a raw CSV and the processed test Parquet of `preprocess --once`,
/// with no broker, S3 or MLflow (the processes get an empty environment). On
/// the test part both give the trainer's own test predictions; the actuals are
/// the file's raw values; the JSONL, the PNG and the summary are written.
#[test]
fn once_forecasts_raw_and_processed_files_with_a_trained_model_folder() {
    let dir = std::env::temp_dir().join(unique("flts-inference-once"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = |name: &str| dir.join(name).display().to_string();
    let run = |bin: &str, args: &[&str]| {
        let out = std::process::Command::new(bin_path(bin))
            .env_clear()
            .env("RUST_LOG", "warn")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {bin}: {e}"));
        assert!(out.status.success(), "{bin} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    run("flts", &["generate", "--rows", "3000", "--output", &p("sample.csv")]);
    run("preprocess", &["--once", "--input", &p("sample.csv"), "--output", &p("processed")]);
    let (train, test) = (p("processed/train.parquet"), p("processed/test.parquet"));
    run("train-gru", &["--once", "--train", &train, "--test", &test, "--output", &p("gru"), "--epochs", "2"]);
    run("inference", &["--once", "--model", &p("gru"), "--input", &p("sample.csv"), "--output", &p("raw")]);
    run("inference", &["--once", "--model", &p("gru"), "--input", &test, "--output", &p("processed-out")]);

    // step-1 forecast and actual of `down` by time, from a --once output folder
    let read = |out: &str| -> BTreeMap<i64, (f64, f64)> {
        let summary: Value =
            serde_json::from_slice(&std::fs::read(dir.join(out).join("summary.json")).expect("summary"))
                .expect("summary JSON");
        let png = std::fs::read(dir.join(out).join("forecast.png")).expect("forecast.png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let jsonl = std::fs::read(dir.join(out).join("forecasts.jsonl")).expect("forecasts.jsonl");
        let lines: Vec<inference::batch::WindowRecord> = jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(summary["windows"].as_u64(), Some(lines.len() as u64), "{summary}");
        lines.iter().map(|l| (l.steps[0].timestamp, (l.steps[0].forecast["down"], l.steps[0].actual["down"]))).collect()
    };
    let (raw, processed) = (read("raw"), read("processed-out"));
    assert!(
        raw.len() > processed.len() && processed.len() > 100,
        "{} raw, {} processed windows",
        raw.len(),
        processed.len()
    );

    // The raw CSV's `down` by time: the actuals are these values.
    let csv = std::fs::read_to_string(dir.join("sample.csv")).expect("csv");
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let down = header.iter().position(|h| *h == "down").expect("down column");
    let ms = |t: &str| {
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").expect("time").and_utc().timestamp_millis()
    };
    let values: BTreeMap<i64, f64> = rows
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (ms(f[0]), f[down].parse().expect("number"))
        })
        .collect();
    for (t, (forecast, actual)) in &raw {
        assert!(close(*actual, values[t], 1e-9), "actual at {t}: {actual} vs the file's {}", values[t]);
        assert!(*forecast >= 0.0, "forecast at {t} below the floor: {forecast}");
    }

    // On the test part, both inputs give the trainer's own test predictions.
    let predictions = std::fs::read_to_string(dir.join("gru/test_predictions.csv")).expect("test predictions");
    let mut checked = 0;
    for line in predictions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let t = chrono::DateTime::parse_from_rfc3339(f[0]).expect("time").timestamp_millis();
        let trained: f64 = f[1].parse().expect("number");
        let Some((from_processed, _)) = processed.get(&t) else { continue };
        assert!(close(*from_processed, trained, 1e-4), "at {t}: {from_processed} vs the trainer's {trained}");
        assert!(close(raw[&t].0, trained, 1e-4), "at {t}: raw CSV gives {} vs the trainer's {trained}", raw[&t].0);
        checked += 1;
    }
    assert!(checked > 100, "only {checked} forecasts compared");
    std::fs::remove_dir_all(&dir).ok();
}

/// A BASELINE promotion (issue 18: eval's fallback when no model beats the
/// naive forecasts) is plain ONNX (`nn::export_naive`) and is served like any
/// model: the last-value baseline answers the window's last `load`, in
/// original units, for every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_promotion_is_served_like_an_onnx_model() {
    let w = World::new("baseline").await;
    let spec = nn::NaiveSpec {
        kind: nn::Naive::LastValue,
        input_len: INPUT_LEN,
        n_features: FEATURES.len(),
        target_columns: vec![0],
        output_len: OUTPUT_LEN,
    };
    let sel = w.promotion_of(ModelType::Baseline, nn::export_naive(&spec).expect("naive ONNX")).await;
    w.promote(&sel, false).await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    wait_served(port, Some(&format!("BASELINE/{}", sel.run_id)), Duration::from_secs(60)).await;
    let window = raw_window(17);
    let v = predict_ok(port, &window).await;
    let last = window[INPUT_LEN - 1][0];
    for s in 0..OUTPUT_LEN {
        let got = v["forecasts"][0][s][0].as_f64().expect("number");
        assert!(close(got, last, 1e-5), "step {s}: {got} vs the last value {last}");
    }
    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}

/// POST one window to `/predict` on `port`; the answer must be 200 with JSON.
async fn predict_ok(port: u16, window: &[Vec<f64>]) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/predict"))
        .header("content-type", "application/json")
        .body(json!({ "window": window }).to_string())
        .send()
        .await
        .expect("predict");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}
