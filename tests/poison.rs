//! Fault scenario 5 (issue 9): poison and hostile input. Each stage is the
//! real binary, run as a process on the test's own topics and group; it gets
//! a run of bad records and then one good record. Every bad record must end
//! in the DLQ with its reason and its original bytes unchanged (a prefix and
//! the original size for one too large to carry whole), the good record must
//! be processed after them, and the group's committed offset must move past
//! all of them: one bad record never stops the partition.
//!
//! - `preprocess_dead_letters_hostile_requests_and_processes_the_next_one`:
//!   invalid JSON, non-UTF-8 bytes, valid JSON of the wrong schema, a wrong
//!   type, a wrong `v`, a missing object, a bucket outside the allowlist, a
//!   key with `..`, a truncated Parquet file, a file without the configured
//!   columns, a column of nothing but NaN/inf, and a message of 900 kB; then a
//!   CSV with scattered NaN/inf cells, which is cleaned and published.
//! - `trainer_dead_letters_bad_claim_checks_and_trains_the_next_one`: invalid
//!   JSON, a missing object, a checksum mismatch, a key with `..`, a bucket
//!   outside the allowlist, truncated Parquet, Parquet with the wrong columns,
//!   processed data with NaN and inf; then a good claim check (SUCCESS).
//!
//! HTTP `/predict` bodies that are malformed or oversized are covered by
//! `crates/inference/tests/http.rs` (`every_bad_input_gets_a_clear_4xx`,
//! `oversized_bodies_get_413_and_other_media_types_415`) and not repeated here.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use claim_check::{ClaimCheckStore, sha256_hex};
use contracts::topics::dlq_topic;
use contracts::{ClaimCheck, DlqEnvelope, FailureKind, ModelTraining, TrainingData, TrainingStatus, V1};
use dataset::generate::{Spec, traffic};
use flts_tests::*;
use kafka_utils::Producer;
use kafka_utils::dlq::TRUNCATED_PAYLOAD_BYTES;
use rdkafka::message::Message as _;
use serde_json::json;
use series::{Frame, ProcessedMeta, Roles, Scaler, ScalerKind};

use crate::unchecked;
use unchecked::unchecked_parquet;

const RAW: &str = "raw-data";
const PROCESSED: &str = "processed-data";

/// One bad record and what its DLQ envelope must say.
struct Poison {
    name: &'static str,
    payload: Vec<u8>,
    kind: FailureKind,
    code: &'static str,
    /// Substrings the error message must contain.
    says: Vec<String>,
    /// The identifier the envelope must name (when the payload has one).
    identifier: Option<String>,
}

impl Poison {
    fn new(name: &'static str, payload: impl Into<Vec<u8>>, kind: FailureKind, code: &'static str) -> Self {
        Poison { name, payload: payload.into(), kind, code, says: vec![], identifier: None }
    }
    fn says(mut self, text: impl Into<String>) -> Self {
        self.says.push(text.into());
        self
    }
    fn of(mut self, identifier: &str) -> Self {
        self.identifier = Some(identifier.to_string());
        self
    }
}

/// Send every poison keyed `key`, then `good`; returns the offset of each poison.
async fn send_all(producer: &Producer, topic: &str, key: &str, poisons: &[Poison], good: &[u8]) -> Vec<i64> {
    let mut offsets = Vec::new();
    for p in poisons {
        let d = producer.send_bytes(topic, Some(key.as_bytes()), &p.payload, &[]).await.expect(p.name);
        offsets.push(d.offset);
    }
    producer.send_bytes(topic, Some(key.as_bytes()), good, &[]).await.expect("send the good record");
    offsets
}

