//! Produce and consume throughput of claim-check-sized JSON messages through
//! kafka-utils, side by side with bare rdkafka on the same broker in the same
//! run. Needs the local stack: `scripts/bench kafka` (prints a Markdown table).
//!
//! Like with like: the bare producer is built from the same
//! [`kafka_utils::producer_config`] (acks=all, idempotence, lz4, linger 5 ms)
//! and sends the same bytes (the JSON encoded in the timed loop, the same key
//! and the same two headers kafka-utils adds); both await every delivery, with
//! the same number of sends in flight. The bare consumer polls with the same
//! group settings as the kafka-utils loop, decodes the same contract and
//! stores the offset after it, one record at a time. So the ratio is the
//! library's own overhead: its resend bookkeeping on the produce side, the
//! handler, keepalive and metrics plumbing on the consume side.
//!
//! Rounds alternate which side goes first and the table shows the median, so
//! a noisy neighbour on the shared machine hurts both sides alike. Consume
//! rates count from the first record to the last (group join excluded); every
//! consume run is a new group reading the whole consume topic from the start.
//!
//! The consume rounds read the records the produce rounds wrote, headers
//! and all, as a stage reads its topic. That needs the local stack's index on
//! tansu's `header` table (`scripts/stack`, `index_tansu_headers`): without it
//! tansu 0.6.0 scans every header stored on the broker for each record it
//! serves, and a fetch of these 200,000 records stalls for minutes
//! (docs/benchmarks.md, "## Kafka").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use kafka_utils::admin::{TopicSpec, ensure_topics};
use kafka_utils::consumer::{self, ConsumerArgs, ConsumerSettings};
use kafka_utils::{Handler, HandlerError, KafkaArgs, Producer, Record, producer_config};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

/// Messages per produce run.
const MESSAGES: u64 = 20_000;
/// Records every consume run reads: all the produce rounds wrote.
const CONSUME_MESSAGES: u64 = 2 * ROUNDS as u64 * MESSAGES;
const IN_FLIGHT: usize = 500;
const ROUNDS: usize = 5;
const PARTITIONS: i32 = 3;

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

/// One timed run: messages and seconds.
#[derive(Clone, Copy)]
struct Run {
    msgs: u64,
    secs: f64,
}

impl Run {
    fn rate(self) -> f64 {
        self.msgs as f64 / self.secs
    }
}

async fn produce_flts(p: &Producer, topic: &str) -> Run {
    let msgs: Vec<_> = (0..MESSAGES).map(claim_check).collect();
    let start = Instant::now();
    for chunk in msgs.chunks(IN_FLIGHT) {
        let sends = chunk.iter().map(|m| p.send_json(topic, Some(&m.identifier), m));
        for r in join_all(sends).await {
            r.expect("acked");
        }
    }
    Run { msgs: MESSAGES, secs: start.elapsed().as_secs_f64() }
}

async fn produce_bare(p: &FutureProducer, topic: &str) -> Run {
    let headers = OwnedHeaders::new_with_capacity(2)
        .insert(Header { key: "content-type", value: Some("application/json") })
        .insert(Header { key: "flts-service", value: Some("bench") });
    let msgs: Vec<_> = (0..MESSAGES).map(claim_check).collect();
    let start = Instant::now();
    for chunk in msgs.chunks(IN_FLIGHT) {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|m| serde_json::to_vec(m).expect("json")).collect();
        let sends = chunk.iter().zip(&payloads).map(|(m, v)| {
            let record =
                FutureRecord::to(topic).key(m.identifier.as_str()).payload(v.as_slice()).headers(headers.clone());
            p.send(record, Duration::from_secs(120))
        });
        for r in join_all(sends).await {
            r.expect("acked");
        }
    }
    Run { msgs: MESSAGES, secs: start.elapsed().as_secs_f64() }
}

