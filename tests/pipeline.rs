//! The whole pipeline through its six real stage processes on the local stack
//! (issue 8): a generated dataset goes in, a model is promoted, batch
//! inference writes its results.
//!
//! The dataset enters the way an operator's mistake would: its first request
//! names a target column that does not exist, is dead-lettered by preprocess,
//! and is replayed fixed with `flts dlq replay --payload-file ... --execute`
//! (the real CLI binary). Before that, one poison record is sent to every topic
//! a stage consumes; each lands in that stage's DLQ with its original bytes,
//! and the flow carries on past it on the same partition. (performance-eval
//! has no consumer in the pipeline, so it has nothing to poison.)

use std::time::{Duration, Instant};

use contracts::topics::dlq_topic;
use contracts::*;
use flts_tests::pipeline::*;
use flts_tests::*;
use kafka_utils::Producer;
use rdkafka::message::Message as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_end_to_end_and_every_poison_lands_in_its_dlq() {
    let w = World::new().await;
    let producer = Producer::new(&w.stack.kafka, "pipeline-test").expect("producer");

    // One poison per consumed topic, keyed like real messages so each sits
    // ahead of the dataset's own messages on the same partition.
    let not_json: &[u8] = b"{\"v\":1,\"identifier\":";
    let wrong_v = serde_json::to_vec(&serde_json::json!({"v": 7, "identifier": w.id})).expect("json");
    // model-selected is followed from its end by every inference replica (no
    // consumer group), so its poison is sent once inference runs, below.
    let poisons: Vec<(&str, Vec<u8>)> = vec![
        (&w.training_data, not_json.to_vec()),
        (&w.inference_data, wrong_v.clone()),
        (&w.model_training, not_json.to_vec()),
        (&w.model_selected, wrong_v.clone()),
    ];
    for (topic, bytes) in poisons.iter().filter(|(t, _)| *t != w.model_selected) {
        producer.send_bytes(topic, Some(w.id.as_bytes()), bytes, &[]).await.expect("send poison");
    }

    let _stages: Vec<StageProcess> = stages().map(|b| w.stage(b)).collect();

    // The dataset, submitted with a config that names a column it lacks.
    let csv = generated_csv(2400);
    let dir = csv.parent().expect("temp dir").to_path_buf();
    let started = Instant::now();
    w.submit(&csv, r#"{"targets": ["down", "no_such_column"]}"#);

    let rejected = w.dead_letter_of_dataset(&w.dlq_preprocess);
    assert!(rejected.error.message.contains("no_such_column"), "reason names the column: {:?}", rejected.error);
    let mut request: PreprocessRequest = contracts::decode(&original(&rejected)).expect("original request bytes");
    request.config = Some(serde_json::json!({"targets": ["down", "up"]}));
    let fixed = dir.join("fixed-request.json");
    std::fs::write(&fixed, serde_json::to_vec(&request).expect("json")).expect("write fixed copy");

    // Dry run first: it says what it would send and sends nothing.
    let dlq_args = ["dlq", "replay", "--topic", &w.dlq_preprocess, "--identifier", &w.id];
    let dry = w.flts(&[&dlq_args[..], &["--payload-file", fixed.to_str().expect("utf-8 path")]].concat());
    assert!(dry.contains("would send") && dry.contains(&w.requests), "{dry}");
    let sent = w.flts(&[&dlq_args[..], &["--payload-file", fixed.to_str().expect("utf-8 path"), "--execute"]].concat());
    assert!(sent.contains("1 records replayed"), "{sent}");

    // Promotion, then batch inference of the test part, with no further help.
    let selected = w.wait_for(&w.model_selected, Duration::from_secs(600), "model-selected", |m| {
        decoded::<ModelSelected>(m).iter().any(|s| s.identifier == w.id)
    });
    let promotion = decoded::<ModelSelected>(&selected).into_iter().find(|s| s.identifier == w.id).expect("promotion");
    producer.send_bytes(&w.model_selected, Some(w.id.as_bytes()), &wrong_v, &[]).await.expect("send poison");
    let perf = w.wait_for(&w.performance_eval, Duration::from_secs(300), "performance-eval", |m| {
        decoded::<PerformanceEval>(m).iter().any(|p| p.identifier == w.id)
    });
    let summary = decoded::<PerformanceEval>(&perf).into_iter().find(|p| p.identifier == w.id).expect("summary");
    eprintln!("pipeline: promotion and inference {:.1} s after the first submission", started.elapsed().as_secs_f64());
    let promotions: Vec<ModelSelected> = decoded(&w.read(&w.model_selected, Duration::from_secs(2)));
    assert_eq!(promotions.len(), 1, "exactly one promotion");
    assert_eq!(summary.run_id, promotion.run_id, "inference used the promoted model");
    assert_eq!(summary.config_hash, promotion.config_hash);
    assert_eq!(summary.per_target.keys().collect::<Vec<_>>(), ["down", "up"], "the fixed config's targets");
    assert!(summary.windows > 0 && summary.metrics.rmse.is_finite());
    w.check_results(&summary).await;

    // Every trained model got an MLflow run and a SUCCESS event; the promoted one is among them.
    w.assert_every_model_succeeded("pipeline");

    // Each poison is in its stage's DLQ, byte for byte; the trainers each dead-letter theirs.
    let trainers = w.dead_letters_of(&w.dlq_trainers, not_json, 3);
    let mut services: Vec<&str> = trainers.iter().map(|e| e.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    assert_eq!(services, ["prophet", "train-gru", "train-lstm"]);
    assert!(trainers.iter().all(|e| e.original_topic == w.training_data && e.error.kind == FailureKind::Decode));
    let inference_data = w.dead_letters_of(&dlq_topic(&w.inference_data), &wrong_v, 1);
    assert!(inference_data[0].error.message.contains('v'), "{:?}", inference_data[0].error);
    let eval = w.dead_letters_of(&w.dlq_eval, not_json, 1);
    assert_eq!(eval[0].original_topic, w.model_training);
    let selected_dlq = w.dead_letters_of(&dlq_topic(&w.model_selected), &wrong_v, 1);
    assert_eq!(selected_dlq[0].original_topic, w.model_selected);

    // Every record the run left on every topic, DLQs included, is valid
    // against its JSON Schema in schemas/ (the poisons aside).
    let counts = w.validate_every_record(&[not_json, &wrong_v]);
    eprintln!("schema-checked records per topic: {counts:?}");
    assert!(counts.iter().all(|(t, n)| *n > 0 || t == &dlq_topic(&w.performance_eval) || t.starts_with("DLQ-DLQ")));

    // Each poison goes back where it came from with `flts dlq replay --execute`
    // and no --to (the DLQ is named after the consumed topic), and is
    // dead-lettered again there: one more copy on the topic, one more envelope.
    for (topic, bytes) in &poisons {
        let dlq = dlq_topic(topic);
        let before = w.read(topic, Duration::from_secs(2)).iter().filter(|m| m.payload() == Some(&bytes[..])).count();
        let dead = w.read(&dlq, Duration::from_secs(2));
        let envs = envelopes(&dead);
        let copies = envs.iter().filter(|e| original(e) == *bytes).count();
        let first = envs.iter().position(|e| original(e) == *bytes).map(|i| &dead[i]).expect("the poison's envelope");
        let (offset, part) = (first.offset().to_string(), first.partition().to_string());
        let sent = w.flts(&[
            "dlq",
            "replay",
            "--topic",
            &dlq,
            "--partition",
            &part,
            "--from-offset",
            &offset,
            "--until-offset",
            &offset,
            "--execute",
        ]);
        assert!(sent.contains("1 records replayed") && sent.contains(*topic), "{sent}");
        let after = w.read(topic, Duration::from_secs(2)).iter().filter(|m| m.payload() == Some(&bytes[..])).count();
        assert_eq!(after, before + 1, "the replayed poison is back on {topic}");
        let again = w.dead_letters_of(&dlq, bytes, copies + 1);
        assert!(again.iter().all(|e| &e.original_topic == topic));
    }

    // The report reads it all back, with a timeline of the stages.
    let text = w.flts(&["report", "--identifier", &w.id, "--wait-secs", "60"]);
    for needle in ["winner:", "batch inference:", "forecasts: s3://", "stage timeline", "preprocess", "train GRU"] {
        assert!(text.contains(needle), "report lacks {needle:?}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
