//! The broker stops and restarts while a producer and a consumer are running:
//! every acknowledged message is still there and gets consumed, after a
//! graceful stop (SIGTERM) and after a crash (SIGKILL). Each test runs its own
//! tansu ([`PrivateBroker`]), so the shared stack stays up for the others.
//!
//! The graceful case is the one that used to fail: for up to 5 s after SIGTERM
//! tansu 0.6.0 answers open connections with UNKNOWN_SERVER_ERROR, librdkafka's
//! idempotent producer then bumps its epoch, and tansu panics on that request
//! (`todo!()` in its sqlite storage), which leaves the restarted broker unable
//! to serve anything. kafka_utils::producer explains how the producer avoids it.

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

#[derive(Debug, Clone, Copy)]
enum Outage {
    /// SIGTERM (SIGKILL only if it has not exited within 15 s).
    Graceful,
    /// SIGKILL.
    Crash,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_broker_restart_loses_nothing_acknowledged() {
    restart_mid_run(Outage::Graceful).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_broker_restart_loses_nothing_acknowledged() {
    restart_mid_run(Outage::Crash).await;
}

async fn restart_mid_run(outage: Outage) {
    let mut broker = PrivateBroker::start();
    let topic = unique("t-restart");
    broker.create_topic_with_dlq(&topic, 2).await;
    let mut kafka = broker.kafka();
    // Long enough for the restart, short enough that a broken broker fails
    // the test in bounded time.
    kafka.delivery_timeout_ms = 60_000;
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
    tokio::task::block_in_place(|| match outage {
        Outage::Graceful => {
            let exited = broker.stop(Duration::from_secs(15));
            assert!(exited, "tansu did not exit within 15 s of SIGTERM");
        }
        Outage::Crash => broker.kill(),
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| broker.start_again());

    let sent = tokio::time::timeout(Duration::from_secs(90), sender).await;
    let broker_died = broker.log().contains("not yet implemented");
    assert!(!broker_died, "tansu's storage panicked after the restart; log:\n{}", broker.log());
    let acked = sent.expect("sends finish after the restart").expect("sender");
    assert_eq!(acked.len() as u64, N, "every send was eventually acknowledged");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
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
    let bootstrap = broker.bootstrap();
    let stored: BTreeSet<u64> =
        tokio::task::block_in_place(|| read_topic_from(&bootstrap, &topic, N as usize, Duration::from_secs(60)))
            .iter()
            .filter_map(|m| {
                serde_json::from_slice::<serde_json::Value>(rdkafka::message::Message::payload(m).unwrap_or_default())
                    .ok()
            })
            .filter_map(|v| v["id"].as_u64())
            .collect();
    assert!(
        acked.is_subset(&stored),
        "acknowledged messages missing from the topic: {:?}",
        acked.difference(&stored).take(5).collect::<Vec<_>>()
    );
}
