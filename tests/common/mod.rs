//! Shared harness for the FLTS integration tests (rdkafka's `tests/utils.rs`
//! and neon's `remote_storage/tests/common` are the models).
//!
//! The tests talk to the real local stack that `scripts/stack up` starts
//! (tansu, garage, MLflow). The harness reads its addresses from
//! `scripts/stack env` and fails loudly, never skips, when it is not healthy.
//! Every test uses its own topics, consumer groups and key prefixes, so tests
//! run in parallel against one stack.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use claim_check::S3Args;
use kafka_utils::KafkaArgs;
use kafka_utils::admin::{TopicSpec, ensure_topics};
use mlflow_client::MlflowArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub mod pipeline;
pub mod schemas;

/// Addresses of the running stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kafka: KafkaArgs,
    pub s3: S3Args,
    pub mlflow: MlflowArgs,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run `scripts/stack ARGS`, returning stdout.
pub fn stack_cmd(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(repo_root().join("scripts/stack")).args(args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "scripts/stack {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The stack's addresses; panics with what to do when it is not running.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        if let Err(e) = stack_cmd(&["status"]) {
            panic!("the local stack is not healthy: run `scripts/stack up` (or `scripts/test`).\n{e}");
        }
        let env = stack_cmd(&["env"]).expect("scripts/stack env");
        let get = |key: &str| -> String {
            env.lines()
                .filter_map(|l| l.strip_prefix("export "))
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("scripts/stack env does not print {key}"))
                .to_string()
        };
        Stack {
            kafka: KafkaArgs::plaintext(get("KAFKA_BOOTSTRAP_SERVERS")),
            s3: S3Args {
                endpoint: Some(get("S3_ENDPOINT")),
                region: get("AWS_REGION"),
                access_key_id: get("AWS_ACCESS_KEY_ID"),
                secret_access_key: get("AWS_SECRET_ACCESS_KEY").parse().expect("infallible"),
                bucket_allowlist: ["processed-data", "mlflow", "model-promotion", "inference-logs"]
                    .map(String::from)
                    .to_vec(),
                multipart_threshold: 16 * 1024 * 1024,
            },
            mlflow: MlflowArgs { tracking_uri: get("MLFLOW_TRACKING_URI"), timeout_secs: 60 },
        }
    })
}

/// Path of a workspace binary (built by `cargo build --workspace`, which
/// `scripts/test` runs first), for tests that kill a real stage process.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test> -> target/debug/<name>
    let path = exe.parent().and_then(Path::parent).expect("target dir").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// The consumer session timeout the stage processes of these tests run with.
pub const SESSION_TIMEOUT_MS: u64 = 6000;

/// A real stage binary running against the stack, killed when dropped.
pub struct StageProcess {
    name: String,
    child: Child,
    /// Where [`StageProcess::spawn_logged`] sends the stage's output.
    log: Option<PathBuf>,
}

impl StageProcess {
    /// `bin` with the stack's env (`scripts/stack env`) and its admin server on
    /// a free port; add the test's own env, then [`StageProcess::spawn`].
    pub fn command(bin: &str) -> Command {
        let env = stack_cmd(&["env"]).expect("scripts/stack env");
        let mut cmd = Command::new(bin_path(bin));
        for line in env.lines().filter_map(|l| l.strip_prefix("export ")) {
            if let Some((k, v)) = line.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.env("METRICS_ADDR", "127.0.0.1:0");
        cmd
    }

    pub fn spawn(mut cmd: Command) -> Self {
        let name = program_name(&cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        StageProcess { name, child, log: None }
    }

    /// [`StageProcess::spawn`] with stdout and stderr in a file of its own,
    /// whose last [`LOG_TAIL_LINES`] lines are printed if the test panics while
    /// the stage runs: a failed pipeline test shows what each stage did last,
    /// at whatever level `cmd`'s `RUST_LOG` asks for, without the noise of the
    /// runs that pass.
    pub fn spawn_logged(mut cmd: Command) -> Self {
        let path = temp_log(&program_name(&cmd));
        let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        cmd.stdout(file.try_clone().expect("clone log handle")).stderr(file);
        let mut stage = StageProcess::spawn(cmd);
        stage.log = Some(path);
        stage
    }

    /// SIGKILL: the process gets no chance to finish or commit anything.
    pub fn kill(mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("wait for killed stage")
    }

    /// SIGKILL before a restart in the same consumer group: kill, then stay down
    /// until the killed process's group members are past [`SESSION_TIMEOUT_MS`].
    /// tansu 0.6.0 sometimes never rebalances a group that a new member joined
    /// while a killed member's session was still live: the new member keeps an
    /// empty assignment for minutes (5 of 10 runs of an inference restart test;
    /// Apache Kafka expires the dead member and rebalances).
    pub fn crash(self) -> ExitStatus {
        let status = self.kill();
        std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 1000));
        status
    }