/// Counts records and notes when the first and the latest arrived.
struct Count {
    seen: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Handler for Count {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let m: contracts::TrainingData = record.decode()?;
        std::hint::black_box(m);
        let now = Instant::now();
        self.first.lock().expect("lock").get_or_insert(now);
        *self.last.lock().expect("lock") = Some(now);
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn consume_flts(kafka: &KafkaArgs, topic: &str, n: u64) -> Run {
    let handler = Arc::new(Count { seen: AtomicU64::new(0), first: Mutex::new(None), last: Mutex::new(None) });
    let cancel = CancellationToken::new();
    let settings = ConsumerSettings {
        service: "bench".into(),
        group_id: format!("bench-flts-{}", unique()),
        topics: vec![topic.into()],
        args: ConsumerArgs::default(),
    };
    let producer = Producer::new(kafka, "bench").expect("producer");
    let (k, h, c) = (kafka.clone(), handler.clone(), cancel.clone());
    let task = tokio::spawn(async move { consumer::run(&k, settings, producer, h, c).await });
    let mut progress = Progress::new("kafka-utils", n);
    while handler.seen.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
        progress.tick(handler.seen.load(Ordering::Relaxed));
    }
    cancel.cancel();
    task.await.expect("join").expect("loop");
    let first = handler.first.lock().expect("lock").expect("records seen");
    let last = handler.last.lock().expect("lock").expect("records seen");
    Run { msgs: n - 1, secs: (last - first).as_secs_f64() }
}

fn consume_bare(kafka: &KafkaArgs, topic: &str, n: u64) -> Run {
    // The group settings consumer::run uses.
    let defaults = ConsumerArgs::default();
    let mut cfg: ClientConfig = kafka.client_config("bench-bare").expect("config");
    cfg.set("group.id", format!("bench-bare-{}", unique()))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", defaults.commit_interval_ms.to_string())
        .set("auto.offset.reset", "earliest")
        .set("max.poll.interval.ms", defaults.max_poll_interval_ms.to_string())
        .set("session.timeout.ms", defaults.session_timeout_ms.to_string())
        .set("partition.assignment.strategy", "range,roundrobin");
    let consumer: BaseConsumer = cfg.create().expect("bare consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = 0;
    let mut first = None;
    let mut last = Instant::now();
    let mut progress = Progress::new("bare", n);
    while seen < n {
        progress.tick(seen);
        let polled = consumer.poll(Duration::from_millis(200));
        if let Some(Err(e)) = &polled {
            eprintln!("  bare consumer: poll error: {e}");
        }
        if let Some(Ok(m)) = polled {
            let decoded: contracts::TrainingData = contracts::decode(m.payload().unwrap_or_default()).expect("decode");
            std::hint::black_box(decoded);
            consumer.store_offset_from_message(&m).expect("store");
            last = Instant::now();
            first.get_or_insert(last);
            seen += 1;
        }
    }
    Run { msgs: n - 1, secs: (last - first.expect("records seen")).as_secs_f64() }
}

/// A line on stderr every 10 s while a consume run is under way.
struct Progress {
    who: &'static str,
    of: u64,
    next: Instant,
}

impl Progress {
    fn new(who: &'static str, of: u64) -> Self {
        Progress { who, of, next: Instant::now() + Duration::from_secs(10) }
    }

    fn tick(&mut self, seen: u64) {
        if Instant::now() >= self.next {
            eprintln!("  {} consumer: {seen} of {} records", self.who, self.of);
            self.next += Duration::from_secs(10);
        }
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn median(runs: &[Run]) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(|r| r.rate()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spread(runs: &[Run]) -> String {
    let v: Vec<f64> = runs.iter().map(|r| r.rate()).collect();
    let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    format!("{lo:.0}-{hi:.0}")
}

async fn create_topic(kafka: &KafkaArgs, prefix: &str) -> String {
    let topic = format!("{prefix}-{}", unique());
    let spec = TopicSpec { name: topic.clone(), partitions: PARTITIONS, replication: 1, retention_ms: None };
    ensure_topics(kafka, &[spec]).await.expect("topic");
    topic
}

/// Delete `topic` (a long-used local broker slows down with every record it holds).
async fn delete_topic(kafka: &KafkaArgs, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config("bench-admin").expect("config").create().expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    for result in admin.delete_topics(&[topic], &opts).await.expect("delete topics") {
        result.expect("topic deleted");
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; nothing to do without a broker.
    }
    let kafka = KafkaArgs::plaintext(
        std::env::var("KAFKA_BOOTSTRAP_SERVERS").expect("run via scripts/bench (needs the stack)"),
    );
    let payload = serde_json::to_vec(&claim_check(0)).expect("json").len();
    let flts = Producer::new(&kafka, "bench").expect("producer");
    let bare: FutureProducer = producer_config(&kafka, "bench-bare").expect("config").create().expect("bare producer");
    let (mut pf, mut pb, mut cf, mut cb) = (vec![], vec![], vec![], vec![]);

    let topic = create_topic(&kafka, "bench-produce").await;
    for round in 0..ROUNDS {
        // Alternate who goes first so warm-up and broker state favour neither.
        if round % 2 == 0 {
            pf.push(produce_flts(&flts, &topic).await);
            pb.push(produce_bare(&bare, &topic).await);
        } else {
            pb.push(produce_bare(&bare, &topic).await);
            pf.push(produce_flts(&flts, &topic).await);
        }
        eprintln!("produce round {round}: kafka-utils {:.0}/s, bare {:.0}/s", pf[round].rate(), pb[round].rate());
    }
    for round in 0..ROUNDS {
        let bare_run =
            |k: KafkaArgs, t: String| tokio::task::spawn_blocking(move || consume_bare(&k, &t, CONSUME_MESSAGES));
        if round % 2 == 0 {
            cf.push(consume_flts(&kafka, &topic, CONSUME_MESSAGES).await);
            cb.push(bare_run(kafka.clone(), topic.clone()).await.expect("join"));
        } else {
            cb.push(bare_run(kafka.clone(), topic.clone()).await.expect("join"));
            cf.push(consume_flts(&kafka, &topic, CONSUME_MESSAGES).await);
        }
        eprintln!("consume round {round}: kafka-utils {:.0}/s, bare {:.0}/s", cf[round].rate(), cb[round].rate());
    }
    delete_topic(&kafka, &topic).await;

    let mb = |rate: f64| rate * payload as f64 / 1e6;
    println!(
        "payload {payload} bytes of JSON (+ key, 2 headers), {PARTITIONS} partitions, {MESSAGES} messages \
         per produce run, all {CONSUME_MESSAGES} per consume run, median of {ROUNDS} runs (range in brackets)"
    );
    println!();
    println!("| path | kafka-utils msg/s | bare rdkafka msg/s | kafka-utils MB/s | bare MB/s | kafka-utils / bare |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, f, b) in [
        (format!("produce (acks=all, idempotent, lz4, {IN_FLIGHT} in flight)"), &pf, &pb),
        ("consume (decode, offset stored after each record)".to_string(), &cf, &cb),
    ] {
        let (mf, mbare) = (median(f), median(b));
        println!(
            "| {name} | {mf:.0} ({}) | {mbare:.0} ({}) | {:.1} | {:.1} | {:.2} |",
            spread(f),
            spread(b),
            mb(mf),
            mb(mbare),
            mf / mbare
        );
    }
}
