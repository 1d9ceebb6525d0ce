//! The preprocess stage against the real stack (garage, tansu): a generated
//! dataset from S3 in; Parquet, scaler and claim checks out; re-publishing
//! without recomputing; new hashes for new settings; every bad-input case
//! failing with one clear error and publishing nothing; the request service
//! with its DLQ; the one-shot CLI and the local `--once` mode.

use std::time::Duration;

use bytes::Bytes;
use claim_check::{ClaimCheckStore, S3Args, sha256_hex};
use contracts::error::Classified as _;
use contracts::topics::dlq_topic;
use contracts::{FailureKind, InferenceData, PreprocessRequest, TrainingData, V1};
use dataset::generate::{Spec, traffic};
use flts_tests::*;
use kafka_utils::{ConsumerArgs, Producer};
use preprocess::config::canonical_json;
use preprocess::{Job, Preprocessor, Settings};
use rdkafka::message::{Message as _, OwnedMessage};
use serde_json::{Value, json};
use series::{Frame, Scaler};
use tokio_util::sync::CancellationToken;

const BUCKET: &str = "processed-data";
/// Where raw inputs are uploaded (as `flts submit` does).
const RAW: &str = "raw-data";
const TARGETS: [&str; 3] = ["down", "up", "rnti_count"];

/// One test's world: its own output topics and dataset identifier.
struct World {
    training: String,
    inference: String,
    identifier: String,
}

impl World {
    async fn new(name: &str) -> Self {
        let w = World {
            training: unique(&format!("t-{name}-training")),
            inference: unique(&format!("t-{name}-inference")),
            identifier: unique(&format!("site-{name}")),
        };
        create_topic_with_dlq(&w.training, 1).await;
        create_topic_with_dlq(&w.inference, 1).await;
        w
    }

    fn settings(&self, config: Value) -> Settings {
        Settings {
            file: json!({"timestamp_column": "time", "targets": TARGETS}),
            args: config,
            bucket: BUCKET.into(),
            raw_bucket: RAW.into(),
            training_topic: self.training.clone(),
            inference_topic: self.inference.clone(),
            allow_local_inputs: false,
        }
    }

    fn preprocessor(&self, config: Value) -> Preprocessor {
        let producer = Producer::new(&stack().kafka, "preprocess-test").expect("producer");
        Preprocessor::new(self.settings(config), store(), producer)
    }

    fn job(&self, input: &str) -> Job {
        Job {
            identifier: self.identifier.clone(),
            input: input.into(),
            test_input: None,
            overrides: None,
            force: false,
        }
    }

    /// Messages on the output topics (waits for `expected` on each, or `wait`).
    fn published(&self, expected: usize, wait: Duration) -> (Vec<OwnedMessage>, Vec<OwnedMessage>) {
        (read_topic(&self.training, expected, wait), read_topic(&self.inference, expected, wait))
    }
}

/// The stack's S3 settings, with the raw-data bucket allowed too.
fn s3() -> S3Args {
    let mut s3 = stack().s3.clone();
    s3.bucket_allowlist.push(RAW.into());
    s3
}

fn store() -> ClaimCheckStore {
    ClaimCheckStore::new(&s3())
}

/// Upload raw input bytes of dataset `identifier` (under its prefix, as
/// `flts submit` does) and return their s3:// URI.
async fn upload(identifier: &str, name: &str, bytes: Vec<u8>) -> String {
    let key = format!("{identifier}/{}/{name}", unique("test-raw"));
    store().put(RAW, &key, Bytes::from(bytes), "text/csv").await.expect("upload raw input");
    format!("s3://{RAW}/{key}")
}

fn generated(rows: usize) -> Frame {
    traffic(&Spec { rows, ..Default::default() })
}

