//! kafka-utils against the real broker: produce/consume/commit, retries then
//! DLQ with the original bytes, undecodable records, and a handler that runs
//! longer than max.poll.interval.ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use contracts::error::Code;
use flts_tests::*;
use kafka_utils::consumer::ConsumerArgs;
use kafka_utils::{Handler, HandlerError, Producer, Record, RunSummary};
use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Mutex;
use tokio_util::sync::DropGuard;

/// Records what it sees; fails retryably on payloads containing `poison`
/// (`fail_times` times, 0 = always), decodes as a contract when `decode` is set,
/// and sleeps for `hold` on payloads containing `slow`.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(i64, Vec<u8>)>>,
    calls: AtomicU32,
    poison_calls: AtomicU32,
    slow_calls: AtomicU32,
    fail_times: u32,
    decode: bool,
    hold: Option<Duration>,
}

impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.decode {
            record.decode::<contracts::TrainingData>()?;
        }
        if record.payload.windows(6).any(|w| w == b"poison") {
            let n = self.poison_calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_times == 0 || n <= self.fail_times {
                // A stand-in for any dependency being away: a listed retryable code.
                return Err(HandlerError::retryable(Code::S3Unavailable, format!("attempt {n} failed")));
            }
        }
        if let Some(h) = self.hold
            && record.payload.windows(4).any(|w| w == b"slow")
        {
            self.slow_calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(h).await;
        }
        self.seen.lock().await.push((record.offset, record.payload.clone()));
        Ok(())
    }
}

impl Recorder {
    async fn seen_payload(&self, payload: &[u8]) -> bool {
        self.seen.lock().await.iter().any(|(_, p)| p == payload)
    }

