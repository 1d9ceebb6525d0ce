//! A consumer process killed with SIGKILL: before its commit the record comes
//! back after a restart; after its commit it does not.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flts_tests::*;
use kafka_utils::Producer;

struct Consumer {
    child: Child,
}

impl Consumer {
    fn spawn(topic: &str, group: &str, log: &std::path::Path, hold_ms: u64) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_flts-test-consumer"))
            .env("KAFKA_BOOTSTRAP_SERVERS", stack().kafka.bootstrap().expect("stack has a broker"))
            .env("TEST_TOPIC", topic)
            .env("TEST_GROUP", group)
            .env("TEST_LOG", log)
            .env("TEST_HOLD_MS", hold_ms.to_string())
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawn test consumer");
        Consumer { child }
    }
    /// SIGKILL: no shutdown path runs.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn wait_for_line(path: &std::path::Path, line: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !log_lines(path).iter().any(|l| l == line) {
        assert!(
            Instant::now() < deadline,
            "no `{line}` in {} within {timeout:?}: {:?}",
            path.display(),
            log_lines(path)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_commit_gets_the_record_again() {
    let topic = unique("t-crash-before");
    create_topic_with_dlq(&topic, 1).await;
    Producer::new(&stack().kafka, "test")
        .expect("producer")
        .send_json(&topic, Some("k"), &serde_json::json!({"n": 0}))
        .await
        .expect("ack");
    let (group, log) = (unique("g-crash-before"), temp_log("before"));

    let first = Consumer::spawn(&topic, &group, &log, 60_000);
    wait_for_line(&log, "start 0", Duration::from_secs(60));
    first.kill9();
    assert_eq!(committed_offset(&group, &topic, 0), None, "nothing committed before the handler finished");

    let _second = Consumer::spawn(&topic, &group, &log, 0);
    wait_for_line(&log, "done 0", Duration::from_secs(90));
    let starts = log_lines(&log).iter().filter(|l| *l == "start 0").count();
    assert_eq!(starts, 2, "the record was redelivered after the crash: {:?}", log_lines(&log));
    wait_for_commit(&group, &topic, 0, 1, Duration::from_secs(30));
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_commit_does_not_get_the_record_again() {
    let topic = unique("t-crash-after");
    create_topic_with_dlq(&topic, 1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    producer.send_json(&topic, Some("k"), &serde_json::json!({"n": 0})).await.expect("ack");
    let (group, log) = (unique("g-crash-after"), temp_log("after"));

    let first = Consumer::spawn(&topic, &group, &log, 0);
    wait_for_line(&log, "done 0", Duration::from_secs(60));
    wait_for_commit(&group, &topic, 0, 1, Duration::from_secs(30));
    first.kill9();

    producer.send_json(&topic, Some("k"), &serde_json::json!({"n": 1})).await.expect("ack");
    let _second = Consumer::spawn(&topic, &group, &log, 0);
    wait_for_line(&log, "done 1", Duration::from_secs(90));
    let lines = log_lines(&log);
    assert_eq!(lines.iter().filter(|l| *l == "start 0").count(), 1, "committed record was not redelivered: {lines:?}");
    let _ = std::fs::remove_file(&log);
}
