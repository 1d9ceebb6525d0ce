//! Hostile Kafka records against kafka-utils and the operator CLI, on the real
//! broker (issue 17 items 2, 8 and 11; issue 20's partitioner, metrics and lag).
//!
//! - A record with a 300 kB key and an undecodable value used to stall its
//!   partition (the DLQ envelope was over the producer's 1 MB limit and its
//!   write was retried forever); it is dead-lettered with a bounded envelope
//!   and the next record is processed, with the key limit on and off.
//! - Keys and headers over the consumer's limits are dead-lettered as
//!   `bad_data` before any handler sees them.
//! - Envelopes fit a small producer limit; an envelope refused for good is
//!   replaced by the minimal one at once, never retried.
//! - `flts dlq list/show` print no control character taken from a record, and
//!   `flts dlq replay` refuses a forged `original_topic` and sends the rest
//!   back to the topic its DLQ is named after.
//! - Keys land on the partition the Java client computes (murmur2).
//! - The consumer-lag gauge rises with unconsumed records and falls to 0; a
//!   fresh stage lists the kafka-utils metric families before any record.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use contracts::error::Code;
use contracts::topics::dlq_topic;
use contracts::{DlqEnvelope, DlqError, FailureKind, V1};
use flts_tests::*;
use kafka_utils::consumer::ConsumerArgs;
use kafka_utils::dlq::{self, Written};
use kafka_utils::{Handler, HandlerError, KafkaArgs, Producer, Record, RunSummary};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Decodes every record as a training-data claim check (anything else is a
/// decode error); records the offsets it handled. While `gate` is closed it
/// holds every record.
#[derive(Default)]
struct Decoder {
    seen: Mutex<Vec<i64>>,
    gate_closed: AtomicBool,
    header_names: Mutex<Vec<String>>,
}

impl Handler for Decoder {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        while self.gate_closed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        record.decode::<contracts::TrainingData>()?;
        self.seen.lock().await.push(record.offset);
        self.header_names.lock().await.extend(record.headers.iter().map(|(name, _)| name.clone()));
        Ok(())
    }
}

fn good_record(identifier: &str) -> Vec<u8> {
    let cc = |o: &str| contracts::ClaimCheck { bucket: "b".into(), object: o.into(), size: 1, sha256: "s".into() };
    let td = contracts::TrainingData {
        v: V1,
        identifier: identifier.into(),
        config_hash: "c".into(),
        train: cc("train"),
        test: cc("test"),
        scaler: cc("scaler"),
        created_at: chrono::Utc::now(),
    };
    serde_json::to_vec(&td).expect("encodes")
}

fn fast_args() -> ConsumerArgs {
    ConsumerArgs {
        handler_max_attempts: 2,
        handler_backoff_ms: 10,
        handler_backoff_max_ms: 50,
        commit_interval_ms: 200,
        statistics_interval_ms: 300,
        ..Default::default()
    }
}

/// A consumer loop over `topic` in `group` with `kafka` settings; dropping the
/// guard stops it.
fn start(
    kafka: KafkaArgs,
    topic: &str,
    group: &str,
    args: ConsumerArgs,
    handler: Arc<Decoder>,
) -> (DropGuard, tokio::task::JoinHandle<RunSummary>) {
    start_consumer(kafka, "hostile-test", topic, group, args, handler)
}

/// A bare rdkafka producer (librdkafka defaults: 1,000,000-byte messages).
fn bare_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", stack().kafka.bootstrap().expect("broker"))
        .create()
        .expect("bare producer")
}

async fn send_raw(
    p: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> i64 {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload).partition(0);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    p.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("broker acknowledged").offset
}

/// A record to send as it is: key, payload, headers.
type RawRecord = (Option<Vec<u8>>, Vec<u8>, Option<OwnedHeaders>);