fn payload<T: serde::de::DeserializeOwned>(m: &OwnedMessage) -> T {
    contracts::decode(m.payload().unwrap_or_default()).expect("a contract message")
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

#[tokio::test]
async fn generated_dataset_from_s3_is_processed_published_and_reused() {
    let w = World::new("pp-gen").await;
    let raw = generated(5_000);
    let csv = dataset::write_raw_csv(&raw, "time");
    let input = upload(&w.identifier, "traffic.csv", csv.clone()).await;
    let pre = w.preprocessor(json!({"calendar_features": true}));

    let o = pre.run_job(&w.job(&input)).await.expect("first run");
    assert!(!o.reused);
    let hash = o.config_hash.clone();
    assert_eq!(hash.len(), 64);
    for (claim, name) in
        [(&o.training.train, "train.parquet"), (&o.training.test, "test.parquet"), (&o.training.scaler, "scaler.json")]
    {
        assert_eq!((claim.bucket.as_str(), claim.object.clone()), (BUCKET, format!("{}/{hash}/{name}", w.identifier)));
    }
    assert_eq!((&o.inference.test, &o.inference.scaler), (&o.training.test, &o.training.scaler));

    // The objects match their claim checks (get verifies; checked here by hand too).
    let mut objects = Vec::new();
    for claim in [&o.training.train, &o.training.test, &o.training.scaler] {
        let bytes = store().get(claim).await.expect("verified get");
        assert_eq!((bytes.len() as u64, sha256_hex(&bytes)), (claim.size, claim.sha256.clone()));
        objects.push(bytes);
    }
    let (train, meta) = dataset::read_processed(&objects[0]).expect("train parquet");
    let (test, test_meta) = dataset::read_processed(&objects[1]).expect("test parquet");
    assert_eq!(meta, test_meta);

    // Metadata: the hash is the SHA-256 of the canonical config, which names the input's checksum.
    assert_eq!(meta.config_hash, hash);
    assert_eq!(sha256_hex(canonical_json(&meta.config).as_bytes()), hash);
    assert_eq!(meta.config["input_sha256"], json!(sha256_hex(&csv)));
    assert_eq!(meta.config["settings"]["timestamp_column"], json!("time"));
    let mut features: Vec<String> = dataset::generate::COLUMNS.map(String::from).to_vec();
    features.extend(["hour_sin", "hour_cos", "dow_sin", "dow_cos"].map(String::from));
    assert_eq!(meta.roles.features, features);
    assert_eq!(meta.roles.targets, TARGETS);
    assert_eq!((meta.roles.timestamp.as_str(), meta.roles.interval_ms), ("timestamp", 120_000));

    // Rows: the generated span, regular, split 80/20 in time order.
    let span = ((raw.timestamps[raw.len() - 1] - raw.timestamps[0]) / 120_000 + 1) as usize;
    let rows = train.len() + test.len();
    assert!(rows <= span && rows + 2 >= span, "{rows} processed rows for a span of {span}");
    assert!((train.len() as f64 / rows as f64 - 0.8).abs() < 0.001, "{} / {rows}", train.len());
    for part in [&train, &test] {
        assert!(part.timestamps.windows(2).all(|p| p[1] - p[0] == 120_000), "regular");
    }
    assert_eq!(test.timestamps[0] - train.timestamps[train.len() - 1], 120_000);

    // Scaled ranges: min-max fitted on train, calendar features passed through.
    for c in &train.columns {
        let (lo, hi) = min_max(&c.values);
        if c.name.ends_with("_sin") || c.name.ends_with("_cos") {
            assert!(lo >= -1.0 && hi <= 1.0, "{}: [{lo}, {hi}]", c.name);
        } else {
            assert!(lo.abs() < 1e-12 && (hi - 1.0).abs() < 1e-12, "{}: [{lo}, {hi}]", c.name);
        }
    }
    for c in &test.columns {
        let (lo, hi) = min_max(&c.values);
        assert!(lo >= -1.0 && hi <= 2.0, "test {} far outside the training range: [{lo}, {hi}]", c.name);
    }

    // The scaler object is the metadata's scaler and inverts back to the raw values.
    let scaler = Scaler::from_json(std::str::from_utf8(&objects[2]).expect("utf-8")).expect("scaler json");
    assert_eq!(scaler, meta.scaler);
    assert_eq!(scaler.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), features);
    let hour = scaler.columns.iter().find(|c| c.name == "hour_sin").expect("hour_sin");
    assert_eq!((hour.offset, hour.scale), (0.0, 1.0));
    let raw_down = raw.column("down").expect("down");
    let mut checked = 0;
    for (i, ts) in train.timestamps.iter().enumerate().step_by(97) {
        if let Ok(j) = raw.timestamps.binary_search(ts) {
            let back = scaler.inverse_value("down", train.column("down").expect("down")[i]).expect("inverse");
            assert!((back - raw_down[j]).abs() <= 1e-6 * raw_down[j].abs(), "row {i}: {back} vs {}", raw_down[j]);
            checked += 1;
        }
    }
    assert!(checked > 30);

    // One claim check on each topic, keyed by identifier.
    let (t, i) = w.published(1, Duration::from_secs(20));
    assert_eq!((t.len(), i.len()), (1, 1));
    assert_eq!(t[0].key(), Some(w.identifier.as_bytes()));
    assert_eq!(i[0].key(), Some(w.identifier.as_bytes()));
    assert_eq!(payload::<TrainingData>(&t[0]), o.training);
    assert_eq!(payload::<InferenceData>(&i[0]), o.inference);

    // Same config, same input: re-published as is, not recomputed.
    let again = pre.run_job(&w.job(&input)).await.expect("second run");
    assert!(again.reused);
    assert_eq!(
        (again.config_hash.as_str(), &again.training, &again.inference),
        (hash.as_str(), &o.training, &o.inference)
    );
    let (t, i) = w.published(2, Duration::from_secs(20));
    assert_eq!((t.len(), i.len()), (2, 2));
    assert_eq!(t[1].payload(), t[0].payload(), "the same claim check again");
    assert_eq!(i[1].payload(), i[0].payload());

    // A changed setting is a new version; forcing recomputes the same one.
    let ffill = w.preprocessor(json!({"calendar_features": true, "clean": {"fill": "ffill"}}));
    let changed = ffill.run_job(&w.job(&input)).await.expect("changed setting");
    assert_ne!(changed.config_hash, hash);
    assert!(!changed.reused);
    let forced = pre.run_job(&Job { force: true, ..w.job(&input) }).await.expect("forced run");
    assert_eq!((forced.config_hash.as_str(), forced.reused), (hash.as_str(), false));
    let listed = store().list(BUCKET, &format!("{}/", w.identifier)).await.expect("list");
    assert_eq!(listed.len(), 8, "two versions of train, test, scaler and manifest: {listed:?}");
}

