//! A whole pipeline of real stage processes on the local stack, on topics,
//! groups and an MLflow experiment of its own (tests/pipeline.rs and the
//! fault tests).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use contracts::DlqEnvelope;
use contracts::topics::dlq_topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message as _, OwnedMessage};

use claim_check::S3Args;
use kafka_utils::KafkaArgs;

use crate::{StageProcess, create_topic_with_dlq_on, envelopes, read_topic_from, repo_root, stack, unique};

/// Every stage binary of the topology, in pipeline order.
pub fn stages() -> impl Iterator<Item = &'static str> {
    contracts::topology::STAGES.iter().map(|s| s.name)
}

/// Every topic and group of one pipeline run, unique to it.
pub struct World {
    pub id: String,
    pub requests: String,
    pub training_data: String,
    pub inference_data: String,
    pub model_training: String,
    pub model_selected: String,
    pub performance_eval: String,
    /// Where the monitor publishes drift events.
    pub model_drift: String,
    /// The DLQs named by flags: preprocess's, the trainers' and eval's.
    pub dlq_preprocess: String,
    pub dlq_trainers: String,
    pub dlq_eval: String,
    pub experiment: String,
    /// The stack its stages talk to.
    pub stack: StackEnv,
}

impl World {
    /// A world on the shared stack.
    pub async fn new() -> Self {
        World::on(StackEnv::shared()).await
    }

    /// A world on `stack` (e.g. a [`PrivateStack`]'s).
    pub async fn on(stack: StackEnv) -> Self {
        let t = |name: &str| unique(&format!("t-pipe-{name}"));
        let w = World {
            stack,
            id: unique("site-pipe"),
            requests: t("requests"),
            training_data: t("training-data"),
            inference_data: t("inference-data"),
            model_training: t("model-training"),
            model_selected: t("model-selected"),
            performance_eval: t("performance-eval"),
            model_drift: t("model-drift"),
            dlq_preprocess: String::new(),
            dlq_trainers: String::new(),
            dlq_eval: String::new(),
            experiment: unique("flts-tests-pipeline"),
        };
        // Each stage dead-letters into DLQ-<the topic it consumed>, as in production.
        let w = World {
            dlq_preprocess: dlq_topic(&w.requests),
            dlq_trainers: dlq_topic(&w.training_data),
            dlq_eval: dlq_topic(&w.model_training),
            ..w
        };
        for topic in [&w.requests, &w.training_data, &w.inference_data, &w.model_training, &w.model_selected] {
            create_topic_with_dlq_on(&w.stack.kafka, topic, 2).await;
        }
        create_topic_with_dlq_on(&w.stack.kafka, &w.performance_eval, 1).await;
        create_topic_with_dlq_on(&w.stack.kafka, &w.model_drift, 1).await;
        w
    }

    /// A stage binary with the stack's env and this world's topics, groups and
    /// small-but-real model settings. The consumer groups are the world's, so a
    /// restarted stage resumes from what it committed.
    pub fn stage(&self, bin: &str) -> StageProcess {
        self.stage_with(bin, &[])
    }