    async fn wait_seen(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.seen.lock().await.len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "handler saw {} of {n} records within {timeout:?}",
                self.seen.lock().await.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn fast_args() -> ConsumerArgs {
    ConsumerArgs {
        handler_max_attempts: 3,
        handler_backoff_ms: 10,
        handler_backoff_max_ms: 50,
        commit_interval_ms: 200,
        ..Default::default()
    }
}

/// Start a consumer loop; dropping the guard stops it (also when an assertion
/// panics, so a failing test does not hang on a loop nobody cancels).
fn start(
    topic: &str,
    group: &str,
    args: ConsumerArgs,
    handler: Arc<Recorder>,
) -> (DropGuard, tokio::task::JoinHandle<RunSummary>) {
    start_consumer(stack().kafka.clone(), "test-consumer", topic, group, args, handler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit() {
    let topic = unique("t-basic");
    create_topic_with_dlq(&topic, 1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    for i in 0..5 {
        let d = producer.send_json(&topic, Some("site-1"), &serde_json::json!({ "i": i })).await.expect("acknowledged");
        assert_eq!((d.partition, d.offset), (0, i));
    }
    let group = unique("g-basic");
    let rec = Arc::new(Recorder::default());
    let (stop, task) = start(&topic, &group, fast_args(), rec.clone());
    rec.wait_seen(5, Duration::from_secs(60)).await;
    drop(stop);
    let summary = task.await.expect("join");
    assert_eq!(summary, RunSummary { processed: 5, dead_lettered: 0, dropped: 0 });
    let seen = rec.seen.lock().await.clone();
    let order: Vec<i64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4], "records handled in partition order");
    assert_eq!(seen[3].1, br#"{"i":3}"#.to_vec());
    // Shutdown committed synchronously: a restart starts after the last record.
    assert_eq!(committed_offset(&group, &topic, 0), Some(5));
}

/// A runtime dropped while a consumer loop runs, its token never cancelled
/// (what a panic elsewhere in a stage or a test does), shuts down: the loop's
/// blocking thread stops with the future that awaited it. Before, the drop
/// waited for it forever.
#[test]
fn a_dropped_runtime_stops_its_consumer_loop() {
    let topic = unique("t-dropped");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let rec = Arc::new(Recorder::default());
    let cancel = rt.block_on(async {
        create_topic_with_dlq(&topic, 1).await;
        let (stop, _task) = start(&topic, &unique("g-dropped"), fast_args(), rec.clone());
        // The loop is polling once it handled a record.
        let producer = Producer::new(&stack().kafka, "test").expect("producer");
        producer.send_json(&topic, None, &serde_json::json!({ "i": 0 })).await.expect("acknowledged");
        rec.wait_seen(1, Duration::from_secs(60)).await;
        // Keep the loop's token uncancelled: only the runtime's drop may stop it.
        stop.disarm()
    });
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        let _ = done.send(());
    });
    assert!(
        dropped.recv_timeout(Duration::from_secs(20)).is_ok(),
        "the runtime did not shut down within 20 s: its consumer loop kept polling"
    );
    assert!(!cancel.is_cancelled(), "nobody cancelled the loop's own token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_failing_every_attempt_sends_record_to_dlq_with_original_bytes() {
    let topic = unique("t-dlq");
    create_topic_with_dlq(&topic, 1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    let poison = br#"{"identifier":"site-9","poison":true,"x":[1,2,3]}"#;
    producer.send_json(&topic, Some("site-9"), &serde_json::json!({"n": 0})).await.expect("ack");
    producer.send_bytes(&topic, Some(b"site-9"), poison, &[]).await.expect("ack");
    producer.send_json(&topic, Some("site-9"), &serde_json::json!({"n": 2})).await.expect("ack");

    let group = unique("g-dlq");
    let rec = Arc::new(Recorder::default());
    let (stop, task) = start(&topic, &group, fast_args(), rec.clone());
    rec.wait_seen(2, Duration::from_secs(60)).await;
    wait_for_commit(&group, &topic, 0, 3, Duration::from_secs(30));
    drop(stop);
    let summary = task.await.expect("join");
    assert_eq!(summary, RunSummary { processed: 2, dead_lettered: 1, dropped: 0 });
    assert_eq!(rec.poison_calls.load(Ordering::SeqCst), 3, "max attempts is 3");

    let dlq = read_topic(&contracts::topics::dlq_topic(&topic), 1, Duration::from_secs(30));
    assert_eq!(dlq.len(), 1, "exactly one DLQ record");
    assert_eq!(dlq[0].key(), Some(&b"site-9"[..]), "DLQ record keyed like the original");
    let env = &envelopes(&dlq)[0];
    assert_eq!(env.original_topic, topic);
    assert_eq!((env.partition, env.offset), (0, 1));
    assert_eq!(env.attempts, 3);
    assert_eq!(env.error.kind, contracts::FailureKind::RetriesExhausted);
    assert_eq!(env.error.code, "s3_unavailable");
    assert!(env.error.message.contains("attempt 3 failed"), "{}", env.error.message);
    assert_eq!(env.service, "test-consumer");
    assert_eq!(env.identifier.as_deref(), Some("site-9"));
    let (key, payload) = kafka_utils::dlq::original_bytes(env).expect("base64");
    assert_eq!(payload, poison.to_vec(), "original payload bytes unchanged");
    assert_eq!(key.as_deref(), Some(&b"site-9"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_is_retried_then_processed() {
    let topic = unique("t-retry");
    create_topic_with_dlq(&topic, 1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    producer.send_bytes(&topic, Some(b"k"), b"poison but recovers", &[]).await.expect("ack");
    let group = unique("g-retry");
    let rec = Arc::new(Recorder { fail_times: 2, ..Default::default() });
    let (stop, task) = start(&topic, &group, fast_args(), rec.clone());
    rec.wait_seen(1, Duration::from_secs(60)).await;
    drop(stop);
    assert_eq!(task.await.expect("join"), RunSummary { processed: 1, dead_lettered: 0, dropped: 0 });
    assert_eq!(rec.poison_calls.load(Ordering::SeqCst), 3, "two failures, then success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_record_goes_to_dlq_at_once_and_the_next_is_processed() {
    let topic = unique("t-decode");
    create_topic_with_dlq(&topic, 1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    let garbage: &[u8] = b"\xff\xfe not even utf-8";
    producer.send_bytes(&topic, Some(b"site-3"), garbage, &[]).await.expect("ack");
    let good = contracts::TrainingData {
        v: contracts::V1,
        identifier: "site-3".into(),
        config_hash: "c".into(),
        train: contracts::ClaimCheck { bucket: "b".into(), object: "o".into(), size: 1, sha256: "s".into() },
        test: contracts::ClaimCheck { bucket: "b".into(), object: "t".into(), size: 1, sha256: "s".into() },
        scaler: contracts::ClaimCheck { bucket: "b".into(), object: "s".into(), size: 1, sha256: "s".into() },
        created_at: chrono::Utc::now(),
    };
    producer.send_json(&topic, Some("site-3"), &good).await.expect("ack");

    let group = unique("g-decode");
    let rec = Arc::new(Recorder { decode: true, ..Default::default() });
    let (stop, task) = start(&topic, &group, fast_args(), rec.clone());
    rec.wait_seen(1, Duration::from_secs(60)).await;
    wait_for_commit(&group, &topic, 0, 2, Duration::from_secs(30));
    drop(stop);
    assert_eq!(task.await.expect("join"), RunSummary { processed: 1, dead_lettered: 1, dropped: 0 });
    assert_eq!(rec.calls.load(Ordering::SeqCst), 2, "the bad record is not retried");
    assert_eq!(rec.seen.lock().await[0].0, 1, "the good record after it was processed");

    let env = &envelopes(&read_topic(&contracts::topics::dlq_topic(&topic), 1, Duration::from_secs(30)))[0];
    assert_eq!(env.error.kind, contracts::FailureKind::Decode);
    assert_eq!(env.attempts, 1);
    assert!(env.error.message.contains("UTF-8"), "{}", env.error.message);
    assert_eq!(kafka_utils::dlq::original_bytes(env).expect("base64").1, garbage.to_vec());
}

/// Sends to a chosen partition with a bare rdkafka producer.
struct PartitionSender {
    bare: FutureProducer,
    topic: String,
}

impl PartitionSender {
    fn new(topic: &str) -> Self {
        let bare = ClientConfig::new()
            .set("bootstrap.servers", stack().kafka.bootstrap().expect("broker"))
            .create()
            .expect("bare producer");
        PartitionSender { bare, topic: topic.to_string() }
    }

    /// Send and return the record's offset.
    async fn send(&self, partition: i32, payload: &str) -> i64 {
        let record = FutureRecord::<(), _>::to(&self.topic).partition(partition).payload(payload);
        self.bare.send(record, Duration::from_secs(10)).await.expect("ack").offset
    }
}

/// Wait until the two members of a group over a two-partition topic own one
/// partition each, and return which member owns partition 0 and 1. A fixed
/// settle time is not enough on a loaded broker (a member that joins late moves
/// a partition mid-handler, a legitimate redelivery): probe both partitions
/// until each member handles one partition's probe, twice running.
async fn wait_for_one_partition_each(to: &PartitionSender, members: &[Arc<Recorder>; 2]) -> [usize; 2] {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (mut round, mut split_rounds) = (0, 0);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the group did not split the partitions in 120 s");
        round += 1;
        let mut owners = [None; 2];
        for partition in 0..2 {
            let probe = format!("{{\"probe\":{round},\"p\":{partition}}}");
            to.send(partition, &probe).await;
            while owners[partition as usize].is_none() {
                assert!(tokio::time::Instant::now() < deadline, "probe {probe} not handled in 120 s");
                for (member, rec) in members.iter().enumerate() {
                    if rec.seen_payload(probe.as_bytes()).await {
                        owners[partition as usize] = Some(member);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        split_rounds = if owners[0] != owners[1] { split_rounds + 1 } else { 0 };
        if split_rounds == 2 {
            return owners.map(|o| o.expect("both probes handled"));
        }
    }
}

/// Two members of a new group over a new two-partition topic, holding records
/// that contain `slow` for `hold` (longer than their 6 s poll interval),
/// settled on one partition each.
struct TwoMemberGroup {
    topic: String,
    group: String,
    members: [Arc<Recorder>; 2],
    running: [(DropGuard, tokio::task::JoinHandle<RunSummary>); 2],
    to: PartitionSender,
    /// Which member owns partition 0 and 1.
    owners: [usize; 2],
}

async fn two_member_group(name: &str, hold: Duration) -> TwoMemberGroup {
    let topic = unique(&format!("t-{name}"));
    create_topic_with_dlq(&topic, 2).await;
    let group = unique(&format!("g-{name}"));
    let members = [(); 2].map(|()| Arc::new(Recorder { hold: Some(hold), ..Default::default() }));
    let args = ConsumerArgs { max_poll_interval_ms: 6_000, session_timeout_ms: 6_000, ..fast_args() };
    let running = [0, 1].map(|m| start(&topic, &group, args.clone(), members[m].clone()));
    let to = PartitionSender::new(&topic);
    let owners = wait_for_one_partition_each(&to, &members).await;
    TwoMemberGroup { topic, group, members, running, to, owners }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_longer_than_max_poll_interval_run_once_in_a_two_member_group() {
    // Two members, one slow record per partition, each held for 2.5x the poll
    // interval. Without pause-and-poll both members are evicted mid-handler,
    // the partitions move, and records are handled a second time.
    let TwoMemberGroup { topic, group, members, running, to, .. } =
        two_member_group("long", Duration::from_secs(15)).await;
    for partition in 0..2 {
        let offset = to.send(partition, &format!("{{\"slow\":{partition}}}")).await;
        wait_for_commit(&group, &topic, partition, offset + 1, Duration::from_secs(90));
    }
    // Give a spurious redelivery the time to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let [(stop1, t1), (stop2, t2)] = running;
    drop((stop1, stop2));
    let (s1, s2) = (t1.await.expect("join"), t2.await.expect("join"));
    let slow = |rec: &Recorder| rec.slow_calls.load(Ordering::SeqCst);
    assert_eq!((slow(&members[0]), slow(&members[1])), (1, 1), "each member ran its long handler exactly once");
    let seen = |rec: &Recorder| rec.seen.try_lock().expect("loops stopped").len() as u64;
    assert_eq!((s1.processed, s2.processed), (seen(&members[0]), seen(&members[1])), "every handled record counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_assigned_during_a_long_handler_loses_no_record() {
    let TwoMemberGroup { topic, group, members, running, to, owners } =
        two_member_group("midassign", Duration::from_secs(20)).await;

    // The owner of partition 1 starts a long record; then the other member
    // leaves, and the first is assigned partition 0 in the middle of its
    // handler, while a record waits there.
    let (busy, leaving) = (owners[1], owners[0]);
    let slow = to.send(1, r#"{"slow":1}"#).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while members[busy].slow_calls.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the long record did not start in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let [r0, r1] = running;
    let ((stop_leaving, t_leaving), (stop_busy, t_busy)) = if leaving == 0 { (r0, r1) } else { (r1, r0) };
    drop(stop_leaving);
    t_leaving.await.expect("join");
    let quick = to.send(0, r#"{"quick":0}"#).await;

    wait_for_commit(&group, &topic, 0, quick + 1, Duration::from_secs(90));
    wait_for_commit(&group, &topic, 1, slow + 1, Duration::from_secs(90));
    // Give a redelivery of the long record (fetched again from the committed
    // offset after the rebalance) the time to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(stop_busy);
    assert_eq!(t_busy.await.expect("join").dead_lettered, 0);
    assert!(
        members[busy].seen_payload(br#"{"quick":0}"#).await,
        "the record on the partition assigned mid-handler was handled"
    );
    assert_eq!(members[busy].slow_calls.load(Ordering::SeqCst), 1, "the long record ran once");
}
