//! Issue 17, the data side: hostile input cannot crash, stall or steer
//! preprocess and the trainers. Each stage is the real binary, run as a
//! process on the test's own topics and group, with stated operator limits;
//! it gets a run of hostile records, then a good one. Every hostile record
//! must be dead-lettered at once (kind permanent, one attempt) with its
//! original bytes and a reason that names the cause and quotes nothing of an
//! object it refused; the good record must be processed after them, the
//! group's committed offset must pass them all, and the process's peak RSS
//! (VmHWM from /proc/<pid>/status) must stay under the stage's stated budget.
//!
//! Classes (docs/reliability.md, "Hostile input: data"):
//! 1. sizes read from input are trusted (a Parquet footer claiming 10^12 rows,
//!    a row group lying about its rows, too many columns or lines, a claim
//!    check that understates or overstates its object's size);
//! 5. claim checks naming another dataset's objects (another identifier's raw
//!    CSV or processed Parquet, an inference-logs object);
//! 6. request fields raising operator limits (`max_input_bytes`, `max_input_rows`);
//! 8. arithmetic on input (timestamps at the i64 limits, `input_len` or
//!    `output_len` near `usize::MAX`, a column named twice).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use claim_check::{ClaimCheckStore, sha256_hex};
use contracts::topics::dlq_topic;
use contracts::{ClaimCheck, DlqEnvelope, FailureKind, ModelTraining, TrainingData, TrainingStatus, V1};
use dataset::generate::{Spec, traffic};
use flts_tests::*;
use kafka_utils::Producer;
use rdkafka::message::Message as _;
use serde_json::{Value, json};
use series::{Column, Frame, ProcessedMeta, Roles, Scaler, ScalerKind};

use crate::unchecked;
use unchecked::unchecked_parquet;

const RAW: &str = "raw-data";
const PROCESSED: &str = "processed-data";
const LOGS: &str = "inference-logs";
const TRILLION: i64 = 1_000_000_000_000;

/// Peak RSS budgets the stages are held to on any single input (debug
/// builds; the limits below keep every input's decoded size far smaller).
const PREPROCESS_BUDGET: u64 = 128 * 1024 * 1024;
const TRAINER_BUDGET: u64 = 128 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Harness

/// A stage process whose pid is known, for its /proc status.
struct Stage(Child);

impl Stage {
    fn spawn(mut cmd: Command) -> Stage {
        Stage(cmd.spawn().expect("spawn the stage"))
    }