    /// [`World::stage`] with extra env on top (it wins over the defaults).
    pub fn stage_with(&self, bin: &str, extra: &[(&str, &str)]) -> StageProcess {
        let mut cmd = StageProcess::command(bin);
        cmd.envs(self.stack.vars.iter().map(|(k, v)| (k, v)))
            .env("PREPROCESS_REQUESTS_TOPIC", &self.requests)
            .env("TRAINING_DATA_TOPIC", &self.training_data)
            .env("INFERENCE_DATA_TOPIC", &self.inference_data)
            .env("MODEL_TRAINING_TOPIC", &self.model_training)
            .env("MODEL_SELECTED_TOPIC", &self.model_selected)
            .env("PERFORMANCE_EVAL_TOPIC", &self.performance_eval)
            .env("MODEL_DRIFT_TOPIC", &self.model_drift)
            .env("PREPROCESS_GROUP_ID", format!("{}-preprocess", self.id))
            .env("TRAINER_GROUP_ID", format!("{}-{bin}", self.id))
            .env("EVAL_GROUP_ID", format!("{}-eval", self.id))
            .env("INFERENCE_GROUP_ID", format!("{}-inference", self.id))
            .env("MONITOR_GROUP_ID", format!("{}-monitor", self.id))
            .env("INFERENCE_INSTANCE_ID", "test")
            .env("INFERENCE_IDENTIFIERS", &self.id)
            .env("HTTP_ADDR", "127.0.0.1:0")
            .env("MLFLOW_EXPERIMENT", &self.experiment)
            .env("HIDDEN_SIZE", "16")
            .env("NUM_LAYERS", "1")
            .env("EPOCHS", "3")
            .env("BATCH_SIZE", "32")
            .env("LEARNING_RATE", "0.005")
            .env("HANDLER_MAX_ATTEMPTS", "2")
            .env("HANDLER_BACKOFF_MS", "100")
            .env("KAFKA_SESSION_TIMEOUT_MS", super::SESSION_TIMEOUT_MS.to_string())
            .env("KAFKA_COMMIT_INTERVAL_MS", "200")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .envs(extra.iter().copied());
        StageProcess::spawn_logged(cmd)
    }

    /// Submit `csv` through `flts submit` with the preprocess config
    /// overrides `config` (JSON), written next to it.
    pub fn submit(&self, csv: &Path, config: &str) {
        self.submit_as(&self.id, csv, config);
    }

    /// [`World::submit`] as another dataset `identifier` (same topics).
    pub fn submit_as(&self, identifier: &str, csv: &Path, config: &str) {
        let config_file = csv.with_extension(format!("{}.json", unique("config")));
        std::fs::write(&config_file, config).expect("write config");
        let (csv, config_file) = (csv.to_str().expect("utf-8 path"), config_file.to_str().expect("utf-8 path"));
        self.flts(&["submit", "--identifier", identifier, "--input", csv, "--config", config_file]);
    }

    /// The `flts` CLI binary with the stack's env and this world's topics.
    pub fn flts(&self, args: &[&str]) -> String {
        let mut cmd = StageProcess::command("flts");
        cmd.envs(self.stack.vars.iter().map(|(k, v)| (k, v)))
            .env("PREPROCESS_REQUESTS_TOPIC", &self.requests)
            .env("TRAINING_DATA_TOPIC", &self.training_data)
            .env("INFERENCE_DATA_TOPIC", &self.inference_data)
            .env("MODEL_TRAINING_TOPIC", &self.model_training)
            .env("MODEL_SELECTED_TOPIC", &self.model_selected)
            .env("PERFORMANCE_EVAL_TOPIC", &self.performance_eval)
            .env("RUST_LOG", "warn")
            .args(args);
        run_ok(cmd)
    }

    /// Every message of `topic` on this world's broker (reads for `wait`).
    pub fn read(&self, topic: &str, wait: Duration) -> Vec<OwnedMessage> {
        read_topic_from(self.stack.bootstrap(), topic, usize::MAX, wait)
    }

    /// Validate every record on every topic of this world, DLQs included,
    /// against its JSON Schema in `schemas/` (DLQs against the envelope's).
    /// Records whose bytes are in `poisons` (sent on purpose, undecodable)
    /// are skipped. Returns how many records each topic held.
    pub fn validate_every_record(&self, poisons: &[&[u8]]) -> Vec<(String, usize)> {
        let schemas = crate::schemas::Schemas::load();
        let topics = [
            (&self.requests, "preprocess-requests"),
            (&self.training_data, "training-data"),
            (&self.inference_data, "inference-data"),
            (&self.model_training, "model-training"),
            (&self.model_selected, "model-selected"),
            (&self.performance_eval, "performance-eval"),
        ];
        let mut counts = Vec::new();
        let mut failures = Vec::new();
        for (topic, schema) in topics {
            for (name, schema) in [(topic.clone(), schema), (dlq_topic(topic), "dlq-envelope")] {
                let records = self.read(&name, Duration::from_secs(3));
                for m in &records {
                    let payload = m.payload().unwrap_or_default();
                    if poisons.contains(&payload) {
                        continue;
                    }
                    if let Err(e) = schemas.check(schema, payload) {
                        failures.push(format!("{name}@{}/{}: {e}", m.partition(), m.offset()));
                    }
                }
                counts.push((name, records.len()));
            }
        }
        assert!(failures.is_empty(), "records that break their schema:\n{}", failures.join("\n"));
        counts
    }