/// The envelopes on `dlq` match the poisons one to one, in order, with the
/// original bytes (or, for a record too large to carry, their prefix).
fn check_envelopes(dlq: &str, topic: &str, key: &str, service: &str, poisons: &[Poison], offsets: &[i64]) {
    let dead = read_topic(dlq, poisons.len(), Duration::from_secs(120));
    let envs: Vec<DlqEnvelope> = envelopes(&dead);
    assert_eq!(
        envs.len(),
        poisons.len(),
        "{} of {} poison records reached {dlq}: {:?}",
        envs.len(),
        poisons.len(),
        envs.iter().map(|e| (&e.error.code, &e.error.message)).collect::<Vec<_>>()
    );
    for ((p, env), (offset, m)) in poisons.iter().zip(&envs).zip(offsets.iter().zip(&dead)) {
        let name = p.name;
        assert_eq!((env.original_topic.as_str(), env.partition, env.offset), (topic, 0, *offset), "{name}: origin");
        assert_eq!(m.key(), Some(key.as_bytes()), "{name}: the DLQ record is keyed like the original");
        let (k, payload) = kafka_utils::dlq::original_bytes(env).expect("valid base64");
        assert_eq!(k.as_deref(), Some(key.as_bytes()), "{name}: original key");
        match env.payload_truncated_from {
            None => assert!(payload == p.payload, "{name}: the original payload bytes, unchanged"),
            Some(size) => {
                assert_eq!(size, p.payload.len() as u64, "{name}: original size");
                assert_eq!(payload, p.payload[..TRUNCATED_PAYLOAD_BYTES], "{name}: the original's first bytes");
            }
        }
        assert_eq!((env.error.kind, env.error.code.as_str()), (p.kind, p.code), "{name}: {}", env.error.message);
        for s in &p.says {
            assert!(env.error.message.contains(s.as_str()), "{name}: `{s}` not in: {}", env.error.message);
        }
        assert_eq!(env.identifier, p.identifier, "{name}: identifier");
        assert_eq!((env.attempts, env.service.as_str()), (1, service), "{name}: a permanent error is not retried");
        assert!(m.payload().map_or(0, <[u8]>::len) <= kafka_utils::dlq::MAX_ENVELOPE_BYTES, "{name}: envelope fits");
    }
}

/// The stack's store, with the raw-data bucket allowed too.
fn store() -> ClaimCheckStore {
    let mut s3 = stack().s3.clone();
    s3.bucket_allowlist.push(RAW.into());
    ClaimCheckStore::new(&s3)
}

/// Upload a raw input under a fresh prefix; its s3:// URI.
async fn upload_raw(identifier: &str, name: &str, bytes: Vec<u8>) -> String {
    let key = format!("{identifier}/{}/{name}", unique("poison-raw"));
    store().put(RAW, &key, Bytes::from(bytes), "application/octet-stream").await.expect("upload raw input");
    format!("s3://{RAW}/{key}")
}

/// A clean generated CSV (`time` + the generator's columns), lines editable.
fn csv_lines(rows: usize) -> Vec<String> {
    let frame = traffic(&Spec { rows, gap_every: 0, nan_every: 0, ..Default::default() });
    let text = String::from_utf8(dataset::write_raw_csv(&frame, "time")).expect("utf-8");
    text.lines().map(String::from).collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    (lines.join("\n") + "\n").into_bytes()
}

/// Replace column `col` (0 = time) of data line `line` (1 = first row).
fn set(lines: &mut [String], line: usize, col: usize, value: &str) {
    let mut fields: Vec<&str> = lines[line].split(',').collect();
    fields[col] = value;
    lines[line] = fields.join(",");
}

