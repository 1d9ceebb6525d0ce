//! The broker stops and restarts while a producer and a consumer are running:
//! every acknowledged message is still there and gets consumed.
//! Runs as its own test binary, because it takes the shared broker away.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use flts_tests::*;
use kafka_utils::consumer::{self, ConsumerArgs, ConsumerSettings};
use kafka_utils::{Handler, HandlerError, Producer, Record};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Ids(Mutex<BTreeSet<u64>>);

impl Handler for Ids {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let v: serde_json::Value = serde_json::from_slice(&record.payload).map_err(HandlerError::decode)?;
        let id = v["id"].as_u64().ok_or_else(|| HandlerError::decode("no id"))?;
        self.0.lock().await.insert(id);
        Ok(())
    }
}

const N: u64 = 300;

// Known failure (issue 2 stays open): after the restart in this test every
// produce answers UNKNOWN until the delivery timeout, even when sent again,
// and tansu's own log shows its storage failing (`Storage(UnableToSend)` on
// Metadata); a later plain stop/start of tansu recovered. Whether the broker
// or the idempotent producer is at fault is not settled yet. Run with `cargo test -p flts-tests --test broker_restart -- --ignored`.
#[ignore = "fails: sends answer UNKNOWN after the tansu restart (see comment)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing_acknowledged() {
    let topic = unique("t-restart");
    create_topic_with_dlq(&topic, 2).await;
    let kafka = stack().kafka.clone();
    let producer = Producer::new(&kafka, "test").expect("producer");

    let ids = Arc::new(Ids::default());
    let cancel = CancellationToken::new();
    // A failed assertion must stop the consumer thread too; otherwise the
    // runtime waits for it forever and the test hangs instead of failing.
    let _stop_on_exit = cancel.clone().drop_guard();
    let settings = ConsumerSettings {
        service: "test-restart".into(),
        group_id: unique("g-restart"),
        topics: vec![topic.clone()],
        dlq_topic: None,
        args: ConsumerArgs { commit_interval_ms: 200, ..Default::default() },
    };
    let (k, h, c, p) = (kafka.clone(), ids.clone(), cancel.clone(), producer.clone());
    let consumer = tokio::spawn(async move { consumer::run(&k, settings, p, h, c).await.expect("consumer loop") });

    let sender = {
        let (producer, topic) = (producer.clone(), topic.clone());
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            for id in 0..N {
                let key = format!("site-{}", id % 7);
                match producer.send_json(&topic, Some(&key), &serde_json::json!({ "id": id })).await {
                    Ok(_) => {
                        acked.insert(id);
                    }
                    Err(e) => panic!("send {id} failed instead of waiting for the broker: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    stack_cmd(&["stop", "kafka"]).expect("stop broker");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stack_cmd(&["start", "kafka"]).expect("start broker");

    let acked = tokio::time::timeout(Duration::from_secs(150), sender)
        .await
        .expect("sends finish after the restart")
        .expect("join");
    assert_eq!(acked.len() as u64, N, "every send was eventually acknowledged");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let seen = ids.0.lock().await.clone();
        if acked.is_subset(&seen) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumed {} of {} acknowledged messages; missing e.g. {:?}",
            seen.len(),
            acked.len(),
            acked.difference(&seen).take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cancel.cancel();
    consumer.await.expect("join");

    // And the log itself holds every acknowledged message.
    let stored: BTreeSet<u64> = read_topic(&topic, N as usize, Duration::from_secs(60))
        .iter()
        .filter_map(|m| {
            serde_json::from_slice::<serde_json::Value>(rdkafka::message::Message::payload(m).unwrap_or_default()).ok()
        })
        .filter_map(|v| v["id"].as_u64())
        .collect();
    assert!(
        acked.is_subset(&stored),
        "acknowledged messages missing from the topic: {:?}",
        acked.difference(&stored).take(5).collect::<Vec<_>>()
    );
}
