//! The monitor stage on the real stack (tansu, MLflow): a served model whose
//! forecast error grows past 1.5x its test error for the configured time
//! raises one drift event and the drift gauge; a steady one stays quiet; a
//! record naming an unknown MLflow run goes to the DLQ; with retraining on,
//! the identifier's latest preprocess request is sent again, forced; and in
//! the real pipeline, a level shift after training raises drift for the
//! served model.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contracts::{ClaimCheck, Metrics, ModelDrift, ModelType, PerformanceEval, PreprocessRequest, V1};
use flts_tests::pipeline::{World, generated_csv};
use flts_tests::{
    StageProcess, create_topic_with_dlq, envelopes, free_ports, read_topic, stack, unique, wait_for_commit,
};
use kafka_utils::Producer;
use mlflow_client::{Metric, MlflowClient};
use rdkafka::message::Message;

/// A finished MLflow run whose trainer logged `test_rmse`.
async fn run_with_test_rmse(test_rmse: f64) -> String {
    let client = MlflowClient::new(&stack().mlflow).expect("MLflow client");
    let exp = client.get_or_create_experiment("flts-monitor-tests").await.expect("experiment");
    let run = client.create_run(&exp, "monitor-test", &[]).await.expect("create run");
    client.log_batch(&run.info.run_id, &[Metric::now("test_rmse", test_rmse, 0)], &[], &[]).await.expect("log");
    run.info.run_id
}

fn claim(object: &str) -> ClaimCheck {
    ClaimCheck {
        bucket: "inference-logs".into(),
        object: object.into(),
        size: 1,
        sha256: format!("{:064x}", object.len()),
    }
}

/// A performance-eval record of `identifier` served by `run_id`, scored at `at`.
fn record(identifier: &str, run_id: &str, at: DateTime<Utc>, rmse: f64) -> PerformanceEval {
    PerformanceEval {
        v: V1,
        identifier: identifier.into(),
        config_hash: "cfg".into(),
        model_type: ModelType::Gru,
        run_id: run_id.into(),
        windows: 10,
        metrics: Metrics { mse: rmse * rmse, rmse, mae: rmse * 0.8 },
        per_target: Default::default(),
        results: claim(&format!("{identifier}/{}.jsonl", at.timestamp())),
        plot: None,
        source: claim(&format!("{identifier}/{}.parquet", at.timestamp())),
        created_at: at,
    }
}

struct Monitor {
    process: StageProcess,
    group: String,
    metrics_port: u16,
}

/// The monitor binary on `perf` -> `drift`: degraded above 1.5x for two hours, three records a window.
fn start_monitor(perf: &str, drift: &str, requests: Option<&str>) -> Monitor {
    let group = unique("test-monitor");
    let [metrics_port] = free_ports();
    let mut cmd = StageProcess::command("monitor");
    cmd.env("PERFORMANCE_EVAL_TOPIC", perf)
        .env("MODEL_DRIFT_TOPIC", drift)
        .env("MONITOR_GROUP_ID", &group)
        .env("MONITOR_DRIFT_RATIO", "1.5")
        .env("MONITOR_DRIFT_FOR_SECS", "7200")
        .env("MONITOR_WINDOW_RECORDS", "3")
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("HANDLER_MAX_ATTEMPTS", "2")
        .env("HANDLER_BACKOFF_MS", "100");
    if let Some(topic) = requests {
        cmd.env("MONITOR_RETRAIN_ON_DRIFT", "true").env("PREPROCESS_REQUESTS_TOPIC", topic);
    }
    Monitor { process: StageProcess::spawn(cmd), group, metrics_port }
}