    /// VmHWM: the most resident memory the process has used, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).expect("process status");
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM line");
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().expect("VmHWM in kB") * 1024
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().expect("wait").is_none()
    }

    fn terminate(mut self) -> ExitStatus {
        Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the stage did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One hostile record and what its DLQ envelope must say.
struct Hostile {
    name: &'static str,
    payload: Vec<u8>,
    code: &'static str,
    says: Vec<String>,
    /// Text that must not appear in the envelope (contents of a refused object).
    never: Vec<String>,
    identifier: String,
}

impl Hostile {
    fn new(name: &'static str, payload: Vec<u8>, code: &'static str, identifier: &str) -> Self {
        Hostile { name, payload, code, says: vec![], never: vec![], identifier: identifier.into() }
    }
    fn says(mut self, text: impl Into<String>) -> Self {
        self.says.push(text.into());
        self
    }
    fn never(mut self, text: impl Into<String>) -> Self {
        self.never.push(text.into());
        self
    }
}

/// Send every hostile record keyed `key`, then `good`; the offsets of the hostile ones.
async fn send_all(topic: &str, key: &str, hostile: &[Hostile], good: &[u8]) -> Vec<i64> {
    let producer = Producer::new(&stack().kafka, "hostile-data-test").expect("producer");
    let mut offsets = Vec::new();
    for h in hostile {
        offsets.push(producer.send_bytes(topic, Some(key.as_bytes()), &h.payload, &[]).await.expect(h.name).offset);
    }
    producer.send_bytes(topic, Some(key.as_bytes()), good, &[]).await.expect("send the good record");
    offsets
}

/// The DLQ holds exactly one envelope per hostile record, in order: permanent,
/// one attempt, the original bytes, the expected code and reason.
fn check_envelopes(dlq: &str, topic: &str, service: &str, hostile: &[Hostile], offsets: &[i64]) {
    let dead = read_topic(dlq, hostile.len(), Duration::from_secs(150));
    let envs: Vec<DlqEnvelope> = envelopes(&dead);
    let summary: Vec<_> = envs.iter().map(|e| (&e.error.code, &e.error.message)).collect();
    assert_eq!(envs.len(), hostile.len(), "{} of {} hostile records in {dlq}: {summary:#?}", envs.len(), hostile.len());
    for ((h, env), offset) in hostile.iter().zip(&envs).zip(offsets) {
        let name = h.name;
        let text = serde_json::to_string(env).expect("envelope json");
        assert_eq!((env.original_topic.as_str(), env.offset), (topic, *offset), "{name}: origin");
        let (_, payload) = kafka_utils::dlq::original_bytes(env).expect("valid base64");
        assert!(payload == h.payload, "{name}: the original payload bytes");
        assert_eq!(
            (env.error.kind, env.error.code.as_str()),
            (FailureKind::Permanent, h.code),
            "{name}: {}",
            env.error.message
        );
        for s in &h.says {
            assert!(env.error.message.contains(s.as_str()), "{name}: `{s}` not in: {}", env.error.message);
        }
        for s in &h.never {
            assert!(!text.contains(s.as_str()), "{name}: the envelope quotes `{s}`: {text}");
        }
        assert_eq!(env.identifier.as_deref(), Some(h.identifier.as_str()), "{name}: identifier");
        assert_eq!((env.attempts, env.service.as_str()), (1, service), "{name}: dead-lettered at once");
    }
}

/// The stack's store, with the raw-data bucket allowed too.
fn store() -> ClaimCheckStore {
    let mut s3 = stack().s3.clone();
    s3.bucket_allowlist.push(RAW.into());
    ClaimCheckStore::new(&s3)
}

async fn put(bucket: &str, key: &str, bytes: Vec<u8>) -> ClaimCheck {
    store().put(bucket, key, Bytes::from(bytes), "application/octet-stream").await.expect("upload")
}

/// Upload a raw input under dataset `identifier`'s prefix; its s3:// URI.
async fn upload_raw(identifier: &str, name: &str, bytes: Vec<u8>) -> String {
    put(RAW, &format!("{identifier}/{}/{name}", unique("raw")), bytes).await.uri()
}

fn request(identifier: &str, input: &str, config: Value) -> Vec<u8> {
    let mut r = json!({"v": 1, "identifier": identifier, "input": input, "requested_at": Utc::now()});
    if !config.is_null() {
        r["config"] = config;
    }
    serde_json::to_vec(&r).expect("json")
}

fn traffic_csv(rows: usize) -> Vec<u8> {
    dataset::write_raw_csv(&traffic(&Spec { rows, gap_every: 0, nan_every: 0, ..Default::default() }), "time")
}

/// A free loopback port for a stage's admin server.
fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `bin` against the stack with its admin server on `port`, quick retries,
/// frequent commits and warnings only; the test adds its topics and limits.
fn stage_command(bin: &str, port: u16) -> Command {
    let mut cmd = StageProcess::command(bin);
    cmd.env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("HANDLER_MAX_ATTEMPTS", "2")
        .env("HANDLER_BACKOFF_MS", "50")
        .env("KAFKA_COMMIT_INTERVAL_MS", "200")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

// ---------------------------------------------------------------------------
// A Parquet footer that lies: the Thrift compact protocol, copied field by
// field, with FileMetaData.num_rows (field 3) and each RowGroup.num_rows
// (field 4 -> 3) replaced. Pages and everything else stay as written.

struct Rewrite<'a> {
    b: &'a [u8],
    pos: usize,
    out: Vec<u8>,
}

impl Rewrite<'_> {
    fn byte(&mut self) -> u8 {
        let v = self.b[self.pos];
        self.pos += 1;
        v
    }
    fn varint(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn write_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }
    fn copy_from(&mut self, start: usize) {
        let bytes = self.b[start..self.pos].to_vec();
        self.out.extend_from_slice(&bytes);
    }
    fn structure(&mut self, path: &mut Vec<i16>, rows: (i64, i64)) {
        let mut last = 0i16;
        loop {
            let h = self.byte();
            self.out.push(h);
            if h == 0 {
                return;
            }
            let ty = h & 0x0f;
            let id = if h >> 4 == 0 {
                let start = self.pos;
                let z = self.varint();
                self.copy_from(start);
                ((z >> 1) as i64 ^ -((z & 1) as i64)) as i16
            } else {
                last + i16::from(h >> 4)
            };
            last = id;
            path.push(id);
            let replace = match path.as_slice() {
                [3] => Some(rows.0),
                [4, 3] => Some(rows.1),
                _ => None,
            };
            match replace {
                Some(v) if ty == 6 => {
                    self.varint();
                    self.write_varint(((v << 1) ^ (v >> 63)) as u64);
                }
                _ => self.value(ty, path, rows, false),
            }
            path.pop();
        }
    }
    fn value(&mut self, ty: u8, path: &mut Vec<i16>, rows: (i64, i64), in_list: bool) {
        let start = self.pos;
        match ty {
            1 | 2 if !in_list => {}
            1..=3 => self.pos += 1,
            4..=6 => {
                self.varint();
            }
            7 => self.pos += 8,
            8 => {
                let n = self.varint() as usize;
                self.pos += n;
            }
            9 | 10 => {
                let h = self.byte();
                let size = if h >> 4 == 15 { self.varint() } else { u64::from(h >> 4) };
                self.copy_from(start);
                for _ in 0..size {
                    self.value(h & 0x0f, path, rows, true);
                }
                return;
            }
            11 => {
                let size = self.varint();
                let kv = if size > 0 { self.byte() } else { 0 };
                self.copy_from(start);
                for _ in 0..size {
                    self.value(kv >> 4, path, rows, true);
                    self.value(kv & 0x0f, path, rows, true);
                }
                return;
            }
            12 => return self.structure(path, rows),
            other => panic!("unexpected Thrift type {other}"),
        }
        self.copy_from(start);
    }
}