/// A small clean CSV, edited by `edit` (line index 1 = first data row).
fn csv_with(rows: usize, edit: impl Fn(&mut Vec<String>)) -> Vec<u8> {
    let frame = traffic(&Spec { rows, gap_every: 0, nan_every: 0, ..Default::default() });
    let text = String::from_utf8(dataset::write_raw_csv(&frame, "time")).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    edit(&mut lines);
    (lines.join("\n") + "\n").into_bytes()
}

/// Replace field `col` of CSV line `line`.
fn set_field(lines: &mut [String], line: usize, col: usize, value: &str) {
    let mut fields: Vec<&str> = lines[line].split(',').collect();
    fields[col] = value;
    lines[line] = fields.join(",");
}

#[tokio::test]
async fn each_bad_input_fails_with_one_clear_error_and_publishes_nothing() {
    let w = World::new("pp-bad").await;
    let cases: Vec<(&str, Vec<u8>, Value, String)> = vec![
        (
            "missing column",
            csv_with(200, |_| {}),
            json!({"features": ["down", "upload"], "targets": ["down"]}),
            "column `upload` not found (columns: [\"time\", \"down\", \"up\",".into(),
        ),
        (
            "bad timestamp",
            csv_with(200, |l| set_field(l, 57, 0, "2018-03-28 25:61:00")),
            json!({}),
            "row 57 (line 58), column `time`: cannot parse `2018-03-28 25:61:00` as a timestamp".into(),
        ),
        (
            "non-numeric",
            csv_with(200, |l| set_field(l, 30, 1, "12.5MB")),
            json!({}),
            "row 30 (line 31), column `down`: `12.5MB` is not a number".into(),
        ),
        ("empty file", Vec::new(), json!({}), "the file is empty".into()),
        (
            "too large",
            csv_with(200, |_| {}),
            json!({"max_input_bytes": 1000}),
            "bytes is larger than max_input_bytes = 1000".into(),
        ),
        (
            "too short",
            csv_with(50, |_| {}),
            json!({}),
            "test part: series has 10 rows; one window needs input_len+output_len = 11 (10+1)".into(),
        ),
    ];
    for (case, bytes, config, expected) in cases {
        let identifier = unique("site-bad");
        let input = upload(&identifier, "raw.csv", bytes).await;
        let job = Job { identifier, ..w.job(&input) };
        let err = w.preprocessor(config).run_job(&job).await.expect_err(case);
        let text = err.to_string();
        assert!(text.contains(&expected), "{case}: {text}");
        if !matches!(case, "too short") {
            assert!(text.starts_with(&input), "{case}: the error names the file: {text}");
        }
        assert!(!err.is_retryable(), "{case}");
        let listed = store().list(BUCKET, &format!("{}/", job.identifier)).await.expect("list");
        assert!(listed.is_empty(), "{case}: objects were written: {listed:?}");
    }
    let (t, i) = w.published(1, Duration::from_secs(3));
    assert!(t.is_empty() && i.is_empty(), "a failed run published {} + {} messages", t.len(), i.len());
}