async fn metrics_text(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(r) => return r.text().await.expect("metrics body"),
            Err(e) => {
                assert!(Instant::now() < deadline, "monitor /metrics did not answer: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The messages of `topic` (up to `expected`, within `timeout`), decoded.
fn decoded<T: serde::de::DeserializeOwned>(topic: &str, expected: usize, timeout: Duration) -> Vec<T> {
    read_topic(topic, expected, timeout)
        .iter()
        .map(|m| contracts::decode(m.payload().expect("payload")).unwrap_or_else(|e| panic!("{topic}: {e}")))
        .collect()
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_degrading_model_raises_one_drift_event_and_a_steady_one_none() {
    let (perf, drift) = (unique("perf-eval"), unique("model-drift"));
    create_topic_with_dlq(&perf, 1).await;
    create_topic_with_dlq(&drift, 1).await;
    let (degrading, steady) = (unique("shifted"), unique("steady"));
    let (run_a, run_b) = (run_with_test_rmse(0.1).await, run_with_test_rmse(0.1).await);

    // One batch an hour for eight hours. The degrading series' level shifts
    // away from what its model learned: its error climbs from its test error
    // to 4.5x; the steady one stays within 10% of its test error.
    let t0 = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
    let hour = chrono::Duration::hours(1);
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    let growing = [0.1, 0.1, 0.12, 0.2, 0.3, 0.35, 0.4, 0.45];
    let jitter = [0.1, 0.11, 0.09, 0.1, 0.105, 0.095, 0.11, 0.1];
    for h in 0..8 {
        let at = t0 + hour * h as i32;
        producer.send_json(&perf, Some(&degrading), &record(&degrading, &run_a, at, growing[h])).await.expect("send");
        producer.send_json(&perf, Some(&steady), &record(&steady, &run_b, at, jitter[h])).await.expect("send");
    }
    // A redelivered record changes nothing; one naming a run MLflow does not know is dead-lettered.
    let last = record(&degrading, &run_a, t0 + hour * 7, growing[7]);
    producer.send_json(&perf, Some(&degrading), &last).await.expect("send");
    let unknown = record(&degrading, &format!("{:032x}", 0xdead_beef_u64), t0 + hour * 8, 0.1);
    producer.send_json(&perf, Some(&degrading), &unknown).await.expect("send");

    let monitor = start_monitor(&perf, &drift, None);
    wait_for_commit(&monitor.group, &perf, 0, 18, Duration::from_secs(120));

    let events: Vec<ModelDrift> = decoded(&drift, 2, Duration::from_secs(5));
    assert_eq!(events.len(), 1, "exactly one drift event: {events:?}");
    let e = &events[0];
    assert_eq!(
        (e.identifier.as_str(), e.run_id.as_str(), e.model_type),
        (degrading.as_str(), run_a.as_str(), ModelType::Gru)
    );
    // Degraded from hour 4 (RMS of 0.12, 0.2, 0.3 = 0.219 > 0.15); two hours later, at hour 6, drift.
    assert_eq!(e.degraded_since, t0 + hour * 4);
    assert_eq!(e.source, record(&degrading, &run_a, t0 + hour * 6, 0.0).source);
    let rolling = ((0.3f64.powi(2) + 0.35f64.powi(2) + 0.4f64.powi(2)) / 3.0).sqrt();
    assert!((e.rolling_rmse - rolling).abs() < 1e-9, "{} vs {rolling}", e.rolling_rmse);
    assert!((e.test_rmse - 0.1).abs() < 1e-12 && (e.ratio - rolling / 0.1).abs() < 1e-9, "{e:?}");
    assert_eq!((e.threshold, e.for_secs, e.observations, e.windows), (1.5, 7200, 3, 30));
    assert!(!e.retrain_requested);

    let dead = envelopes(&read_topic(&contracts::topics::dlq_topic(&perf), 1, Duration::from_secs(10)));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].error.code, "run_not_found", "{dead:?}");

    let text = metrics_text(monitor.metrics_port).await;
    let a = format!("identifier=\"{degrading}\"");
    let b = format!("identifier=\"{steady}\"");
    assert_eq!(sample(&text, "flts_monitor_drift_active", &[&a]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "flts_monitor_drift_active", &[&b]), Some(0.0), "{text}");
    assert_eq!(sample(&text, "flts_monitor_drift_events_total", &[&a]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "flts_monitor_drift_events_total", &[&b]), None, "{text}");
    let ratio_b = sample(&text, "flts_monitor_error_ratio", &[&b]).expect("steady ratio");
    assert!((0.9..1.1).contains(&ratio_b), "steady ratio {ratio_b}");
    assert_eq!(sample(&text, "flts_monitor_records_total", &["outcome=\"duplicate\""]), Some(1.0), "{text}");
    monitor.process.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_retraining_on_drift_resends_the_latest_preprocess_request_forced() {
    let (perf, drift, requests) = (unique("perf-eval"), unique("model-drift"), unique("preprocess-requests"));
    for t in [&perf, &drift, &requests] {
        create_topic_with_dlq(t, 1).await;
    }
    let id = unique("retrain");
    let run = run_with_test_rmse(0.1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    let t0 = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
    let request = |input: &str, minutes: i64| PreprocessRequest {
        v: V1,
        identifier: id.clone(),
        input: input.into(),
        test_input: None,
        config: None,
        force: false,
        requested_at: t0 + chrono::Duration::minutes(minutes),
    };
    // Two submissions of this identifier (the later one is the latest data) and one of another.
    producer.send_json(&requests, Some(&id), &request("s3://raw-data/old.csv", 0)).await.expect("send");
    producer.send_json(&requests, Some(&id), &request("s3://raw-data/new.csv", 10)).await.expect("send");
    let other = PreprocessRequest { identifier: unique("other"), ..request("s3://raw-data/other.csv", 20) };
    producer.send_json(&requests, Some(&other.identifier), &other).await.expect("send");
    // Badly off for three hours (record time).
    for h in 0..3 {
        let at = t0 + chrono::Duration::hours(h);
        producer.send_json(&perf, Some(&id), &record(&id, &run, at, 0.5)).await.expect("send");
    }

    let monitor = start_monitor(&perf, &drift, Some(&requests));
    wait_for_commit(&monitor.group, &perf, 0, 3, Duration::from_secs(120));
    let events: Vec<ModelDrift> = decoded(&drift, 1, Duration::from_secs(10));
    assert_eq!(events.len(), 1);
    assert!(events[0].retrain_requested, "{events:?}");

    let sent: Vec<PreprocessRequest> = decoded(&requests, 4, Duration::from_secs(10));
    assert_eq!(sent.len(), 4, "the three submissions and one retraining request: {sent:?}");
    let retrain = &sent[3];
    assert_eq!(
        (retrain.identifier.as_str(), retrain.input.as_str(), retrain.force),
        (id.as_str(), "s3://raw-data/new.csv", true)
    );
    assert!(retrain.requested_at > t0 + chrono::Duration::minutes(10));
    monitor.process.terminate();
}

/// `csv` with every value column multiplied by `factor`: the same traffic at
/// another level.
fn shifted(csv: &std::path::Path, factor: i64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(csv).expect("read csv");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields: Vec<String> = line.split(',').map(String::from).collect();
        if i > 0 {
            // Gaps (empty fields) stay gaps.
            for f in fields.iter_mut().skip(1).filter(|f| !f.is_empty()) {
                *f = match f.parse::<i64>() {
                    Ok(n) => (n * factor).to_string(),
                    Err(_) => (f.parse::<f64>().expect("numeric field") * factor as f64).to_string(),
                };
            }
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let path = csv.with_file_name("shifted.csv");
    std::fs::write(&path, out).expect("write shifted csv");
    path
}

/// The real pipeline (preprocess, train-gru, eval, inference, monitor): the
/// promoted model's forecasts of its own test data are steady (no event); the
/// same identifier's traffic then arrives at three times its level, the served
/// model forecasts it before any retraining, and the monitor raises a drift
/// event for that model and that data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_shift_after_training_raises_drift_for_the_served_model() {
    let w = World::new().await;
    let gru_only = [("EXPECTED_MODEL_TYPES", "GRU")];
    let monitor_env =
        [("MONITOR_DRIFT_FOR_SECS", "0"), ("MONITOR_WINDOW_RECORDS", "1"), ("MONITOR_DRIFT_RATIO", "1.5")];
    let _stages: Vec<StageProcess> = vec![
        w.stage("preprocess"),
        w.stage("train-gru"),
        w.stage_with("eval", &gru_only),
        w.stage("inference"),
        w.stage_with("monitor", &monitor_env),
    ];
    let summaries = w.watch(&w.performance_eval);
    let drifts = w.watch(&w.model_drift);

    let csv = generated_csv(2400);
    let config = r#"{"targets": ["down", "up"]}"#;
    w.submit(&csv, config);
    let first: PerformanceEval =
        summaries.next_where("first summary", Duration::from_secs(600), |p: &PerformanceEval| p.identifier == w.id);
    wait_for_commit(&format!("{}-monitor", w.id), &w.performance_eval, 0, 1, Duration::from_secs(60));
    assert!(
        decoded::<ModelDrift>(&w.model_drift, 1, Duration::from_secs(2)).is_empty(),
        "the model's own test data is no drift"
    );

    w.submit(&shifted(&csv, 3), config);
    let second: PerformanceEval =
        summaries.next_where("summary of the shifted data", Duration::from_secs(300), |p: &PerformanceEval| {
            p.identifier == w.id && p.config_hash != first.config_hash
        });
    assert_eq!(second.run_id, first.run_id, "the shifted data was forecast by the model trained before the shift");
    let event: ModelDrift =
        drifts.next_where("drift event", Duration::from_secs(60), |d: &ModelDrift| d.identifier == w.id);
    assert_eq!(
        (event.run_id.as_str(), event.config_hash.as_str()),
        (first.run_id.as_str(), second.config_hash.as_str())
    );
    assert_eq!(event.source, second.source);
    assert!(event.ratio > 1.5 && (event.rolling_rmse - second.metrics.rmse).abs() < 1e-9, "{event:?}");
    eprintln!(
        "level shift: served rmse {:.4} -> {:.4}, test rmse {:.4}, ratio {:.2}",
        first.metrics.rmse, second.metrics.rmse, event.test_rmse, event.ratio
    );
}
