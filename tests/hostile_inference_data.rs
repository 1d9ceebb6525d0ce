//! Issue 17, class 5 on the inference side: an inference-data claim check
//! may only name the dataset's own processed objects. One naming another
//! dataset's test part, one pointing into the inference-logs bucket and one
//! whose scaler is another dataset's are dead-lettered alone as bad data,
//! nothing of them is read or forecast, and the dataset's own test set after
//! them is forecast as usual.

use std::time::Duration;

use contracts::*;
use flts_tests::*;
use model_runtime::synthetic::Cell;

use crate::inference_world;
use inference_world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_checks_naming_other_datasets_objects_are_dead_lettered_and_the_next_is_forecast() {
    let w = World::new("foreign").await;
    let other = World::new("foreign-other").await;
    let net = synthetic(Cell::Gru, 5);
    let sel = w.promotion(ModelType::Gru, &net).await;
    w.promote(&sel, false).await;
    let port = free_port();
    let (cancel, task) = start(w.cli(port, false));
    // A failed assertion must stop the stage too, or the runtime waits for it.
    let _stop = cancel.clone().drop_guard();
    wait_served(port, Some(&format!("GRU/{}", sel.run_id)), Duration::from_secs(60)).await;

    let own = w.inference_data().await;
    let theirs = other.inference_data().await;
    let mut foreign_test = own.clone();
    foreign_test.test = theirs.test.clone();
    let mut foreign_scaler = own.clone();
    foreign_scaler.scaler = theirs.scaler.clone();
    let mut other_bucket = own.clone();
    other_bucket.test.bucket = "inference-logs".into();
    let hostile = [foreign_test, foreign_scaler, other_bucket];
    for data in &hostile {
        w.send(&w.data_topic, data).await;
    }
    w.send(&w.data_topic, &own).await;

    let dead = envelopes(&read_topic(&topics::dlq_topic(&w.data_topic), hostile.len(), Duration::from_secs(90)));
    assert_eq!(dead.len(), hostile.len(), "each hostile claim check is dead-lettered: {dead:?}");
    for (env, data) in dead.iter().zip(&hostile) {
        assert_eq!(env.error.code, "bad_data", "{:?}", env.error);
        assert_eq!(env.attempts, 1, "a permanent refusal is not retried");
        assert!(
            env.error.message.contains(&format!("{}/", w.identifier)),
            "the reason names the allowed prefix: {}",
            env.error.message
        );
        let sent = serde_json::to_vec(data).expect("json");
        assert_eq!(kafka_utils::dlq::original_bytes(env).expect("base64").1, sent, "original bytes kept");
    }
    let events = w.perf_events(1, Duration::from_secs(90));
    assert_eq!(events.len(), 1, "only the dataset's own test set is forecast");
    w.check_results(&events[0], &own, &sel, &net).await;

    cancel.cancel();
    task.await.expect("join").expect("inference ran cleanly");
}