    /// A [`Watcher`] of `topic` on this world's broker.
    pub fn watch(&self, topic: &str) -> Watcher {
        Watcher::new(self.stack.bootstrap(), topic)
    }

    /// Messages of `topic` until `done` says they are enough; panics at `timeout`.
    pub fn wait_for(
        &self,
        topic: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[OwnedMessage]) -> bool,
    ) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.read(topic, Duration::from_secs(3));
            if done(&messages) {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not on {topic} within {timeout:?} ({} messages)",
                messages.len()
            );
        }
    }

    /// The envelopes on `dlq` whose original payload is exactly `poison`
    /// (waits until there are `at_least`).
    pub fn dead_letters_of(&self, dlq: &str, poison: &[u8], at_least: usize) -> Vec<DlqEnvelope> {
        let messages = self.wait_for(dlq, Duration::from_secs(120), "poison record dead-lettered", |m| {
            envelopes(m).iter().filter(|e| original(e) == poison).count() >= at_least
        });
        envelopes(&messages).into_iter().filter(|e| original(e) == poison).collect()
    }

    /// The batch results a summary names: they verify against their claim
    /// check (size and SHA-256) and hold one JSONL line per forecast window.
    pub async fn check_results(&self, summary: &contracts::PerformanceEval) {
        let store = claim_check::ClaimCheckStore::new(&self.stack.s3);
        let results = store.get(&summary.results).await.expect("results verify against their claim check");
        let lines = std::str::from_utf8(&results).expect("JSONL").lines().count() as u64;
        assert_eq!(lines, summary.windows, "one JSONL line per forecast window");
    }

    /// Every model type has a SUCCESS event for this world's dataset.
    pub fn assert_every_model_succeeded(&self, what: &str) {
        use contracts::{ModelTraining, ModelType, TrainingStatus};
        let events = decoded::<ModelTraining>(&self.read(&self.model_training, Duration::from_secs(3)));
        for model_type in [ModelType::Gru, ModelType::Lstm, ModelType::Prophet] {
            assert!(
                events.iter().any(|e| e.identifier == self.id
                    && e.model_type == model_type
                    && matches!(e.status, TrainingStatus::Success(_))),
                "{what}: {model_type} succeeded"
            );
        }
    }

    /// The first envelope of this world's dataset on `dlq` (waits for it).
    pub fn dead_letter_of_dataset(&self, dlq: &str) -> DlqEnvelope {
        let id = Some(self.id.as_str());
        let messages = self.wait_for(dlq, Duration::from_secs(120), "dataset's record dead-lettered", |m| {
            envelopes(m).iter().any(|e| e.identifier.as_deref() == id)
        });
        envelopes(&messages).into_iter().find(|e| e.identifier.as_deref() == id).expect("envelope")
    }
}