fn cli(w: &World, requests: &str) -> preprocess::Cli {
    preprocess::Cli {
        config: None,
        settings: preprocess::ConfigArgs {
            timestamp_column: Some("time".into()),
            targets: Some(TARGETS.map(String::from).to_vec()),
            ..Default::default()
        },
        input: None,
        test_input: None,
        identifier: None,
        force: false,
        once: false,
        output: None,
        bucket: BUCKET.into(),
        raw_bucket: RAW.into(),
        training_topic: w.training.clone(),
        inference_topic: w.inference.clone(),
        requests_topic: requests.into(),
        group_id: unique("g-preprocess"),
        kafka: stack().kafka.clone(),
        consumer: ConsumerArgs {
            handler_backoff_ms: 50,
            commit_interval_ms: 200,
            session_timeout_ms: 6_000,
            ..Default::default()
        },
        s3: Some(s3()),
        admin: service_kit::admin::AdminArgs { metrics_addr: "127.0.0.1:0".parse().expect("addr") },
    }
}

#[tokio::test]
async fn service_processes_requests_and_dead_letters_bad_ones() {
    let w = World::new("pp-svc").await;
    let requests = unique("t-pp-requests");
    create_topic_with_dlq(&requests, 1).await;
    let (good_id, bad_id) = (unique("site-good"), unique("site-bad"));
    let good = upload(&good_id, "good.csv", dataset::write_raw_csv(&generated(1_500), "time")).await;
    let bad = upload(&bad_id, "bad.csv", csv_with(100, |l| set_field(l, 12, 4, "lots"))).await;
    let producer = Producer::new(&stack().kafka, "preprocess-test").expect("producer");
    for (id, input) in [(&bad_id, &bad), (&good_id, &good)] {
        let req = PreprocessRequest {
            v: V1,
            identifier: id.clone(),
            input: input.clone(),
            test_input: None,
            config: Some(json!({"scaler": "standard"})),
            force: false,
            requested_at: chrono::Utc::now(),
        };
        producer.send_json(&requests, Some(id), &req).await.expect("send request");
    }
    let cancel = CancellationToken::new();
    let task = tokio::spawn(preprocess::run(cli(&w, &requests), cancel.clone()));

    let (t, i) = tokio::task::spawn_blocking({
        let (a, b) = (w.training.clone(), w.inference.clone());
        move || (read_topic(&a, 1, Duration::from_secs(60)), read_topic(&b, 1, Duration::from_secs(10)))
    })
    .await
    .expect("reader");
    assert_eq!((t.len(), i.len()), (1, 1), "one request succeeded");
    let training: TrainingData = payload(&t[0]);
    assert_eq!(training.identifier, good_id);
    let (_, meta) = dataset::read_processed(&store().get(&training.train).await.expect("get")).expect("parquet");
    assert_eq!(meta.scaler.kind, series::ScalerKind::Standard, "the request's override applied");

    let dead = tokio::task::spawn_blocking({
        let dlq = dlq_topic(&requests);
        move || read_topic(&dlq, 1, Duration::from_secs(30))
    })
    .await
    .expect("reader");
    let env = envelopes(&dead);
    assert_eq!(env.len(), 1);
    assert_eq!(env[0].identifier.as_deref(), Some(bad_id.as_str()));
    assert_eq!((env[0].error.kind, env[0].error.code.as_str()), (FailureKind::Permanent, "bad_input"));
    assert!(
        env[0].error.message.contains("row 12 (line 13), column `mcs_down`: `lots` is not a number"),
        "{}",
        env[0].error.message
    );
    assert_eq!(env[0].service, "preprocess");
    assert!(store().list(BUCKET, &format!("{bad_id}/")).await.expect("list").is_empty());

    cancel.cancel();
    task.await.expect("service task").expect("service stopped cleanly");
}