    /// SIGTERM, then wait (at most 30 s) for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop within 30 s of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The file name of `cmd`'s program.
fn program_name(cmd: &Command) -> String {
    Path::new(cmd.get_program()).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A new log file path `flts-tests/{name}-….log` in the temp dir (the dir is created).
pub fn temp_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("flts-tests");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir.join(format!("{}.log", unique(name)))
}

/// Lines of a logged stage's output printed when its test fails.
pub const LOG_TAIL_LINES: usize = 60;

impl Drop for StageProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Some(path) = self.log.take() else { return };
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!("--- last {} lines of {} ({}) ---\n{}", tail.len(), self.name, path.display(), tail.join("\n"));
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A name no other test (or earlier run) uses: `{prefix}-{millis}-{counter}`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{prefix}-{ms}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Create `topic` and its `DLQ-` twin (tansu does not auto-create topics).
pub async fn create_topic_with_dlq(topic: &str, partitions: i32) {
    create_topic_with_dlq_on(&stack().kafka, topic, partitions).await;
}

/// [`create_topic_with_dlq`] on the broker `kafka` points at.
pub async fn create_topic_with_dlq_on(kafka: &KafkaArgs, topic: &str, partitions: i32) {
    let specs: Vec<TopicSpec> = [topic.to_string(), contracts::topics::dlq_topic(topic)]
        .into_iter()
        .map(|name| TopicSpec { name, partitions, replication: 1, retention_ms: None })
        .collect();
    ensure_topics(kafka, &specs).await.expect("create test topics");
}

fn plain_consumer(group: &str) -> BaseConsumer {
    plain_consumer_on(stack().kafka.bootstrap().expect("stack has a broker"), group)
}

pub(crate) fn plain_consumer_on(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create plain consumer")
}

/// The offset `group` has committed for `topic`/`partition`, if any.
pub fn committed_offset(group: &str, topic: &str, partition: i32) -> Option<i64> {
    let consumer = plain_consumer(group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("fetch committed offsets");
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Wait until `group` has committed at least `offset` on `topic`/`partition`.
pub fn wait_for_commit(group: &str, topic: &str, partition: i32, offset: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = committed_offset(group, topic, partition);
        if c.is_some_and(|c| c >= offset) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} committed {c:?} on {topic}/{partition}, expected >= {offset} within {timeout:?} (KAFKA_COMMIT_INTERVAL_MS too long?)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Read every message of `topic` (all partitions, from the start) until
/// `expected` arrived or `timeout` passed.
pub fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<OwnedMessage> {
    read_topic_from(stack().kafka.bootstrap().expect("stack has a broker"), topic, expected, timeout)
}

/// [`read_topic`] from the broker at `bootstrap`. The reader assigns itself
/// every partition from the beginning instead of joining a consumer group, so
/// that what a test reads never waits on a group rebalance (see
/// [`StageProcess::crash`] for tansu's). A topic that does not exist yet is looked up
/// again until it does or `timeout` passes.
pub fn read_topic_from(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer = plain_consumer_on(bootstrap, &unique("reader"));
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let partitions = loop {
        let count = partition_count(&consumer, topic, Duration::from_secs(5));
        if count > 0 {
            break count;
        }
        if Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning).expect("partition offset");
    }
    consumer.assign(&tpl).expect("assign reader");
    let mut errors = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) if !errors.contains(&e.to_string()) => errors.push(e.to_string()),
            Some(Err(_)) => {}
            None => {}
        }
    }
    if out.len() < expected && !errors.is_empty() {
        // A test that then fails shows why its reader got nothing (a passing one prints nothing).
        eprintln!("read_topic {topic}: {} of {expected} read; consumer errors: {errors:?}", out.len());
    }
    out
}

/// Low and high watermarks of every partition of `topic` (what a test prints
/// when a record it waited for is not there: was it never written, or not read?).
pub fn watermarks(topic: &str) -> Vec<String> {
    let consumer = plain_consumer(&unique("watermarks"));
    (0..partition_count(&consumer, topic, Duration::from_secs(10)) as i32)
        .map(|p| match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
            Ok((low, high)) => format!("partition {p}: offsets {low}..{high}"),
            Err(e) => format!("partition {p}: {e}"),
        })
        .collect()
}