fn request(identifier: &str, input: &str) -> serde_json::Value {
    json!({"v": 1, "identifier": identifier, "input": input, "requested_at": Utc::now()})
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocess_dead_letters_hostile_requests_and_processes_the_next_one() {
    let (requests, training, inference) = (unique("t-poison-req"), unique("t-poison-td"), unique("t-poison-id"));
    for t in [&requests, &training, &inference] {
        create_topic_with_dlq(t, 1).await;
    }
    let dlq = dlq_topic(&requests);
    let key = unique("site-poison");
    let id = |case: &str| format!("{key}-{case}");

    let mut missing_cols = csv_lines(300);
    for l in missing_cols.iter_mut() {
        // Keep `time` and `down` only: the configured targets `up` and `rnti_count` are gone.
        *l = l.split(',').take(2).collect::<Vec<_>>().join(",");
    }
    let mut no_values = csv_lines(300);
    let up = no_values[0].split(',').position(|c| c == "up").expect("an `up` column");
    for (i, v) in ["inf", "-inf", "NaN"].iter().cycle().take(300).enumerate() {
        set(&mut no_values, i + 1, up, v);
    }
    let raw_parquet = {
        let f = traffic(&Spec { rows: 600, gap_every: 0, nan_every: 0, ..Default::default() });
        dataset::write_raw_parquet(&f, "time").expect("raw parquet")
    };
    assert!(raw_parquet.starts_with(b"PAR1"));
    let truncated = raw_parquet[..raw_parquet.len() / 2].to_vec();

    let missing = format!("s3://{RAW}/{}/{}/missing.csv", id("missing"), unique("poison-raw"));
    let mut huge = request(&id("huge"), &format!("s3://{RAW}/{}/missing.csv", id("huge")));
    huge["padding"] = json!("x".repeat(900_000));
    let mut wrong_v = request(&id("v"), &upload_raw(&id("v"), "v.csv", join(&csv_lines(300))).await);
    wrong_v["v"] = json!(2);
    let mut wrong_type = request(&id("type"), "s3://raw-data/x.csv");
    wrong_type["input"] = json!(42);

    let poisons = vec![
        Poison::new("invalid JSON", &b"{\"v\":1,\"identifier\":\"x\",\"input\":"[..], FailureKind::Decode, "decode")
            .says("EOF"),
        Poison::new("not UTF-8", &b"\xff\xfe\x00garbage"[..], FailureKind::Decode, "decode")
            .says("not valid UTF-8 at byte 0"),
        Poison::new(
            "wrong schema (a training-data claim check)",
            bytes(&json!({"v": 1, "identifier": id("schema"), "config_hash": "c", "bucket": PROCESSED,
                "object": "a/b", "size": 1, "sha256": "00"})),
            FailureKind::Decode,
            "decode",
        )
        .says("missing field `input`")
        .of(&id("schema")),
        Poison::new("wrong type", bytes(&wrong_type), FailureKind::Decode, "decode")
            .says("invalid message at `input`")
            .of(&id("type")),
        Poison::new("wrong v", bytes(&wrong_v), FailureKind::Decode, "decode")
            .says("invalid message at `v`: unsupported message version `v` = 2")
            .of(&id("v")),
        Poison::new(
            "missing object",
            bytes(&request(&id("missing"), &missing)),
            FailureKind::Permanent,
            "object_not_found",
        )
        .says(missing.trim_start_matches("s3://"))
        .of(&id("missing")),
        Poison::new(
            "bucket outside the allowlist",
            bytes(&request(&id("bucket"), "s3://not-allowed/x.csv")),
            FailureKind::Permanent,
            "bucket_not_allowed",
        )
        .says("bucket `not-allowed` is not on the allowlist")
        .of(&id("bucket")),
        Poison::new(
            "key with ..",
            bytes(&request(&id("dots"), "s3://raw-data/a/../../processed-data/b.csv")),
            FailureKind::Permanent,
            "invalid_key",
        )
        .says("contains `..`")
        .of(&id("dots")),
        Poison::new(
            "truncated Parquet",
            bytes(&request(&id("trunc"), &upload_raw(&id("trunc"), "raw.parquet", truncated).await)),
            FailureKind::Permanent,
            "bad_input",
        )
        .says("Parquet")
        .of(&id("trunc")),
        Poison::new(
            "wrong columns",
            bytes(&request(&id("cols"), &upload_raw(&id("cols"), "cols.csv", join(&missing_cols)).await)),
            FailureKind::Permanent,
            "bad_data",
        )
        .says("target `up` is not among the input columns")
        .of(&id("cols")),
        Poison::new(
            "a column of nothing but NaN and inf",
            bytes(&request(&id("nan"), &upload_raw(&id("nan"), "nan.csv", join(&no_values)).await)),
            FailureKind::Permanent,
            "bad_data",
        )
        .says("column `up` has no values at all")
        .of(&id("nan")),
        Poison::new("900 kB message", bytes(&huge), FailureKind::Permanent, "object_not_found").of(&id("huge")),
    ];

    // The good one: scattered NaN and inf cells are missing values, filled.
    let mut scattered = csv_lines(1_500);
    for (i, v) in ["NaN", "inf", "-inf", "nan", "+inf"].iter().enumerate() {
        set(&mut scattered, 100 + 97 * i, 1 + i % 3, v);
    }
    let good_id = id("good");
    let good = bytes(&request(&good_id, &upload_raw(&good_id, "good.csv", join(&scattered)).await));

    let producer = Producer::new(&stack().kafka, "poison-test").expect("producer");
    let offsets = send_all(&producer, &requests, &key, &poisons, &good).await;
    let group = unique("g-poison-preprocess");
    let mut cmd = StageProcess::command("preprocess");
    cmd.env("PREPROCESS_REQUESTS_TOPIC", &requests)
        .env("PREPROCESS_GROUP_ID", &group)
        .env("TRAINING_DATA_TOPIC", &training)
        .env("INFERENCE_DATA_TOPIC", &inference)
        .env("TIMESTAMP_COLUMN", "time")
        .env("TARGET_COLUMNS", "down,up,rnti_count")
        .env("HANDLER_MAX_ATTEMPTS", "2")
        .env("HANDLER_BACKOFF_MS", "50")
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let stage = StageProcess::spawn(cmd);

    check_envelopes(&dlq, &requests, &key, "preprocess", &poisons, &offsets);

    // The good request after them was processed: one claim check on each topic.
    let t = read_topic(&training, 1, Duration::from_secs(60));
    let i = read_topic(&inference, 1, Duration::from_secs(10));
    assert_eq!((t.len(), i.len()), (1, 1), "the good request was published after the poison");
    let claim: TrainingData = contracts::decode(t[0].payload().unwrap_or_default()).expect("training-data");
    assert_eq!(claim.identifier, good_id);
    for part in [&claim.train, &claim.test] {
        let (frame, _) = dataset::read_processed(&store().get(part).await.expect("verified get")).expect("parquet");
        assert!(frame.columns.iter().all(|c| c.values.iter().all(|v| v.is_finite())), "NaN/inf were cleaned");
    }
    let bad_ids: Vec<String> = poisons.iter().filter_map(|p| p.identifier.clone()).collect();
    for bad in &bad_ids {
        assert!(store().list(PROCESSED, &format!("{bad}/")).await.expect("list").is_empty(), "{bad}: no outputs");
    }
    wait_for_commit(&group, &requests, 0, offsets.len() as i64 + 1, Duration::from_secs(20));
    assert_eq!(read_topic(&training, 2, Duration::from_secs(2)).len(), 1, "nothing published for a poison record");
    assert!(stage.terminate().success(), "preprocess exits cleanly on SIGTERM");
}

/// A processed (scaled) dataset like preprocess writes it.
struct Processed {
    train: Frame,
    test: Frame,
    meta: ProcessedMeta,
}

fn processed(identifier: &str, rows: usize) -> Processed {
    let spec = Spec { rows, gap_every: 0, nan_every: 0, ..Default::default() };
    let raw = traffic(&spec);
    let names: Vec<String> = raw.columns.iter().map(|c| c.name.clone()).collect();
    let cut = rows * 4 / 5;
    let (train, test) = (raw.slice(0..cut), raw.slice(cut..rows));
    let scaler = Scaler::fit(ScalerKind::MinMax, &train, &names, &[]).expect("fit scaler");
    let roles = Roles {
        timestamp: "timestamp".into(),
        features: names,
        targets: vec!["down".into(), "up".into()],
        interval_ms: spec.interval_ms,
    };
    let meta = ProcessedMeta {
        config_hash: sha256_hex(format!("{identifier}-poison").as_bytes()),
        config: json!({"test": true}),
        scaler: scaler.clone(),
        roles,
        gaps: Vec::new(),
    };
    Processed { train: scaler.transform(&train).expect("scale"), test: scaler.transform(&test).expect("scale"), meta }
}

/// Upload the parts of `p` under `identifier` (train part as `train_bytes`).
async fn claim_checks(identifier: &str, p: &Processed, train_bytes: Vec<u8>) -> TrainingData {
    let s = store();
    let hash = &p.meta.config_hash;
    let put = |name: &str, bytes: Vec<u8>| {
        let (s, key) = (s.clone(), format!("{identifier}/{hash}/{name}"));
        async move { s.put(PROCESSED, &key, Bytes::from(bytes), "application/octet-stream").await.expect("put") }
    };
    let train = put("train.parquet", train_bytes).await;
    let test = put("test.parquet", dataset::write_processed(&p.test, &p.meta).expect("test parquet")).await;
    let scaler = put("scaler.json", p.meta.scaler.to_json().into_bytes()).await;
    TrainingData {
        v: V1,
        identifier: identifier.into(),
        config_hash: hash.clone(),
        train,
        test,
        scaler,
        created_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_dead_letters_bad_claim_checks_and_trains_the_next_one() {
    let (input, events) = (unique("t-poison-training-data"), unique("t-poison-model-training"));
    create_topic_with_dlq(&input, 1).await;
    create_topic_with_dlq(&events, 1).await;
    let dlq = dlq_topic(&input);
    let key = unique("site-poison-train");
    let id = |case: &str| format!("{key}-{case}");

    // A claim check for a dataset of its own per case (own identifier and hash).
    let base = |case: &str| {
        let identifier = id(case);
        async move {
            let p = processed(&identifier, 700);
            let train = dataset::write_processed(&p.train, &p.meta).expect("train parquet");
            (claim_checks(&identifier, &p, train).await, p)
        }
    };
    let enc = |m: &TrainingData| serde_json::to_vec(m).expect("json");

    let (mut missing, _) = base("missing").await;
    missing.train.object = format!("{}/{}/nope.parquet", missing.identifier, missing.config_hash);
    let (mut checksum, _) = base("checksum").await;
    checksum.train.sha256 = "0".repeat(64);
    let (mut dots, _) = base("dots").await;
    dots.train.object = format!("{}/../other/train.parquet", dots.identifier);
    let (mut bucket, _) = base("bucket").await;
    bucket.train.bucket = "not-allowed".into();

    let (mut trunc, p) = base("trunc").await;
    let whole = dataset::write_processed(&p.train, &p.meta).expect("parquet");
    let cut = whole[..whole.len() / 2].to_vec();
    trunc.train = upload_processed(&trunc.identifier, &trunc.config_hash, "train-cut.parquet", cut).await;

    let (mut cols, p) = base("cols").await;
    let mut renamed = p.train.clone();
    let up = renamed.columns.iter_mut().find(|c| c.name == "up").expect("an `up` column");
    up.name = "upload".into(); // the roles still name `up`
    cols.train = upload_processed(
        &cols.identifier,
        &cols.config_hash,
        "train-cols.parquet",
        unchecked_parquet(&renamed, &p.meta),
    )
    .await;

    let (mut nan, p) = base("nan").await;
    let mut bad_values = p.train.clone();
    bad_values.columns[0].values[5] = f64::NAN;
    bad_values.columns[1].values[9] = f64::INFINITY;
    nan.train = upload_processed(
        &nan.identifier,
        &nan.config_hash,
        "train-nan.parquet",
        unchecked_parquet(&bad_values, &p.meta),
    )
    .await;

    let uri = |c: &ClaimCheck| c.uri().trim_start_matches("s3://").to_string();
    let poisons = vec![
        Poison::new("invalid JSON", &b"{\"identifier\": \"x\", oops}"[..], FailureKind::Decode, "decode"),
        Poison::new("missing object", enc(&missing), FailureKind::Permanent, "object_not_found")
            .says(uri(&missing.train))
            .of(&missing.identifier),
        Poison::new("checksum mismatch", enc(&checksum), FailureKind::Permanent, "checksum_mismatch")
            .says(format!("claim check says {}", "0".repeat(64)))
            .of(&checksum.identifier),
        Poison::new("key with ..", enc(&dots), FailureKind::Permanent, "invalid_key")
            .says("contains `..`")
            .of(&dots.identifier),
        Poison::new("bucket outside the allowlist", enc(&bucket), FailureKind::Permanent, "bucket_not_allowed")
            .says("bucket `not-allowed` is not on the allowlist")
            .of(&bucket.identifier),
        Poison::new("truncated Parquet", enc(&trunc), FailureKind::Permanent, "bad_parquet")
            .says("train part")
            .of(&trunc.identifier),
        Poison::new("wrong columns", enc(&cols), FailureKind::Permanent, "bad_parquet")
            .says("train part")
            .says("\"up\" not found")
            .of(&cols.identifier),
        Poison::new("NaN and inf in processed data", enc(&nan), FailureKind::Permanent, "bad_parquet")
            .says("must be finite")
            .of(&nan.identifier),
    ];
    let (good, _) = base("good").await;

    let producer = Producer::new(&stack().kafka, "poison-test").expect("producer");
    let offsets = send_all(&producer, &input, &key, &poisons, &enc(&good)).await;
    let group = unique("g-poison-trainer");
    let mut cmd = StageProcess::command("train-gru");
    cmd.env("TRAINING_DATA_TOPIC", &input)
        .env("MODEL_TRAINING_TOPIC", &events)
        .env("TRAINER_GROUP_ID", &group)
        .env("MLFLOW_EXPERIMENT", unique("exp-poison"))
        .env("HIDDEN_SIZE", "8")
        .env("NUM_LAYERS", "1")
        .env("EPOCHS", "1")
        .env("BATCH_SIZE", "32")
        .env("HANDLER_MAX_ATTEMPTS", "2")
        .env("HANDLER_BACKOFF_MS", "50")
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let stage = StageProcess::spawn(cmd);

    check_envelopes(&dlq, &input, &key, "train-gru", &poisons, &offsets);

    // Then the good claim check trained: its SUCCESS follows a FAILED per
    // decodable poison (eval must not wait for those sets).
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let success = loop {
        let evs: Vec<ModelTraining> = read_topic(&events, usize::MAX, Duration::from_secs(3))
            .iter()
            .map(|m| contracts::decode(m.payload().unwrap_or_default()).expect("model-training event"))
            .collect();
        if let Some(s) =
            evs.iter().find(|e| e.identifier == good.identifier && matches!(e.status, TrainingStatus::Success(_)))
        {
            for p in poisons.iter().filter_map(|p| p.identifier.as_ref()) {
                let failed =
                    evs.iter().find(|e| &e.identifier == p && matches!(e.status, TrainingStatus::Failed { .. }));
                assert!(failed.is_some(), "{p}: a FAILED event");
                assert!(
                    !evs.iter().any(|e| &e.identifier == p && matches!(e.status, TrainingStatus::Success(_))),
                    "{p}: no SUCCESS for a poison record"
                );
            }
            break s.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no SUCCESS for the good claim check within 180 s: {evs:?}");
    };
    assert_eq!(success.config_hash, good.config_hash);
    wait_for_commit(&group, &input, 0, offsets.len() as i64 + 1, Duration::from_secs(20));
    assert!(stage.terminate().success(), "train-gru exits cleanly on SIGTERM");
}

async fn upload_processed(identifier: &str, hash: &str, name: &str, bytes: Vec<u8>) -> ClaimCheck {
    let key = format!("{identifier}/{hash}/{name}");
    store().put(PROCESSED, &key, Bytes::from(bytes), "application/vnd.apache.parquet").await.expect("put")
}