#[tokio::test]
async fn one_shot_cli_with_a_test_file_and_local_once_mode() {
    let w = World::new("pp-cli").await;
    let raw = traffic(&Spec { rows: 2_000, gap_every: 0, ..Default::default() });
    let (train_csv, test_csv) = (
        dataset::write_raw_csv(&raw.slice(0..1_600), "time"),
        dataset::write_raw_csv(&raw.slice(1_600..2_000), "time"),
    );
    let (train_uri, test_uri) = (
        upload(&w.identifier, "train.csv", train_csv.clone()).await,
        upload(&w.identifier, "test.csv", test_csv.clone()).await,
    );
    let mut c = cli(&w, "unused");
    c.input = Some(train_uri);
    c.test_input = Some(test_uri);
    c.identifier = Some(w.identifier.clone());
    preprocess::run(c, CancellationToken::new()).await.expect("one-shot run");
    let (t, _) = w.published(1, Duration::from_secs(20));
    assert_eq!(t.len(), 1);
    let training: TrainingData = payload(&t[0]);
    let (test, meta) = dataset::read_processed(&store().get(&training.test).await.expect("get")).expect("parquet");
    assert_eq!(test.len(), 400, "the test file's rows, all kept");
    assert!(meta.config["test_input_sha256"] == json!(sha256_hex(&test_csv)));

    // --once: local files in, local files out, no broker, no S3.
    let dir = std::env::temp_dir().join(unique("flts-preprocess-once"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("train.csv"), &train_csv).expect("write");
    std::fs::write(dir.join("test.csv"), &test_csv).expect("write");
    let mut c = cli(&w, "unused");
    c.kafka.bootstrap_servers = None;
    c.s3 = None;
    c.once = true;
    c.input = Some(dir.join("train.csv").display().to_string());
    c.test_input = Some(dir.join("test.csv").display().to_string());
    c.output = Some(dir.join("out"));
    preprocess::run(c, CancellationToken::new()).await.expect("--once run");
    let (local_test, local_meta) =
        dataset::read_processed(&std::fs::read(dir.join("out/test.parquet")).expect("read")).expect("parquet");
    assert_eq!((local_test, local_meta.config_hash), (test, meta.config_hash), "same data, same hash, same output");
    let scaler = std::fs::read_to_string(dir.join("out/scaler.json")).expect("scaler.json");
    assert_eq!(Scaler::from_json(&scaler).expect("scaler"), meta.scaler);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A real-looking file submitted with no config at all: the `time` column is
/// found, the first column is the one target, a 195-row hole in 8 of 11
/// columns is filled and listed in `flts.gaps`, outlier settings change only
/// the recorded config (never the data), and a mostly-gap file fails clearly.
#[tokio::test]
async fn defaults_handle_a_real_file_with_a_long_gap() {
    let w = World::new("pp-defaults").await;
    let spec = Spec { rows: 4_000, gap_every: 0, spikes: 5, long_gap: Some((1_500, 195)), ..Default::default() };
    let raw = traffic(&spec);
    let input = upload(&w.identifier, "site.csv", dataset::write_raw_csv(&raw, "time")).await;
    let pre = |config: Value| {
        let producer = Producer::new(&stack().kafka, "preprocess-test").expect("producer");
        Preprocessor::new(Settings { file: json!({}), ..w.settings(config) }, store(), producer)
    };

    let o = pre(json!({})).run_job(&w.job(&input)).await.expect("defaults process the file");
    let (train, meta) = dataset::read_processed(&store().get(&o.training.train).await.expect("get")).expect("train");
    let (test, _) = dataset::read_processed(&store().get(&o.training.test).await.expect("get")).expect("test");
    assert_eq!(meta.config["settings"]["timestamp_column"], Value::Null, "found, not configured");
    assert_eq!(meta.config["settings"]["clean"]["outliers"], json!("auto"));
    assert_eq!(meta.config["format"], json!(preprocess::config::FORMAT_VERSION));
    assert_eq!(meta.roles.timestamp, "timestamp");
    assert_eq!(meta.roles.targets, ["down"], "the first numeric column");
    assert_eq!(meta.roles.features, dataset::generate::COLUMNS);
    assert_eq!(meta.gaps, vec![[raw.timestamps[1_500], raw.timestamps[1_694]]]);
    assert_eq!(train.len() + test.len(), 4_000, "nothing dropped");
    let in_gap = train.timestamps.iter().filter(|t| (raw.timestamps[1_500]..=raw.timestamps[1_694]).contains(t));
    assert_eq!(in_gap.count(), 195);

    // Outliers are the trainers' business: recorded in the config, the data as without them.
    let pinned = pre(json!({"clean": {"outliers": "percentile"}})).run_job(&w.job(&input)).await.expect("percentile");
    assert_ne!(pinned.config_hash, o.config_hash, "another setting, another version");
    let (pinned_train, pinned_meta) =
        dataset::read_processed(&store().get(&pinned.training.train).await.expect("get")).expect("train");
    assert_eq!(pinned_meta.config["settings"]["clean"]["outliers"], json!("percentile"));
    assert_eq!(pinned_train, train, "the spikes are not clipped");
    assert_eq!((pinned_meta.scaler, pinned_meta.gaps), (meta.scaler, meta.gaps));

    // Mostly gap: refused with the numbers, nothing written.
    let id = unique("site-holes");
    let holes = traffic(&Spec { rows: 1_000, gap_every: 0, long_gap: Some((100, 600)), ..Default::default() });
    let input = upload(&id, "holes.csv", dataset::write_raw_csv(&holes, "time")).await;
    let e = pre(json!({})).run_job(&Job { identifier: id.clone(), ..w.job(&input) }).await.expect_err("mostly gap");
    assert_eq!(
        e.to_string(),
        "train part: mostly gap: 600 of 800 rows are in gaps longer than clean.fill_limit = 30; fix the input or \
         raise fill_limit"
    );
    assert!(store().list(BUCKET, &format!("{id}/")).await.expect("list").is_empty());
}
