//! Produce and consume throughput of claim-check-sized JSON messages through
//! kafka-utils, side by side with bare rdkafka on the same broker in the same
//! run. Needs the local stack: `scripts/bench kafka` (prints a Markdown table).
//!
//! Both sides use the same librdkafka settings, so the difference is the
//! library's own overhead: for the producer, awaiting each delivery report
//! (both do that); for the consumer, the at-least-once loop (decode, handler,
//! offset store after the handler) against a bare poll/decode/store loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use kafka_utils::admin::{TopicSpec, ensure_topics};
use kafka_utils::consumer::{self, ConsumerArgs, ConsumerSettings};
use kafka_utils::{Handler, HandlerError, KafkaArgs, Producer, Record};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

const MESSAGES: u64 = 20_000;
const IN_FLIGHT: usize = 500;
const ROUNDS: usize = 3;

fn claim_check(i: u64) -> contracts::TrainingData {
    let cc = |name: &str| contracts::ClaimCheck {
        bucket: "processed-data".into(),
        object: format!("site-{}/{}/{name}", i % 50, "ab12".repeat(16)),
        size: 1_234_567 + i,
        sha256: "0f".repeat(32),
    };
    contracts::TrainingData {
        v: contracts::V1,
        identifier: format!("site-{}", i % 50),
        config_hash: "ab12".repeat(16),
        train: cc("train.parquet"),
        test: cc("test.parquet"),
        scaler: cc("scaler.json"),
        created_at: chrono::Utc::now(),
    }
}

fn bare_producer(kafka: &KafkaArgs) -> FutureProducer {
    // The same settings kafka_utils::Producer uses.
    let mut cfg = kafka.client_config("bench-bare").expect("config");
    cfg.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("retries", "2147483647")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "2000")
        .set("message.timeout.ms", "120000")
        .set("compression.type", "lz4")
        .set("linger.ms", "5");
    cfg.create().expect("bare producer")
}

async fn produce_flts(p: &Producer, topic: &str) -> f64 {
    let start = Instant::now();
    let msgs: Vec<_> = (0..MESSAGES).map(claim_check).collect();
    for chunk in msgs.chunks(IN_FLIGHT) {
        let sends = chunk.iter().map(|m| p.send_json(topic, Some(&m.identifier), m));
        for r in join_all(sends).await {
            r.expect("acked");
        }
    }
    MESSAGES as f64 / start.elapsed().as_secs_f64()
}

async fn produce_bare(p: &FutureProducer, topic: &str) -> f64 {
    let start = Instant::now();
    let msgs: Vec<_> = (0..MESSAGES).map(claim_check).collect();
    for chunk in msgs.chunks(IN_FLIGHT) {
        let payloads: Vec<(String, Vec<u8>)> =
            chunk.iter().map(|m| (m.identifier.clone(), serde_json::to_vec(m).expect("json"))).collect();
        let sends = payloads.iter().map(|(k, v)| {
            p.send(FutureRecord::to(topic).key(k.as_str()).payload(v.as_slice()), Duration::from_secs(120))
        });
        for r in join_all(sends).await {
            r.expect("acked");
        }
    }
    MESSAGES as f64 / start.elapsed().as_secs_f64()
}

struct Count(AtomicU64);

impl Handler for Count {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let m: contracts::TrainingData = record.decode()?;
        std::hint::black_box(m);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn consume_flts(kafka: &KafkaArgs, topic: &str, n: u64) -> f64 {
    let handler = Arc::new(Count(AtomicU64::new(0)));
    let cancel = CancellationToken::new();
    let settings = ConsumerSettings {
        service: "bench".into(),
        group_id: format!("bench-flts-{}", unique()),
        topics: vec![topic.into()],
        dlq_topic: None,
        args: ConsumerArgs::default(),
    };
    let producer = Producer::new(kafka, "bench").expect("producer");
    let (k, h, c) = (kafka.clone(), handler.clone(), cancel.clone());
    let start = Instant::now();
    let task = tokio::spawn(async move { consumer::run(&k, settings, producer, h, c).await });
    while handler.0.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    cancel.cancel();
    task.await.expect("join").expect("loop");
    rate
}

fn consume_bare(kafka: &KafkaArgs, topic: &str, n: u64) -> f64 {
    let mut cfg: ClientConfig = kafka.client_config("bench-bare").expect("config");
    cfg.set("group.id", format!("bench-bare-{}", unique()))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = cfg.create().expect("bare consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let start = Instant::now();
    let mut seen = 0;
    while seen < n {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let decoded: contracts::TrainingData = contracts::decode(m.payload().unwrap_or_default()).expect("decode");
            std::hint::black_box(decoded);
            consumer.store_offset_from_message(&m).expect("store");
            seen += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; nothing to do without a broker.
    }
    let kafka = KafkaArgs::plaintext(
        std::env::var("KAFKA_BOOTSTRAP_SERVERS").expect("run via scripts/bench (needs the stack)"),
    );
    let topic = format!("bench-{}", unique());
    ensure_topics(&kafka, &[TopicSpec { name: topic.clone(), partitions: 3, replication: 1, retention_ms: None }])
        .await
        .expect("topic");
    let payload = serde_json::to_vec(&claim_check(0)).expect("json").len();

    let flts = Producer::new(&kafka, "bench").expect("producer");
    let bare = bare_producer(&kafka);
    let (mut pf, mut pb, mut cf, mut cb) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        // Alternate who goes first so warm-up and broker state favour neither.
        if round % 2 == 0 {
            pf.push(produce_flts(&flts, &topic).await);
            pb.push(produce_bare(&bare, &topic).await);
        } else {
            pb.push(produce_bare(&bare, &topic).await);
            pf.push(produce_flts(&flts, &topic).await);
        }
    }
    let total = MESSAGES * 2 * ROUNDS as u64;
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            cf.push(consume_flts(&kafka, &topic, total).await);
            let (k, t) = (kafka.clone(), topic.clone());
            cb.push(tokio::task::spawn_blocking(move || consume_bare(&k, &t, total)).await.expect("join"));
        } else {
            let (k, t) = (kafka.clone(), topic.clone());
            cb.push(tokio::task::spawn_blocking(move || consume_bare(&k, &t, total)).await.expect("join"));
            cf.push(consume_flts(&kafka, &topic, total).await);
        }
    }
    let (pf, pb, cf, cb) = (median(pf), median(pb), median(cf), median(cb));
    println!(
        "payload {payload} bytes, {MESSAGES} messages per produce round, {total} per consume round, median of {ROUNDS} rounds"
    );
    println!();
    println!("| path | kafka-utils msg/s | bare rdkafka msg/s | kafka-utils / bare |");
    println!("|---|---:|---:|---:|");
    println!("| produce (acks=all, idempotent, {IN_FLIGHT} in flight) | {pf:.0} | {pb:.0} | {:.2} |", pf / pb);
    println!("| consume (decode + offset store after handler) | {cf:.0} | {cb:.0} | {:.2} |", cf / cb);
}