/// `parquet` with a footer claiming `file_rows` rows and `group_rows` rows in each row group.
fn lying_parquet(parquet: &[u8], file_rows: i64, group_rows: i64) -> Vec<u8> {
    let n = parquet.len();
    let len = u32::from_le_bytes(parquet[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let footer = &parquet[n - 8 - len..n - 8];
    let mut rw = Rewrite { b: footer, pos: 0, out: Vec::new() };
    rw.structure(&mut Vec::new(), (file_rows, group_rows));
    assert_eq!(rw.pos, footer.len(), "the whole footer was copied");
    let mut out = parquet[..n - 8 - len].to_vec();
    out.extend_from_slice(&rw.out);
    out.extend_from_slice(&(rw.out.len() as u32).to_le_bytes());
    out.extend_from_slice(b"PAR1");
    out
}

/// Without the checks, polars itself fails on the lying file: run in a child
/// of this test binary by `the_lying_file_breaks_an_unguarded_reader`.
#[test]
#[ignore = "run as a child process: it fails on purpose"]
fn unguarded_polars_reader() {
    use polars::prelude::{ParquetReader, SerReader};
    let path = std::env::var("HOSTILE_PARQUET").expect("HOSTILE_PARQUET");
    let bytes = std::fs::read(path).expect("read the file");
    let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish();
    println!("polars returned: {:?}", df.map(|d| d.height()));
}

/// The test input is really hostile: polars given the 10^12-row footer
/// does not return a frame. Issue 17 saw an abort on allocation (`memory
/// allocation of 8000000000000 bytes failed`, the crash loop); in this debug
/// build a polars debug assertion panics first (a stage catches that panic
/// and dead-letters the record as `task_failed`, not as bad data). Either way
/// the stage tests below fail without the checks.
#[test]
fn the_lying_file_breaks_an_unguarded_reader() {
    let good =
        dataset::write_raw_parquet(&traffic(&Spec { rows: 600, ..Default::default() }), "time").expect("parquet");
    let path = std::env::temp_dir().join(format!("{}.parquet", unique("hostile")));
    std::fs::write(&path, lying_parquet(&good, TRILLION, TRILLION)).expect("write");
    // The test's name in this binary: its module path without the crate.
    let child = concat!(module_path!(), "::unguarded_polars_reader").split_once("::").expect("a module path").1;
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", child, "--nocapture"])
        .env("HOSTILE_PARQUET", &path)
        .output()
        .expect("run the child");
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "polars read the lying file: {}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.contains("memory allocation of") || stderr.contains("does not match DataFrame height (1000000000000)"),
        "the child failed otherwise: {stderr}"
    );
    // The checked reader refuses the same bytes before decoding.
    let e = dataset::read_raw("f.parquet", &lying_parquet(&good, TRILLION, TRILLION), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("1000000000000 rows is over the limit max_input_rows"), "{e}");
}

// ---------------------------------------------------------------------------
// preprocess

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocess_dead_letters_hostile_data_within_its_memory_budget() {
    let (requests, training, inference) = (unique("t-hd-req"), unique("t-hd-td"), unique("t-hd-id"));
    for t in [&requests, &training, &inference] {
        create_topic_with_dlq(t, 1).await;
    }
    let dlq = dlq_topic(&requests);
    let key = unique("site-hd");
    let id = |case: &str| format!("{key}-{case}");

    let raw_parquet =
        dataset::write_raw_parquet(&traffic(&Spec { rows: 600, ..Default::default() }), "time").expect("parquet");
    let wide = {
        let mut text = String::from("time");
        (0..2000).for_each(|i| text.push_str(&format!(",c{i}")));
        text.push('\n');
        text.into_bytes()
    };
    let long = {
        let mut text = String::from("time,v\n");
        (0..6001).for_each(|i| text.push_str(&format!("{},1\n", 1_522_252_560 + 120 * i)));
        text.into_bytes()
    };
    let victim_csv = b"time,SECRETCOLUMN\n2018-03-28 15:56:00,1\n".to_vec();
    let extreme_ts = {
        let mut text = String::from("time,down\n-9223372036854775807,1\n");
        (0..40).for_each(|i| text.push_str(&format!("{},{i}\n", 1_522_252_560_000i64 + 120_000 * i)));
        text.push_str("9223372036854775807,2\n");
        text.into_bytes()
    };
    let duplicate = {
        let text = String::from_utf8(traffic_csv(300)).expect("utf-8");
        text.replacen(",up,", ",down,", 1).into_bytes()
    };
    let csv_600 = traffic_csv(600);
    let big_csv = traffic_csv(1_200);
    assert!(big_csv.len() > 150_000 && csv_600.len() < 150_000, "{} {}", big_csv.len(), csv_600.len());
    put(LOGS, &format!("{}/20260101/results.jsonl", id("logs")), b"{\"FIRST-LINE-SECRET\": 1}\n".to_vec()).await;
    let victim = upload_raw(&id("victim"), "private.csv", victim_csv).await;
    let logs = format!("s3://{LOGS}/{}/20260101/results.jsonl", id("logs"));

    let hostile = vec![
        // Class 1: sizes read from input.
        Hostile::new(
            "a Parquet footer claiming 10^12 rows",
            request(
                &id("rows"),
                &upload_raw(&id("rows"), "t.parquet", lying_parquet(&raw_parquet, TRILLION, TRILLION)).await,
                Value::Null,
            ),
            "bad_data",
            &id("rows"),
        )
        .says("1000000000000 rows is over the limit max_input_rows = 5000"),
        Hostile::new(
            "a row group claiming 10^12 rows under a footer of 600",
            request(
                &id("rg"),
                &upload_raw(&id("rg"), "rg.parquet", lying_parquet(&raw_parquet, 600, TRILLION)).await,
                Value::Null,
            ),
            "bad_data",
            &id("rg"),
        )
        .says("row group 0 claiming 1000000000000 rows is over the limit max_input_rows"),
        Hostile::new(
            "2001 columns",
            request(&id("wide"), &upload_raw(&id("wide"), "w.csv", wide).await, Value::Null),
            "bad_data",
            &id("wide"),
        )
        .says("2001 columns is over the limit max_input_columns = 1000"),
        Hostile::new(
            "6001 lines",
            request(&id("long"), &upload_raw(&id("long"), "l.csv", long.clone()).await, Value::Null),
            "bad_data",
            &id("long"),
        )
        .says("6001 rows is over the limit max_input_rows = 5000"),
        // Class 6: a request cannot raise an operator limit.
        Hostile::new(
            "config.max_input_bytes 10^15 over MAX_INPUT_BYTES 150000",
            request(
                &id("bytes"),
                &upload_raw(&id("bytes"), "b.csv", big_csv).await,
                json!({"max_input_bytes": 1_000_000_000_000_000u64}),
            ),
            "input_too_large",
            &id("bytes"),
        )
        .says("bytes is larger than max_input_bytes = 150000"),
        Hostile::new(
            "config.max_input_rows and max_decoded_bytes raised",
            request(
                &id("raise"),
                &upload_raw(&id("raise"), "r.csv", long).await,
                json!({"max_input_rows": u64::MAX, "max_decoded_bytes": u64::MAX}),
            ),
            "bad_data",
            &id("raise"),
        )
        .says("6001 rows is over the limit max_input_rows = 5000"),
        // Class 5: objects of another dataset or another bucket.
        Hostile::new(
            "another identifier's raw CSV",
            request(&id("thief"), &victim, Value::Null),
            "bad_data",
            &id("thief"),
        )
        .says("is not under this dataset's prefix s3://raw-data/")
        .never("SECRETCOLUMN"),
        Hostile::new(
            "an inference-logs object as input",
            request(&id("logs"), &logs, Value::Null),
            "bad_data",
            &id("logs"),
        )
        .says("is not under this dataset's prefix s3://raw-data/")
        .never("FIRST-LINE-SECRET"),
        // Class 8: arithmetic on input.
        Hostile::new(
            "timestamps at the i64 limits",
            request(&id("ts"), &upload_raw(&id("ts"), "ts.csv", extreme_ts).await, json!({"timestamp_unit": "ms"})),
            "bad_data",
            &id("ts"),
        )
        .says("row 1 (line 2), column `time`: ")
        .says("ms is outside the years 1 to 9999"),
        Hostile::new(
            "input_len = usize::MAX",
            request(&id("in"), &upload_raw(&id("in"), "in.csv", csv_600.clone()).await, json!({"input_len": u64::MAX})),
            "bad_data",
            &id("in"),
        )
        .says("one window needs input_len+output_len = 18446744073709551615"),
        Hostile::new(
            "output_len = usize::MAX - 1",
            request(
                &id("out"),
                &upload_raw(&id("out"), "out.csv", csv_600.clone()).await,
                json!({"output_len": u64::MAX - 1}),
            ),
            "bad_data",
            &id("out"),
        )
        .says("one window needs input_len+output_len"),
        Hostile::new(
            "a column named twice",
            request(&id("dup"), &upload_raw(&id("dup"), "d.csv", duplicate).await, Value::Null),
            "bad_data",
            &id("dup"),
        )
        .says("column `down` appears more than once in the header"),
    ];
    let good_id = id("good");
    let good = request(&good_id, &upload_raw(&good_id, "good.csv", csv_600).await, Value::Null);
    let offsets = send_all(&requests, &key, &hostile, &good).await;

    let group = unique("g-hd-preprocess");
    let mut cmd = stage_command("preprocess", free_port());
    cmd.env("PREPROCESS_REQUESTS_TOPIC", &requests)
        .env("PREPROCESS_GROUP_ID", &group)
        .env("DLQ_PREPROCESS", &dlq)
        .env("TRAINING_DATA_TOPIC", &training)
        .env("INFERENCE_DATA_TOPIC", &inference)
        .env("TIMESTAMP_COLUMN", "time")
        .env("MAX_INPUT_BYTES", "150000")
        .env("MAX_INPUT_ROWS", "5000")
        .env("MAX_INPUT_COLUMNS", "1000");
    let mut stage = Stage::spawn(cmd);

    check_envelopes(&dlq, &requests, "preprocess", &hostile, &offsets);
    let t = read_topic(&training, 1, Duration::from_secs(60));
    assert_eq!(t.len(), 1, "the good request after them was processed");
    let claim: TrainingData = contracts::decode(t[0].payload().unwrap_or_default()).expect("training-data");
    assert_eq!(claim.identifier, good_id);
    wait_for_commit(&group, &requests, 0, offsets.len() as i64 + 1, Duration::from_secs(20));
    assert_eq!(
        read_topic(&dlq, hostile.len() + 1, Duration::from_secs(3)).len(),
        hostile.len(),
        "no more dead letters"
    );
    assert!(stage.alive(), "preprocess is still running: no input crashed it");
    let peak = stage.peak_rss();
    println!("preprocess peak RSS: {} MiB (budget {} MiB)", peak >> 20, PREPROCESS_BUDGET >> 20);
    assert!(peak < PREPROCESS_BUDGET, "preprocess peak RSS {} MiB over its budget", peak >> 20);
    assert!(stage.terminate().success(), "preprocess exits cleanly on SIGTERM");
}

// ---------------------------------------------------------------------------
// train-gru

/// A processed (scaled) dataset of `features` generated columns.
fn processed(identifier: &str, rows: usize, features: usize) -> (Frame, Frame, ProcessedMeta) {
    let raw = traffic(&Spec { rows, gap_every: 0, nan_every: 0, ..Default::default() });
    let mut columns = raw.columns.clone();
    for i in columns.len()..features {
        columns.push(Column::new(format!("extra{i}"), raw.columns[i % 11].values.clone()));
    }
    columns.truncate(features);
    let frame = Frame::new(raw.timestamps.clone(), columns).expect("frame");
    let names: Vec<String> = frame.column_names().map(String::from).collect();
    let cut = rows * 4 / 5;
    let (train, test) = (frame.slice(0..cut), frame.slice(cut..rows));
    let scaler = Scaler::fit(ScalerKind::MinMax, &train, &names, &[]).expect("scaler");
    let meta = ProcessedMeta {
        config_hash: sha256_hex(format!("{identifier}-hostile").as_bytes()),
        config: json!({"test": true}),
        scaler: scaler.clone(),
        roles: Roles {
            timestamp: "timestamp".into(),
            features: names,
            targets: vec!["down".into()],
            interval_ms: 120_000,
        },
        gaps: Vec::new(),
    };
    (scaler.transform(&train).expect("scale"), scaler.transform(&test).expect("scale"), meta)
}

/// Upload a processed dataset under `owner`'s prefix and return the claim
/// check, with the train part's bytes given by `train_bytes` (default: as written).
async fn claim_checks(owner: &str, rows: usize, features: usize, train_bytes: Option<Vec<u8>>) -> TrainingData {
    let (train, test, meta) = processed(owner, rows, features);
    let hash = meta.config_hash.clone();
    let prefix = format!("{owner}/{hash}");
    let train_bytes = train_bytes.unwrap_or_else(|| dataset::write_processed(&train, &meta).expect("train"));
    TrainingData {
        v: V1,
        identifier: owner.into(),
        config_hash: hash.clone(),
        train: put(PROCESSED, &format!("{prefix}/train.parquet"), train_bytes).await,
        test: put(PROCESSED, &format!("{prefix}/test.parquet"), dataset::write_processed(&test, &meta).expect("test"))
            .await,
        scaler: put(PROCESSED, &format!("{prefix}/scaler.json"), meta.scaler.to_json().into_bytes()).await,
        created_at: Utc::now(),
    }
}

/// `flts_s3_bytes_total{direction="get"}` from a stage's /metrics.
async fn bytes_downloaded(port: u16) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|l| l.starts_with("flts_s3_bytes_total") && l.contains("direction=\"get\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_dead_letters_hostile_claim_checks_within_its_memory_budget() {
    let (input, events) = (unique("t-hd-training-data"), unique("t-hd-model-training"));
    create_topic_with_dlq(&input, 1).await;
    create_topic_with_dlq(&events, 1).await;
    let dlq = dlq_topic(&input);
    let key = unique("site-hd-train");
    let id = |case: &str| format!("{key}-{case}");
    let enc = |m: &TrainingData| serde_json::to_vec(m).expect("json");

    // Class 1: a processed train part whose footer claims 10^12 rows (its
    // claim check matches the lying bytes, so only the reader can refuse it).
    let (t, _, meta) = processed(&id("rows"), 700, 11);
    let lying = lying_parquet(&dataset::write_processed(&t, &meta).expect("parquet"), TRILLION, TRILLION);
    let rows = claim_checks(&id("rows"), 700, 11, Some(lying)).await;
    // A claim check saying 100 bytes for a 64 MiB object, and one claiming 10^12 bytes.
    let mut understated = claim_checks(&id("size"), 700, 11, None).await;
    let big: Vec<u8> = (0..64u32 * 1024 * 1024).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    understated.train = put(PROCESSED, &format!("{}/big/train.parquet", id("size")), big).await;
    understated.train.size = 100;
    let mut overstated = claim_checks(&id("huge"), 700, 11, None).await;
    overstated.train.size = TRILLION as u64;
    // 100 features against MAX_INPUT_COLUMNS 64.
    let wide = claim_checks(&id("wide"), 300, 100, None).await;
    // Class 5: another identifier's objects, and an inference-logs object.
    let victim = claim_checks(&id("victim"), 700, 11, None).await;
    let thief = TrainingData { identifier: id("thief"), ..victim.clone() };
    let mut logs = claim_checks(&id("logs"), 700, 11, None).await;
    logs.scaler =
        put(LOGS, &format!("{}/20260101/results.jsonl", id("logs")), b"{\"FIRST-LINE-SECRET\":1}\n".to_vec()).await;
    // A claim check whose config_hash is not the one its Parquet carries.
    let mut rehashed = claim_checks(&id("hash"), 700, 11, None).await;
    rehashed.config_hash = sha256_hex(b"someone else's config");
    // Class 8: processed timestamps at i64::MAX (written without the writer's checks).
    let (mut t, _, meta) = processed(&id("ts"), 700, 11);
    let n = t.timestamps.len();
    t.timestamps[n - 1] = i64::MAX;
    let ts = claim_checks(&id("ts"), 700, 11, Some(unchecked_parquet(&t, &meta))).await;

    let hostile = vec![
        Hostile::new("a processed part claiming 10^12 rows", enc(&rows), "bad_data", &rows.identifier)
            .says("train part: processed Parquet: 1000000000000 rows is over the limit max_input_rows"),
        Hostile::new(
            "a claim check of 100 bytes for 64 MiB",
            enc(&understated),
            "size_mismatch",
            &understated.identifier,
        )
        .says("has 67108864 bytes, claim check says 100"),
        Hostile::new("a claim check of 10^12 bytes", enc(&overstated), "object_too_large", &overstated.identifier)
            .says("is 1000000000000 bytes, over the limit of 33554432 bytes"),
        Hostile::new("100 columns", enc(&wide), "bad_data", &wide.identifier)
            .says("101 columns is over the limit max_input_columns = 64"),
        Hostile::new("another identifier's Parquet", enc(&thief), "bad_data", &thief.identifier)
            .says("train part: s3://processed-data/")
            .says("is not under this dataset's prefix"),
        Hostile::new("an inference-logs object", enc(&logs), "bad_data", &logs.identifier)
            .says("scaler part: s3://inference-logs/")
            .never("FIRST-LINE-SECRET"),
        Hostile::new(
            "a config_hash its Parquet does not carry",
            enc(&rehashed),
            "config_hash_mismatch",
            &rehashed.identifier,
        )
        .says("the claim check says"),
        Hostile::new("a timestamp at i64::MAX", enc(&ts), "bad_data", &ts.identifier)
            .says("9223372036854775807 ms is outside the years 1 to 9999"),
    ];
    let good = claim_checks(&id("good"), 700, 11, None).await;
    let offsets = send_all(&input, &key, &hostile, &enc(&good)).await;

    let group = unique("g-hd-trainer");
    let port = free_port();
    let mut cmd = stage_command("train-gru", port);
    cmd.env("TRAINING_DATA_TOPIC", &input)
        .env("MODEL_TRAINING_TOPIC", &events)
        .env("DLQ_MODEL_TRAINING", &dlq)
        .env("TRAINER_GROUP_ID", &group)
        .env("MLFLOW_EXPERIMENT", unique("exp-hd"))
        .env("MAX_OBJECT_BYTES", (32u64 << 20).to_string())
        .env("MAX_INPUT_COLUMNS", "64")
        .env("HIDDEN_SIZE", "8")
        .env("NUM_LAYERS", "1")
        .env("EPOCHS", "1")
        .env("BATCH_SIZE", "32");
    let mut stage = Stage::spawn(cmd);

    check_envelopes(&dlq, &input, "train-gru", &hostile, &offsets);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let evs: Vec<ModelTraining> = read_topic(&events, usize::MAX, Duration::from_secs(3))
            .iter()
            .map(|m| contracts::decode(m.payload().unwrap_or_default()).expect("model-training event"))
            .collect();
        if evs.iter().any(|e| e.identifier == good.identifier && matches!(e.status, TrainingStatus::Success(_))) {
            assert!(
                !evs.iter().any(|e| e.identifier == victim.identifier),
                "no event names the dataset whose objects were borrowed"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no SUCCESS for the good claim check within 180 s: {evs:?}");
    }
    wait_for_commit(&group, &input, 0, offsets.len() as i64 + 1, Duration::from_secs(20));
    assert_eq!(
        read_topic(&dlq, hostile.len() + 1, Duration::from_secs(3)).len(),
        hostile.len(),
        "no more dead letters"
    );
    assert!(stage.alive(), "train-gru is still running: no input crashed it");
    // The 64 MiB object was refused from its declared size, not downloaded:
    // everything this stage fetched (the good set's three parts, a few
    // refused small ones) is far below it.
    let fetched = bytes_downloaded(port).await;
    println!("train-gru downloaded {} KiB in all", fetched >> 10);
    assert!(fetched < 8 << 20, "train-gru downloaded {fetched} bytes");
    let peak = stage.peak_rss();
    println!("train-gru peak RSS: {} MiB (budget {} MiB)", peak >> 20, TRAINER_BUDGET >> 20);
    assert!(peak < TRAINER_BUDGET, "train-gru peak RSS {} MiB over its budget", peak >> 20);
    assert!(stage.terminate().success(), "train-gru exits cleanly on SIGTERM");
}