/// A generated dataset of `rows` rows (11 traffic columns) as CSV in a new temp dir.
pub fn generated_csv(rows: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("pipeline"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("sample.csv");
    let frame = dataset::generate::traffic(&dataset::generate::Spec { rows, seed: 7, ..Default::default() });
    std::fs::write(&csv, dataset::write_raw_csv(&frame, "timestamp")).expect("write csv");
    csv
}

/// A reader of one topic from its beginning that keeps its place, so that
/// waiting for the next matching message sees it within milliseconds.
pub struct Watcher {
    consumer: BaseConsumer,
    topic: String,
}

impl Watcher {
    pub fn new(bootstrap: &str, topic: &str) -> Self {
        let consumer = crate::plain_consumer_on(bootstrap, &unique("watcher"));
        consumer.subscribe(&[topic]).expect("subscribe watcher");
        Watcher { consumer, topic: topic.to_string() }
    }

    /// The next message (after those already returned or passed) that decodes
    /// as `T` and satisfies `pred`; panics after `timeout`.
    pub fn next_where<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(Instant::now() < deadline, "{what}: not seen on {} within {timeout:?}", self.topic);
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100))
                && let Some(Ok(v)) = m.payload().map(contracts::decode::<T>)
                && pred(&v)
            {
                return v;
            }
        }
    }
}

pub fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().expect("run command");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed: {}\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

pub fn decoded<T: serde::de::DeserializeOwned>(messages: &[OwnedMessage]) -> Vec<T> {
    messages.iter().filter_map(|m| m.payload().and_then(|p| contracts::decode(p).ok())).collect()
}

/// The original payload an envelope carries.
pub fn original(e: &DlqEnvelope) -> Vec<u8> {
    kafka_utils::dlq::original_bytes(e).expect("envelope holds the original bytes").1
}

/// The stack a [`World`] runs on: the env its processes get and the
/// addresses the test itself uses.
#[derive(Debug, Clone)]
pub struct StackEnv {
    /// Env set on every stage process (on top of the shared stack's).
    pub vars: Vec<(String, String)>,
    pub kafka: KafkaArgs,
    pub s3: S3Args,
}

impl StackEnv {
    /// The shared stack (`scripts/stack up`).
    pub fn shared() -> Self {
        let s = stack();
        StackEnv { vars: Vec::new(), kafka: s.kafka.clone(), s3: s.s3.clone() }
    }

    pub fn bootstrap(&self) -> &str {
        self.kafka.bootstrap().expect("stack has a broker")
    }
}

/// A stack of its own (tansu, garage, MLflow: `scripts/stack up` with its own
/// data dir and ports), for tests that stop its parts. `down` when dropped.
pub struct PrivateStack {
    dir: PathBuf,
    offset: u16,
    pub env: StackEnv,
}

impl PrivateStack {
    /// Start one whose ports are the shared stack's plus `offset`.
    pub fn up(offset: u16) -> Self {
        let dir = std::env::temp_dir().join("flts-tests").join(unique("stack"));
        let mut stack = PrivateStack { dir, offset, env: StackEnv::shared() };
        stack.script(&["up"]);
        let text = stack.script(&["env"]);
        let vars: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).expect("stack env var");
        stack.env.kafka = KafkaArgs::plaintext(get("KAFKA_BOOTSTRAP_SERVERS"));
        stack.env.s3.endpoint = Some(get("S3_ENDPOINT"));
        stack.env.vars = vars;
        stack
    }

    /// `scripts/stack ARGS` for this stack.
    pub fn script(&self, args: &[&str]) -> String {
        let out = Command::new(repo_root().join("scripts/stack"))
            .args(args)
            .env("FLTS_STACK_DIR", &self.dir)
            .env("FLTS_STACK_PORT_OFFSET", self.offset.to_string())
            .output()
            .expect("run scripts/stack");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "scripts/stack {args:?} (private) failed:\n{stdout}\n{stderr}");
        stdout.into_owned()
    }

    /// Stop one part: `kafka`, `s3` or `mlflow`.
    pub fn stop(&self, part: &str) {
        self.script(&["stop", part]);
    }

    /// Start a stopped part again on the same data.
    pub fn start(&self, part: &str) {
        self.script(&["start", part]);
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/stack"))
            .arg("down")
            .env("FLTS_STACK_DIR", &self.dir)
            .env("FLTS_STACK_PORT_OFFSET", self.offset.to_string())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