/// Bad records, then a good one: every bad one is dead-lettered, the good one
/// handled, the committed offset passes them all within 60 s (the old DLQ
/// loop retried a too-large envelope forever and never committed).
async fn dead_letter_then_process(
    name: &str,
    kafka: KafkaArgs,
    args: ConsumerArgs,
    bad: Vec<RawRecord>,
) -> (String, Vec<rdkafka::message::OwnedMessage>) {
    let topic = unique(&format!("t-hostile-{name}"));
    create_topic_with_dlq(&topic, 1).await;
    let p = bare_producer();
    let n = bad.len();
    for (key, payload, headers) in bad {
        send_raw(&p, &topic, key.as_deref(), &payload, headers).await;
    }
    let good = send_raw(&p, &topic, Some(b"site-ok"), &good_record("site-ok"), None).await;
    let group = unique(&format!("g-hostile-{name}"));
    let handler = Arc::new(Decoder::default());
    let (stop, task) = start(kafka, &topic, &group, args, handler.clone());
    wait_for_commit(&group, &topic, 0, good + 1, Duration::from_secs(60));
    drop(stop);
    let summary = task.await.expect("join");
    assert_eq!(summary, RunSummary { processed: 1, dead_lettered: n as u64, dropped: 0 });
    assert_eq!(*handler.seen.lock().await, vec![good], "the good record after the bad ones was processed");
    let dlq = read_topic(&dlq_topic(&topic), n, Duration::from_secs(30));
    assert_eq!(dlq.len(), n, "one dead letter per bad record");
    (topic, dlq)
}