/// Partitions of `topic` as the broker's metadata lists them (0: no such topic, or no answer).
fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> usize {
    let metadata = consumer.fetch_metadata(Some(topic), timeout);
    metadata.ok().and_then(|m| m.topics().first().map(|t| t.partitions().len())).unwrap_or(0)
}

/// The decoded DLQ envelopes among `messages`.
pub fn envelopes(messages: &[OwnedMessage]) -> Vec<contracts::DlqEnvelope> {
    messages
        .iter()
        .map(|m| contracts::decode(m.payload().unwrap_or_default()).expect("DLQ payload is an envelope"))
        .collect()
}

/// tansu version of the local stack (keep in step with `TANSU_VERSION` in scripts/stack).
const TANSU_VERSION: &str = "0.6.0";

/// A tansu broker of the test's own (same pinned binary and sqlite storage as
/// the shared stack, on free loopback ports, data in a temp dir), for fault
/// tests that stop, kill or restart the broker without taking the shared one
/// away from the tests running beside them. Killed when dropped; its data dir
/// is removed unless the test panicked (then its path is printed).
pub struct PrivateBroker {
    dir: PathBuf,
    port: u16,
    metrics_port: u16,
    child: Option<Child>,
}

impl PrivateBroker {
    /// Start a broker with empty storage and wait until it accepts connections.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join("flts-tests").join(unique("broker"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let [port, metrics_port] = free_ports();
        let mut broker = PrivateBroker { dir, port, metrics_port, child: None };
        broker.start_again();
        broker
    }

    /// Path of the pinned tansu binary that `scripts/stack install` caches.
    pub fn binary() -> PathBuf {
        let cache = std::env::var_os("FLTS_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/flts"));
        let bin = cache.join(format!("tools/tansu-{TANSU_VERSION}/bin/tansu"));
        assert!(bin.exists(), "{} is missing: run `scripts/stack install`", bin.display());
        bin
    }

    /// `host:port` to bootstrap from.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Client settings for this broker.
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs::plaintext(self.bootstrap())
    }

    /// Start (again, after [`PrivateBroker::stop`] or [`PrivateBroker::kill`])
    /// on the same port and the same data; returns once the port accepts
    /// connections (tansu registers with its storage before it listens).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("open broker log: {e}"));
        let url = format!("tcp://{}", self.bootstrap());
        let child = Command::new(Self::binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            // Relative: tansu mangles absolute sqlite paths; the working dir is ours.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .env("PROMETHEUS_LISTENER_URL", format!("tcp://127.0.0.1:{}", self.metrics_port))
            .env("RUST_LOG", std::env::var("FLTS_BROKER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start tansu: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("tansu exited at start ({status}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "tansu did not listen within 60 s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it is still running after
    /// `deadline`. Returns whether it exited by itself.
    pub fn stop(&mut self, deadline: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Crash: SIGKILL, no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Create `topic` and its `DLQ-` twin on this broker.
    pub async fn create_topic_with_dlq(&self, topic: &str, partitions: i32) {
        create_topic_with_dlq_on(&self.kafka(), topic, partitions).await;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("tansu.log")
    }

    /// Everything tansu wrote to stdout and stderr, all runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("private broker data and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `N` distinct loopback ports nothing listens on right now.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> =
        (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// A consumer loop of `service` over `topic` in `group`; dropping the guard
/// stops it (also when an assertion panics, so a failing test does not hang
/// on a loop nobody cancels).
pub fn start_consumer<H: kafka_utils::Handler>(
    kafka: KafkaArgs,
    service: &str,
    topic: &str,
    group: &str,
    args: kafka_utils::ConsumerArgs,
    handler: std::sync::Arc<H>,
) -> (tokio_util::sync::DropGuard, tokio::task::JoinHandle<kafka_utils::RunSummary>) {
    let producer = kafka_utils::Producer::new(&kafka, service).expect("producer");
    let settings = kafka_utils::ConsumerSettings {
        service: service.into(),
        group_id: group.into(),
        topics: vec![topic.into()],
        args,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        kafka_utils::consumer::run(&kafka, settings, producer, handler, c).await.expect("consumer loop")
    });
    (cancel.drop_guard(), task)
}