/// The bytes librdkafka counts against `message.max.bytes` for a DLQ record.
fn wire_size(m: &rdkafka::message::OwnedMessage) -> usize {
    m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_kb_key_with_an_undecodable_value_is_dead_lettered_and_the_next_record_is_processed() {
    // Issue 17, seen: the envelope carried the key twice (DLQ key, base64) plus
    // the payload, over 1 MB: `MessageSizeTooLarge`, retried every 30 s forever.
    let key = vec![b'k'; 300_000];
    let value = vec![0xff; 300_000];
    let bad = vec![(Some(key.clone()), value.clone(), None)];
    let (topic, dlq) = dead_letter_then_process("bigkey", stack().kafka.clone(), fast_args(), bad).await;
    let env = &envelopes(&dlq)[0];
    assert_eq!(env.original_topic, topic);
    assert_eq!((env.error.kind, env.error.code.as_str()), (FailureKind::Permanent, "bad_data"));
    assert!(env.error.message.contains("300000 bytes") && env.error.message.contains("KAFKA_MAX_KEY_BYTES"));
    assert_eq!(env.key_truncated_from, Some(300_000));
    assert_eq!(env.key_sha256.as_deref(), Some(dlq::sha256_hex(&key).as_str()));
    assert_eq!(dlq[0].key(), Some(dlq::sha256_hex(&key).as_bytes()), "the DLQ record is keyed by the key's hash");
    let (_, payload) = dlq::original_bytes(env).expect("base64");
    assert_eq!(payload, value, "the value still fits whole");
    assert!(wire_size(&dlq[0]) < 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_key_that_the_key_limit_lets_through_still_gets_an_envelope_that_fits() {
    // The key limit raised to 1 MiB: the record reaches the handler, fails to
    // decode, and the envelope itself must be bounded.
    let args = ConsumerArgs { max_key_bytes: 1 << 20, ..fast_args() };
    let key = vec![b'q'; 300_000];
    let value = vec![0xfe; 400_000];
    let bad = vec![(Some(key.clone()), value.clone(), None)];
    let (_, dlq) = dead_letter_then_process("bigkey-open", stack().kafka.clone(), args, bad).await;
    let env = &envelopes(&dlq)[0];
    assert_eq!((env.error.kind, env.error.code.as_str()), (FailureKind::Decode, "decode"));
    assert_eq!(env.key_truncated_from, Some(300_000));
    assert_eq!(env.key_sha256.as_deref(), Some(dlq::sha256_hex(&key).as_str()));
    assert!(wire_size(&dlq[0]) < 1_000_000, "{} bytes", wire_size(&dlq[0]));
    let (_, payload) = dlq::original_bytes(env).expect("base64");
    if let Some(size) = env.payload_truncated_from {
        assert_eq!(size, 400_000);
        assert_eq!(env.payload_sha256.as_deref(), Some(dlq::sha256_hex(&value).as_str()));
        assert_eq!(payload, value[..payload.len()]);
    } else {
        assert_eq!(payload, value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_the_header_limits_are_dead_lettered_as_bad_data_before_the_handler() {
    let many = (0..100)
        .fold(OwnedHeaders::new(), |h, i| h.insert(Header { key: &format!("h{i}"), value: Some(b"v".as_slice()) }));
    let big = OwnedHeaders::new().insert(Header { key: "big", value: Some(vec![b'x'; 20_000].as_slice()) });
    let bad = vec![
        (Some(b"site-h".to_vec()), good_record("site-h"), Some(many)),
        (Some(b"site-h".to_vec()), good_record("site-h"), Some(big)),
    ];
    let (_, dlq) = dead_letter_then_process("headers", stack().kafka.clone(), fast_args(), bad).await;
    let envs = envelopes(&dlq);
    assert!(envs.iter().all(|e| e.error.code == "bad_data" && e.error.kind == FailureKind::Permanent));
    assert!(envs[0].error.message.contains("100 headers"), "{}", envs[0].error.message);
    assert!(envs[1].error.message.contains("KAFKA_MAX_HEADER_BYTES"), "{}", envs[1].error.message);
    assert_eq!(envs[0].identifier.as_deref(), Some("site-h"), "a valid record otherwise, so it names its dataset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_fit_a_small_producer_message_limit() {
    let mut kafka = stack().kafka.clone();
    kafka.message_max_bytes = 20_000;
    let value = vec![0xfd; 200_000];
    let bad = vec![(Some(b"site-small".to_vec()), value.clone(), None)];
    let (_, dlq) = dead_letter_then_process("small", kafka, fast_args(), bad).await;
    let env = &envelopes(&dlq)[0];
    assert!(wire_size(&dlq[0]) <= 20_000, "{} bytes", wire_size(&dlq[0]));
    assert_eq!(env.payload_truncated_from, Some(200_000));
    assert_eq!(env.payload_sha256.as_deref(), Some(dlq::sha256_hex(&value).as_str()));
    let (key, kept) = dlq::original_bytes(env).expect("base64");
    assert_eq!(key.as_deref(), Some(&b"site-small"[..]));
    assert!(!kept.is_empty() && kept == value[..kept.len()], "a prefix of the payload is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_refused_for_good_is_replaced_by_the_minimal_one_without_retrying() {
    // The envelope is built for a 1 MB limit, the producer's is 16 KiB:
    // librdkafka refuses it (MessageSizeTooLarge), which is permanent.
    let topic = unique("t-hostile-minimal");
    create_topic_with_dlq(&topic, 1).await;
    let mut kafka = stack().kafka.clone();
    kafka.message_max_bytes = kafka_utils::config::MIN_MESSAGE_MAX_BYTES;
    let producer = Producer::new(&kafka, "hostile-test").expect("producer");
    let record = Record {
        topic: topic.clone(),
        partition: 0,
        offset: 7,
        key: Some(b"site-min".to_vec()),
        payload: vec![b'p'; 100_000],
        headers: vec![],
    };
    let err = HandlerError::permanent(Code::BadData, "refused");
    let env = dlq::envelope(&record, FailureKind::Permanent, &err, 1, "hostile-test", 1_000_000);
    assert_eq!(env.payload_truncated_from, None, "built whole for the larger limit");
    let started = Instant::now();
    let written =
        dlq::write(&producer, &dlq_topic(&topic), &record, &env, &fast_args(), &CancellationToken::new()).await;
    assert_eq!(written, Written::Minimal);
    assert!(started.elapsed() < Duration::from_secs(10), "no retry loop: {:?}", started.elapsed());
    let got = envelopes(&read_topic(&dlq_topic(&topic), 1, Duration::from_secs(30)));
    assert_eq!(got.len(), 1, "only the minimal envelope reached the DLQ");
    let min = &got[0];
    assert_eq!((min.payload_base64.as_str(), min.payload_truncated_from), ("", Some(100_000)));
    assert_eq!(min.payload_sha256.as_deref(), Some(dlq::sha256_hex(&record.payload).as_str()));
    assert_eq!((min.partition, min.offset, min.identifier.clone()), (0, 7, None));
    assert!(min.error.message.contains("minimal envelope"), "{}", min.error.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_lands_on_the_partition_the_java_client_computes() {
    const PARTITIONS: i32 = 8;
    let topic = unique("t-hostile-murmur2");
    create_topic_with_dlq(&topic, PARTITIONS).await;
    let producer = Producer::new(&stack().kafka, "hostile-test").expect("producer");
    let mut keys: Vec<String> = (0..48).map(|i| format!("site-{i}")).collect();
    // Kafka's own murmur2 test vectors (UtilsTest.testMurmur2).
    keys.extend(["21", "foobar", "a-little-bit-long-string", "a-little-bit-longer-string", "abc"].map(String::from));
    let mut used = std::collections::HashSet::new();
    for key in &keys {
        let d = producer.send_bytes(&topic, Some(key.as_bytes()), b"{}", &[]).await.expect("acknowledged");
        let java = kafka_utils::partitioner::partition_for_key(key.as_bytes(), PARTITIONS).expect("partitions");
        assert_eq!(d.partition, java, "key {key:?}: librdkafka chose {}, the Java client {java}", d.partition);
        used.insert(d.partition);
    }
    assert!(used.len() > 4, "keys spread over the partitions: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_rises_with_unconsumed_records_and_falls_to_zero_after_consumption() {
    let topic = unique("t-hostile-lag");
    create_topic_with_dlq(&topic, 1).await;
    let p = bare_producer();
    for i in 0..20 {
        send_raw(&p, &topic, Some(b"site-lag"), &good_record(&format!("site-lag{i}")), None).await;
    }
    let group = unique("g-hostile-lag");
    let handler = Arc::new(Decoder { gate_closed: AtomicBool::new(true), ..Default::default() });
    let (stop, task) = start(stack().kafka.clone(), &topic, &group, fast_args(), handler.clone());
    let wait_for = |what: &str, ok: &dyn Fn(i64) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lag = kafka_utils::metrics::consumer_lag(&group, &topic, 0);
            if lag.is_some_and(ok) {
                return lag.expect("some");
            }
            assert!(Instant::now() < deadline, "{what}: lag is {lag:?} after 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Nothing committed yet (the first record is held): all 20 are lag.
    assert_eq!(wait_for("lag of the unconsumed records", &|l: i64| l > 0), 20);
    handler.gate_closed.store(false, Ordering::SeqCst);
    wait_for_commit(&group, &topic, 0, 20, Duration::from_secs(60));
    wait_for("lag after consumption", &|l: i64| l == 0);
    drop(stop);
    assert_eq!(task.await.expect("join").processed, 20);
    assert_eq!(kafka_utils::metrics::consumer_lag(&group, &topic, 0), None, "a stopped consumer leaves no series");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_stage_lists_the_kafka_metric_families_before_any_record() {
    let requests = unique("t-hostile-fresh");
    create_topic_with_dlq(&requests, 1).await;
    let [port] = free_ports::<1>();
    let mut cmd = StageProcess::command("preprocess");
    cmd.env("PREPROCESS_REQUESTS_TOPIC", &requests)
        .env("PREPROCESS_GROUP_ID", unique("g-hostile-fresh"))
        .env("TRAINING_DATA_TOPIC", unique("t-hostile-fresh-td"))
        .env("INFERENCE_DATA_TOPIC", unique("t-hostile-fresh-id"))
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("KAFKA_STATISTICS_INTERVAL_MS", "300")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "warn");
    let _stage = StageProcess::spawn(cmd);
    let families = kafka_utils::metrics::FAMILIES;
    assert!(families.len() >= 9 && families.contains(&"flts_kafka_consumer_lag"));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = match client.get(format!("http://127.0.0.1:{port}/metrics")).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if families.iter().all(|f| text.contains(&format!("# TYPE {f} "))) {
            break text;
        }
        let missing: Vec<_> = families.iter().filter(|f| !text.contains(&format!("# TYPE {f} "))).collect();
        assert!(Instant::now() < deadline, "families missing from a fresh stage after 60 s: {missing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let zero = format!("flts_kafka_records_consumed_total{{topic=\"{requests}\"}} 0");
    assert!(text.contains(&zero), "the consumed topic's series is there at zero");
    let lag = format!("topic=\"{requests}\"");
    assert!(text.lines().any(|l| l.starts_with("flts_kafka_consumer_lag{") && l.contains(&lag) && l.ends_with(" 0")));
}

/// A DLQ envelope as an attacker who can write the DLQ (or a consumed topic
/// whose text ends up in the reason) would shape it.
fn forged_envelope(original_topic: &str, offset: i64, text: &str) -> Vec<u8> {
    let env = DlqEnvelope {
        v: V1,
        identifier: Some(format!("site{text}")),
        original_topic: original_topic.into(),
        partition: 0,
        offset,
        key_base64: Some(B64.encode(format!("key{text}"))),
        payload_base64: B64.encode(format!("{{\"identifier\":\"site-forged\",\"x\":\"{text}\"}}")),
        payload_truncated_from: None,
        payload_sha256: None,
        key_truncated_from: None,
        key_sha256: None,
        error: DlqError { kind: FailureKind::Permanent, code: format!("code{text}"), message: format!("reason{text}") },
        attempts: 1,
        service: "preprocess".into(),
        failed_at: chrono::Utc::now(),
    };
    serde_json::to_vec(&env).expect("encodes")
}

/// Escape sequences a terminal acts on: clear screen, set the title, a C1
/// CSI, a bell, DEL, a right-to-left override, a zero-width space.
const HOSTILE_TEXT: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}\u{202e}gnp.exe\u{200b}\r\n";

fn flts(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = StageProcess::command("flts");
    cmd.envs(env.iter().copied()).env("RUST_LOG", "warn").args(args);
    cmd.output().expect("run flts")
}

fn assert_terminal_safe(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{200b}'))
            .collect();
        assert!(bad.is_empty(), "{what} {stream} prints {bad:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flts_dlq_list_and_show_print_no_control_character_from_a_record() {
    let topic = unique("t-hostile-cli");
    create_topic_with_dlq(&topic, 1).await;
    let dlq = dlq_topic(&topic);
    send_raw(&bare_producer(), &dlq, Some(b"k"), &forged_envelope(&topic, 0, HOSTILE_TEXT), None).await;
    let list = flts(&[], &["dlq", "list", "--topic", &dlq]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert_terminal_safe("flts dlq list", &list);
    let shown = String::from_utf8_lossy(&list.stdout);
    assert!(shown.contains("reason\\u001b[2J\\u001b]0;pwned\\u0007\\u009b31m"), "escaped, not dropped:\n{shown}");
    let show = flts(&[], &["dlq", "show", "--topic", &dlq, "--partition", "0", "--offset", "0"]);
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    assert_terminal_safe("flts dlq show", &show);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("\\u202egnp.exe\\u200b"), "payload and key escaped:\n{shown}");
    assert!(shown.contains("original key (") && shown.contains("key\\u001b[2J"), "{shown}");

    // Class 8 on the CLI: record metadata at the edges of its types.
    let mut extreme: DlqEnvelope = serde_json::from_slice(&forged_envelope(&topic, i64::MAX, "")).expect("json");
    extreme.partition = i32::MIN;
    extreme.attempts = u32::MAX;
    extreme.payload_truncated_from = Some(u64::MAX);
    extreme.key_truncated_from = Some(u64::MAX);
    extreme.failed_at = "9999-12-31T23:59:59Z".parse().expect("time");
    send_raw(&bare_producer(), &dlq, Some(b"k"), &serde_json::to_vec(&extreme).expect("encodes"), None).await;
    for args in [
        vec!["dlq", "list", "--topic", &dlq, "--from-offset", "1"],
        vec!["dlq", "show", "--topic", &dlq, "--partition", "0", "--offset", "1"],
        vec!["dlq", "replay", "--topic", &dlq, "--from-offset", "1"],
    ] {
        let out = flts(&[("PREPROCESS_REQUESTS_TOPIC", topic.as_str())], &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert_terminal_safe("flts dlq with extreme metadata", &out);
        if args[1] == "replay" {
            assert!(!out.status.success() && stderr.contains("keeps only the first bytes"), "{stderr}");
        } else {
            assert!(out.status.success(), "{args:?}: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flts_dlq_replay_refuses_a_forged_original_topic_and_sends_the_rest_to_their_own_topic() {
    // This deployment's names for preprocess-requests and model-selected, as
    // the stages and the CLI read them from the environment.
    let requests = unique("t-hostile-req");
    let selected = unique("t-hostile-sel");
    create_topic_with_dlq(&requests, 1).await;
    create_topic_with_dlq(&selected, 1).await;
    let env = [("PREPROCESS_REQUESTS_TOPIC", requests.as_str()), ("MODEL_SELECTED_TOPIC", selected.as_str())];
    let dlq = dlq_topic(&requests);
    let p = bare_producer();
    send_raw(&p, &dlq, Some(b"site-forged"), &forged_envelope(&requests, 0, "-genuine"), None).await;
    send_raw(&p, &dlq, Some(b"site-forged"), &forged_envelope(&selected, 1, "-forged"), None).await;
    let mut truncated: DlqEnvelope = serde_json::from_slice(&forged_envelope(&requests, 2, "-cut")).expect("json");
    truncated.payload_truncated_from = Some(1_000_000);
    let truncated = serde_json::to_vec(&truncated).expect("encodes");
    send_raw(&p, &dlq, Some(b"site-forged"), &truncated, None).await;

    let refused = flts(&env, &["dlq", "replay", "--topic", &dlq, "--execute"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a record claiming to come from {selected} was replayed:\n{stderr}");
    assert!(stderr.contains("claims to come from") && stderr.contains(&selected), "{stderr}");
    // Nothing was sent anywhere: the refusal comes before the first send.
    assert!(read_topic(&selected, 1, Duration::from_secs(3)).is_empty(), "the forged record reached {selected}");
    assert!(read_topic(&requests, 1, Duration::from_secs(3)).is_empty());

    let elsewhere = unique("t-hostile-elsewhere");
    for to in [elsewhere.as_str(), "DLQ-training-data"] {
        let out = flts(&env, &["dlq", "replay", "--topic", &dlq, "--until-offset", "0", "--to", to]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("not a topic a stage consumes"), "--to {to}: {stderr}");
    }
    let cut = flts(&env, &["dlq", "replay", "--topic", &dlq, "--from-offset", "2", "--execute"]);
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(!cut.status.success() && stderr.contains("--payload-file"), "a truncated envelope was replayed: {stderr}");
    let unconsumed = dlq_topic(&unique("t-hostile-nobody"));
    create_topic_with_dlq(&unconsumed[4..], 1).await;
    let out = flts(&env, &["dlq", "replay", "--topic", &unconsumed]);
    assert!(!out.status.success(), "a DLQ of a topic no stage consumes was replayed");

    // Without the forged record, and without --to: back to the DLQ's own topic.
    let ok = flts(&env, &["dlq", "replay", "--topic", &dlq, "--until-offset", "0", "--execute"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let back = read_topic(&requests, 1, Duration::from_secs(30));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].key(), Some(&b"key-genuine"[..]));
    assert!(read_topic(&selected, 1, Duration::from_secs(3)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_that_is_not_utf8_neither_stops_the_loop_nor_is_lost() {
    // rdkafka's header iterator unwraps every name as UTF-8: a record whose
    // header name is not would panic the poll thread (and the stage, on every
    // restart). rdkafka's API takes `&str` names, so add one through librdkafka.
    let headers = OwnedHeaders::new().insert(Header { key: "ok", value: Some(b"1".as_slice()) });
    let name: &[u8] = b"bad\xff\xfename";
    let native = headers.as_borrowed() as *const _ as *mut rdkafka::bindings::rd_kafka_headers_t;
    // SAFETY: `native` is the librdkafka header list `headers` owns, still alive;
    // librdkafka copies the name and value.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_header_add(
            native,
            name.as_ptr().cast(),
            name.len() as isize,
            b"v".as_ptr().cast(),
            1,
        )
    };
    assert_eq!(err, rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    let topic = unique("t-hostile-hdrname");
    create_topic_with_dlq(&topic, 1).await;
    let p = bare_producer();
    let odd = send_raw(&p, &topic, Some(b"site-n"), &good_record("site-n"), Some(headers)).await;
    let good = send_raw(&p, &topic, Some(b"site-n"), &good_record("site-n"), None).await;
    let group = unique("g-hostile-hdrname");
    let handler = Arc::new(Decoder::default());
    let (stop, task) = start(stack().kafka.clone(), &topic, &group, fast_args(), handler.clone());
    wait_for_commit(&group, &topic, 0, good + 1, Duration::from_secs(60));
    drop(stop);
    let summary = task.await.expect("the consumer loop survived the record");
    assert_eq!(summary.processed, 2);
    assert_eq!(*handler.seen.lock().await, vec![odd, good]);
    let names = handler.header_names.lock().await.clone();
    assert!(names.contains(&"bad\u{fffd}\u{fffd}name".to_string()), "the broker kept the name's bytes: {names:?}");
}
