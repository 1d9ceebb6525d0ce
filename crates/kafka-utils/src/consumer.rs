//! The at-least-once consumer loop.
//!
//! One record at a time, in order: poll, hand the record to the [`Handler`],
//! and store its offset only after the handler returned (its outputs are
//! acknowledged by then, because [`crate::Producer`] sends await the broker)
//! or after the record's DLQ envelope was acknowledged. librdkafka commits
//! stored offsets every `commit_interval`; revokes and shutdown commit
//! synchronously. A handler that runs longer than `keepalive` gets its
//! partitions paused while the loop keeps polling, so a long training never
//! exceeds `max.poll.interval.ms` and never triggers a rebalance.
//!
//! Errors are classified by the handler ([`HandlerError`], built from any
//! [`Classified`] error): decode and permanent errors go to the DLQ at once,
//! retryable ones are retried on the [`crate::backoff`] schedule (full
//! jitter) up to `max_attempts`, then dead-lettered.
//!
//! Hostile records: a record whose key or headers exceed the operator's
//! limits ([`ConsumerArgs::max_key_bytes`], `max_header_bytes`, `max_headers`)
//! is dead-lettered as `permanent`/`bad_data` before any handler sees it, and
//! every envelope fits the producer's size limit ([`crate::dlq`]).
//!
//! Lag: librdkafka's statistics (every `statistics_interval_ms`) set
//! `flts_kafka_consumer_lag{group,topic,partition}` for each assigned partition.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures::FutureExt as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use contracts::FailureKind;
use contracts::error::{Classified, Code, Policy};

use crate::backoff::{self, Backoff};
use crate::config::{ConfigError, KafkaArgs};
use crate::dlq;
use crate::metrics;
use crate::producer::Producer;

/// One Kafka record, owned, as handed to a [`Handler`].
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The payload bytes exactly as received.
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let headers = read_headers(m);
        Record {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        }
    }

    /// The key as UTF-8, if it is.
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// Decode the payload as a contract message; failure is a decode error (DLQ at once).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandlerError> {
        contracts::decode(&self.payload).map_err(HandlerError::decode)
    }
}

/// The headers of `m`, names decoded lossily. rdkafka's own header iterator
/// unwraps each name as UTF-8 and so panics (ending the poll thread, and with
/// it the stage, on every restart) on a record whose header name is not; this
/// reads them through librdkafka directly.
fn read_headers(m: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    use rdkafka::bindings as rd;
    let mut out = Vec::new();
    let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m.ptr()` is the live librdkafka message `m` borrows; the headers
    // it returns are owned by that message and outlive this function's use.
    let err = unsafe { rd::rd_kafka_message_headers(m.ptr(), &mut hdrs) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
        return out;
    }
    for idx in 0.. {
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
        // SAFETY: `hdrs` is valid (above); librdkafka writes pointers into its
        // own storage, a NUL-terminated name and `size` bytes of value.
        let err = unsafe { rd::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: as above; a null value is a header without a value.
        let (name, value) = unsafe {
            let name = std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned();
            let value = if value.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec()
            };
            (name, value)
        };
        out.push((name, value));
    }
    out
}

/// How a handler failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The payload is not a valid message; retrying cannot help.
    Decode,
    /// Valid message, unprocessable (bad data, missing object); retrying cannot help.
    Permanent,
    /// A dependency is unavailable or slow; retry with backoff.
    Retryable,
    /// Shutdown interrupted the work: leave the offset where it is.
    Cancelled,
}

/// A handler failure with its retry policy and a short machine-readable code.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {source:#}")]
pub struct HandlerError {
    pub disposition: Disposition,
    /// Short cause, e.g. `checksum_mismatch`; ends up in the DLQ envelope.
    pub code: Code,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl HandlerError {
    fn new(disposition: Disposition, code: Code, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        HandlerError { disposition, code, source: source.into() }
    }
    /// The payload could not be decoded.
    pub fn decode(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(Disposition::Decode, Code::Decode, source)
    }
    /// Processing can never succeed for this record.
    pub fn permanent(code: Code, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(Disposition::Permanent, code, source)
    }
    /// Processing may succeed later.
    pub fn retryable(code: Code, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(Disposition::Retryable, code, source)
    }
    /// The disposition and code of a [`Classified`] error: [`Code::Decode`]
    /// is a decode failure, [`Code::Cancelled`] a shutdown, any other code is
    /// retryable or permanent as its [`Policy`] says (for
    /// [`Policy::ByCause`], as the error's `is_retryable` says). Every
    /// `E: Classified` also converts with `From`, so `?` does this.
    pub fn from_classified<E: Classified + Send + Sync + 'static>(e: E) -> Self {
        let code = e.code();
        let disposition = match (code, code.policy()) {
            (Code::Decode, _) => Disposition::Decode,
            (Code::Cancelled, _) => Disposition::Cancelled,
            (_, Policy::Retryable) => Disposition::Retryable,
            (_, Policy::Permanent) => Disposition::Permanent,
            (_, Policy::ByCause) if e.is_retryable() => Disposition::Retryable,
            (_, Policy::ByCause) => Disposition::Permanent,
        };
        Self::new(disposition, code, e)
    }
    /// The same failure with `context` (e.g. `train part`) before its message.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        let source = Box::new(Context { context: context.to_string(), source: self.source });
        HandlerError { source, ..self }
    }
    /// Shutdown interrupted processing; the record will be redelivered.
    pub fn cancelled() -> Self {
        Self::new(Disposition::Cancelled, Code::Cancelled, "shutdown requested")
    }
    /// The full error chain as one line.
    pub fn message(&self) -> String {
        let mut msg = self.source.to_string();
        let mut cur = self.source.source();
        while let Some(s) = cur {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            cur = s.source();
        }
        msg
    }
}

/// Every [`Classified`] error is a [`HandlerError`] ([`HandlerError::from_classified`]).
impl<E: Classified + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError::from_classified(e)
    }
}

/// [`HandlerError::context`]: the context, then the failure's own message.
#[derive(Debug)]
struct Context {
    context: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for Context {
    /// The chain below the wrapped error (its own text is in this one's).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// What a stage does with one record.
pub trait Handler: Send + Sync + 'static {
    /// Process `record`. Outputs must be durable when this returns `Ok`
    /// (await every produce and upload).
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Called once after `record` went to the DLQ (its envelope acknowledged),
    /// before its offset is stored, so a stage can announce the failure
    /// (trainers publish a FAILED event). Does nothing by default.
    fn on_dead_letter(&self, _record: &Record, _error: &HandlerError) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Retry and liveness settings of the consumer loop (`#[command(flatten)]`).
#[derive(Debug, Clone, Args)]
pub struct ConsumerArgs {
    /// Handler attempts for a retryable error before the record goes to the DLQ.
    #[arg(long, env = "HANDLER_MAX_ATTEMPTS", default_value_t = 5)]
    pub handler_max_attempts: u32,
    /// First retry backoff in milliseconds; doubles per attempt.
    #[arg(long, env = "HANDLER_BACKOFF_MS", default_value_t = 500)]
    pub handler_backoff_ms: u64,
    /// Upper bound of the retry backoff in milliseconds.
    #[arg(long, env = "HANDLER_BACKOFF_MAX_MS", default_value_t = 30_000)]
    pub handler_backoff_max_ms: u64,
    /// librdkafka max.poll.interval.ms. Long handlers are safe anyway: the loop
    /// pauses and keeps polling while a handler runs.
    #[arg(long, env = "KAFKA_MAX_POLL_INTERVAL_MS", default_value_t = 300_000)]
    pub max_poll_interval_ms: u64,
    /// How often stored offsets are committed, in milliseconds.
    #[arg(long, env = "KAFKA_COMMIT_INTERVAL_MS", default_value_t = 1_000)]
    pub commit_interval_ms: u64,
    /// librdkafka session.timeout.ms: how soon a crashed member's partitions
    /// move to another member. Capped at max.poll.interval.ms.
    #[arg(long, env = "KAFKA_SESSION_TIMEOUT_MS", default_value_t = 30_000)]
    pub session_timeout_ms: u64,
    /// Largest record key accepted, in bytes; a record with a larger key is
    /// dead-lettered (`bad_data`) without reaching the handler.
    #[arg(long, env = "KAFKA_MAX_KEY_BYTES", default_value_t = 1024)]
    pub max_key_bytes: usize,
    /// Largest total size of a record's headers (names and values), in bytes;
    /// a record with more is dead-lettered (`bad_data`).
    #[arg(long, env = "KAFKA_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Most headers a record may have; a record with more is dead-lettered (`bad_data`).
    #[arg(long, env = "KAFKA_MAX_HEADERS", default_value_t = 64)]
    pub max_headers: usize,
    /// How often librdkafka reports statistics (consumer lag), in
    /// milliseconds; 0 turns them (and the lag gauge) off.
    #[arg(long, env = "KAFKA_STATISTICS_INTERVAL_MS", default_value_t = 5_000)]
    pub statistics_interval_ms: u64,
}

impl Default for ConsumerArgs {
    fn default() -> Self {
        ConsumerArgs {
            handler_max_attempts: 5,
            handler_backoff_ms: 500,
            handler_backoff_max_ms: 30_000,
            max_poll_interval_ms: 300_000,
            commit_interval_ms: 1_000,
            session_timeout_ms: 30_000,
            max_key_bytes: 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            statistics_interval_ms: 5_000,
        }
    }
}

impl ConsumerArgs {
    /// The handler retry schedule: waits up to `HANDLER_BACKOFF_MS`, doubling
    /// to at most `HANDLER_BACKOFF_MAX_MS`, full jitter, `HANDLER_MAX_ATTEMPTS`
    /// attempts in all.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(Duration::from_millis(self.handler_backoff_ms), Duration::from_millis(self.handler_backoff_max_ms))
            .max_attempts(self.handler_max_attempts.max(1))
    }

    /// Why `record` is refused before its handler (its key or headers exceed
    /// the limits), if it is.
    pub fn refuse(&self, record: &Record) -> Option<String> {
        let key_len = record.key.as_ref().map_or(0, Vec::len);
        if key_len > self.max_key_bytes {
            return Some(format!(
                "record key of {key_len} bytes exceeds the limit of {} (KAFKA_MAX_KEY_BYTES)",
                self.max_key_bytes
            ));
        }
        if record.headers.len() > self.max_headers {
            return Some(format!(
                "record has {} headers, more than the limit of {} (KAFKA_MAX_HEADERS)",
                record.headers.len(),
                self.max_headers
            ));
        }
        let header_bytes =
            record.headers.iter().fold(0usize, |sum, (k, v)| sum.saturating_add(k.len()).saturating_add(v.len()));
        if header_bytes > self.max_header_bytes {
            return Some(format!(
                "record headers of {header_bytes} bytes exceed the limit of {} (KAFKA_MAX_HEADER_BYTES)",
                self.max_header_bytes
            ));
        }
        None
    }
}

/// What one consumer is: who it is, what it reads and where failures go.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Service name: client id, DLQ envelope `service`.
    pub service: String,
    pub group_id: String,
    /// Topics to consume; a failed record goes to `DLQ-<its topic>`.
    pub topics: Vec<String>,
    pub args: ConsumerArgs,
}

/// A failure that stops the consumer loop itself.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create consumer: {0}")]
    Create(KafkaError),
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe { topics: Vec<String>, source: KafkaError },
    #[error("consumer thread failed: {0}")]
    Thread(String),
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Processed,
    DeadLettered,
    /// Failed, and not even a minimal envelope could be written (see [`crate::dlq`]).
    Dropped,
    Cancelled,
}

/// Counts for one run of the loop (tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub processed: u64,
    pub dead_lettered: u64,
    /// Failed records for which no DLQ envelope could be written at all.
    pub dropped: u64,
}

/// Commits on revoke, logs rebalances and commits, and turns statistics into
/// the lag gauge.
struct LoopContext {
    group: String,
    /// (topic, partition) series of the lag gauge this consumer set.
    lag_series: Mutex<HashSet<(String, i32)>>,
    /// Set once the loop stopped: statistics served while the consumer
    /// closes set no series again.
    stopped: AtomicBool,
}

impl LoopContext {
    fn new(group: &str) -> Self {
        LoopContext {
            group: group.to_string(),
            lag_series: Mutex::new(HashSet::new()),
            stopped: AtomicBool::new(false),
        }
    }

    /// Set the lag of every assigned partition in `stats`; remove the series of
    /// partitions no longer assigned.
    fn record_lag(&self, stats: &lag::Stats) {
        let now = lag::assigned_lags(stats);
        let mut series = self.lag_series.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        for (topic, partition) in series.iter() {
            if !now.contains_key(&(topic.clone(), *partition)) {
                let _ = metrics::CONSUMER_LAG.remove_label_values(&[
                    self.group.as_str(),
                    topic.as_str(),
                    partition.to_string().as_str(),
                ]);
            }
        }
        for ((topic, partition), value) in &now {
            metrics::CONSUMER_LAG
                .with_label_values(&[self.group.as_str(), topic.as_str(), partition.to_string().as_str()])
                .set(*value);
        }
        *series = now.into_keys().collect();
    }

    fn clear_lag(&self) {
        let mut series = self.lag_series.lock().unwrap_or_else(|e| e.into_inner());
        self.stopped.store(true, Ordering::SeqCst);
        for (topic, partition) in series.drain() {
            let _ = metrics::CONSUMER_LAG.remove_label_values(&[
                self.group.as_str(),
                topic.as_str(),
                partition.to_string().as_str(),
            ]);
        }
    }
}

impl ClientContext for LoopContext {
    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<lag::Stats>(statistics) {
            Ok(stats) => self.record_lag(&stats),
            Err(e) => debug!(error = %e, "librdkafka statistics not understood"),
        }
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            info!(partitions = tpl.count(), "partitions revoked; committing stored offsets");
            commit_sync(consumer);
        }
    }
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = ?tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect::<Vec<_>>(), "partitions assigned");
        }
    }
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!("offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => warn!(error = %e, "offset commit failed"),
        }
    }
}

fn commit_sync(consumer: &BaseConsumer<LoopContext>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => warn!(error = %e, "synchronous offset commit failed"),
    }
}

/// Run the loop until `cancel` fires. The record in hand is finished first,
/// then stored offsets are committed and the consumer leaves its group.
pub async fn run<H: Handler>(
    kafka: &KafkaArgs,
    settings: ConsumerSettings,
    producer: Producer,
    handler: Arc<H>,
    cancel: CancellationToken,
) -> Result<RunSummary, ConsumerError> {
    let mut cfg = kafka.client_config(&settings.service)?;
    cfg.set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", settings.args.commit_interval_ms.to_string())
        .set("auto.offset.reset", "earliest")
        .set("max.poll.interval.ms", settings.args.max_poll_interval_ms.to_string())
        .set("session.timeout.ms", settings.args.session_timeout_ms.min(settings.args.max_poll_interval_ms).to_string())
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("statistics.interval.ms", settings.args.statistics_interval_ms.to_string());
    metrics::init_consumer(&settings);
    let consumer: BaseConsumer<LoopContext> =
        cfg.create_with_context(LoopContext::new(&settings.group_id)).map_err(ConsumerError::Create)?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| ConsumerError::Subscribe { topics: settings.topics.clone(), source })?;
    info!(group = %settings.group_id, topics = ?settings.topics, "consumer started");

    let rt = Handle::current();
    // The loop also stops when this future is dropped (its task aborted, or the
    // runtime dropped after a panic elsewhere): tokio never cancels a blocking
    // task and a runtime waits for them when dropped, so without the guard a
    // dropped `run` kept the process polling forever (seen as a test hanging
    // after a failed assertion, instead of failing).
    let stop = cancel.child_token();
    let _stop_when_dropped = stop.clone().drop_guard();
    let thread = tokio::task::spawn_blocking(move || poll_loop(consumer, rt, settings, producer, handler, stop));
    thread.await.map_err(|e| ConsumerError::Thread(e.to_string()))
}

fn poll_loop<H: Handler>(
    consumer: BaseConsumer<LoopContext>,
    rt: Handle,
    settings: ConsumerSettings,
    producer: Producer,
    handler: Arc<H>,
    cancel: CancellationToken,
) -> RunSummary {
    let mut summary = RunSummary::default();
    // Records polled while a long handler ran (from partitions assigned to us
    // mid-handler); they come before anything polled later from their partition.
    let mut held_back = HeldBack::default();
    let mut handled = HandledOffsets::default();
    while !cancel.is_cancelled() {
        let record = match held_back.next(&consumer) {
            Some(record) => record,
            None => match consumer.poll(Duration::from_millis(200)) {
                None => continue,
                Some(Err(e)) => {
                    warn!(error = %e, "poll error");
                    continue;
                }
                Some(Ok(m)) => Record::from_message(&m),
            },
        };
        let (topic, partition, offset) = (&record.topic, record.partition, record.offset);
        if handled.covers(&record) {
            // Its partition was revoked and assigned back to us mid-handler, and
            // fetching restarted at the committed offset. Its effects are
            // durable already: only the offset remains to store.
            debug!(%topic, partition, offset, "record handled here already; skipped");
            let _ = consumer.store_offset(topic, partition, offset);
            continue;
        }
        metrics::CONSUMED.with_label_values(&[topic]).inc();
        let work = process_record(&*handler, &producer, &settings, &record, &cancel);
        let outcome = run_with_keepalive(&consumer, &rt, work, &mut held_back);
        match outcome {
            Outcome::Cancelled => {
                info!(%topic, partition, offset, "shutdown before the record was done; it will be redelivered");
                break;
            }
            Outcome::Processed => summary.processed = summary.processed.saturating_add(1),
            Outcome::DeadLettered => summary.dead_lettered = summary.dead_lettered.saturating_add(1),
            Outcome::Dropped => summary.dropped = summary.dropped.saturating_add(1),
        }
        handled.mark(&record);
        if let Err(e) = consumer.store_offset(topic, partition, offset) {
            // The partition was revoked while we worked: its new owner gets the
            // record again, and handlers are idempotent.
            warn!(%topic, partition, offset, error = %e, "cannot store offset (partition revoked?)");
        } else {
            debug!(%topic, partition, offset, "offset stored");
        }
    }
    commit_sync(&consumer);
    consumer.unsubscribe();
    consumer.context().clear_lag();
    info!(
        processed = summary.processed,
        dead_lettered = summary.dead_lettered,
        dropped = summary.dropped,
        "consumer stopped"
    );
    summary
}

/// Records polled during a long handler, in offset order per partition.
///
/// A partition assigned mid-handler is paused right after its first record
/// arrived, and librdkafka resumes fetching after the last record it
/// delivered, so a held-back record is handled next: nothing is rewound.
#[derive(Default)]
struct HeldBack(Vec<Record>);

impl HeldBack {
    fn hold(&mut self, record: Record) {
        let key = |r: &Record| (r.topic.clone(), r.partition, r.offset);
        // A partition revoked and assigned again is fetched again from its
        // committed offset: keep one copy of each record.
        if !self.0.iter().any(|r| key(r) == key(&record)) {
            self.0.push(record);
            self.0.sort_by_key(key);
        }
    }

    /// The next held-back record whose partition is still ours; the others
    /// belong to the partition's new owner now.
    fn next(&mut self, consumer: &BaseConsumer<LoopContext>) -> Option<Record> {
        if self.0.is_empty() {
            return None; // the usual case: no librdkafka call on every poll
        }
        let assigned = consumer.assignment().ok()?;
        while !self.0.is_empty() {
            let record = self.0.remove(0);
            if assigned.find_partition(&record.topic, record.partition).is_some() {
                return Some(record);
            }
            debug!(topic = %record.topic, partition = record.partition, offset = record.offset, "held-back record's partition was revoked");
        }
        None
    }
}

/// The highest offset this loop handled, per partition.
#[derive(Default)]
struct HandledOffsets(HashMap<(String, i32), i64>);

impl HandledOffsets {
    fn mark(&mut self, record: &Record) {
        let highest = self.0.entry((record.topic.clone(), record.partition)).or_insert(record.offset);
        *highest = (*highest).max(record.offset);
    }

    fn covers(&self, record: &Record) -> bool {
        self.0.get(&(record.topic.clone(), record.partition)).is_some_and(|&highest| record.offset <= highest)
    }
}

/// Drive `work` to completion on the runtime while keeping the consumer alive.
/// The future runs on this (blocking) thread; a handler that takes longer than
/// a second gets the assignment paused while polling goes on.
fn run_with_keepalive(
    consumer: &BaseConsumer<LoopContext>,
    rt: &Handle,
    work: impl Future<Output = Outcome>,
    held_back: &mut HeldBack,
) -> Outcome {
    const KEEPALIVE: Duration = Duration::from_secs(1);
    let mut work = std::pin::pin!(work);
    let mut paused = false;
    let outcome = loop {
        match rt.block_on(tokio::time::timeout(KEEPALIVE, work.as_mut())) {
            Ok(outcome) => break outcome,
            Err(_) => {
                if !paused {
                    if let Ok(assigned) = consumer.assignment() {
                        let _ = consumer.pause(&assigned);
                    }
                    paused = true;
                    debug!("long handler: partitions paused, polling to stay in the group");
                }
                // Polling serves heartbeats, rebalances and max.poll.interval.
                if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
                    // A partition assigned during a rebalance is not paused yet:
                    // keep its first record for later and pause it.
                    let record = Record::from_message(&m);
                    drop(m);
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&record.topic, record.partition);
                    if let Err(e) = consumer.pause(&tpl) {
                        warn!(topic = %record.topic, partition = record.partition, error = %e, "cannot pause a partition assigned mid-handler");
                    }
                    debug!(topic = %record.topic, partition = record.partition, offset = record.offset, "record from a partition assigned mid-handler held back");
                    held_back.hold(record);
                }
            }
        }
    };
    if paused && let Ok(assigned) = consumer.assignment() {
        let _ = consumer.resume(&assigned);
    }
    outcome
}

/// Handle one record: attempts with backoff, then the DLQ.
async fn process_record<H: Handler>(
    handler: &H,
    producer: &Producer,
    settings: &ConsumerSettings,
    record: &Record,
    cancel: &CancellationToken,
) -> Outcome {
    let topic = record.topic.clone();
    if let Some(why) = settings.args.refuse(record) {
        let err = HandlerError::permanent(Code::BadData, why);
        return dead_letter(handler, producer, settings, record, cancel, FailureKind::Permanent, &err, 1).await;
    }
    let mut schedule = settings.args.retry_backoff().start();
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let started = Instant::now();
        // A panicking handler is a bug, but it must not stall the partition.
        let result = match AssertUnwindSafe(handler.handle(record)).catch_unwind().await {
            Ok(res) => res,
            Err(panic) => Err(HandlerError::permanent(Code::HandlerPanic, panic_message(&panic))),
        };
        metrics::HANDLER_SECONDS.with_label_values(&[&topic]).observe(started.elapsed().as_secs_f64());
        let err = match result {
            Ok(()) => {
                metrics::PROCESSED.with_label_values(&[&topic]).inc();
                return Outcome::Processed;
            }
            Err(e) => e,
        };
        let kind = match err.disposition {
            Disposition::Cancelled => return Outcome::Cancelled,
            Disposition::Retryable => match schedule.next_delay() {
                Some(wait) => {
                    metrics::RETRIED.with_label_values(&[&topic]).inc();
                    warn!(%topic, partition = record.partition, offset = record.offset, attempt, code = %err.code,
                        error = %err, "handler failed; retrying in {wait:?}");
                    if backoff::sleep(wait, cancel).await {
                        continue;
                    }
                    return Outcome::Cancelled;
                }
                None => FailureKind::RetriesExhausted,
            },
            Disposition::Decode => FailureKind::Decode,
            Disposition::Permanent => FailureKind::Permanent,
        };
        return dead_letter(handler, producer, settings, record, cancel, kind, &err, attempt).await;
    }
}

/// Send `record` to its DLQ (see [`crate::dlq::write`]) and let the handler
/// announce the failure.
#[allow(clippy::too_many_arguments)]
async fn dead_letter<H: Handler>(
    handler: &H,
    producer: &Producer,
    settings: &ConsumerSettings,
    record: &Record,
    cancel: &CancellationToken,
    kind: FailureKind,
    err: &HandlerError,
    attempts: u32,
) -> Outcome {
    let dlq = contracts::topics::dlq_topic(&record.topic);
    let envelope = dlq::envelope(record, kind, err, attempts, &settings.service, producer.max_message_bytes());
    // The error text may quote the record: its length is bounded like the envelope's.
    error!(topic = %record.topic, partition = record.partition, offset = record.offset, attempts, %dlq,
        code = %envelope.error.code, error = %envelope.error.message, "record dead-lettered");
    let outcome = match dlq::write(producer, &dlq, record, &envelope, &settings.args, cancel).await {
        dlq::Written::Cancelled => return Outcome::Cancelled,
        dlq::Written::Sent | dlq::Written::Minimal => {
            metrics::DEAD_LETTERED.with_label_values(&[record.topic.as_str(), kind_label(kind)]).inc();
            Outcome::DeadLettered
        }
        dlq::Written::Dropped => Outcome::Dropped,
    };
    handler.on_dead_letter(record, err).await;
    outcome
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_string())
}

fn kind_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Decode => "decode",
        FailureKind::Permanent => "permanent",
        FailureKind::RetriesExhausted => "retries_exhausted",
    }
}

/// The part of librdkafka's statistics JSON the lag gauge reads
/// (<https://github.com/confluentinc/librdkafka/blob/master/STATISTICS.md>).
mod lag {
    use std::collections::HashMap;

    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    pub struct Stats {
        #[serde(default)]
        pub topics: HashMap<String, Topic>,
    }

    #[derive(Debug, Default, Deserialize)]
    pub struct Topic {
        #[serde(default)]
        pub partitions: HashMap<String, Partition>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Partition {
        pub partition: i32,
        /// Assigned to this consumer (librdkafka: "desired").
        #[serde(default)]
        pub desired: bool,
        #[serde(default = "unknown")]
        pub hi_offset: i64,
        #[serde(default = "unknown")]
        pub lo_offset: i64,
        /// `hi_offset - committed_offset`, or -1 when nothing is committed.
        #[serde(default = "unknown")]
        pub consumer_lag: i64,
    }

    fn unknown() -> i64 {
        -1
    }

    /// The lag of one partition, if it is assigned here and its high watermark
    /// is known: librdkafka's committed lag, or, for a group that never
    /// committed (it reads from the earliest record), everything from the log
    /// start. Offsets are the broker's: the arithmetic is checked.
    pub fn partition_lag(p: &Partition) -> Option<i64> {
        if p.partition < 0 || !p.desired || p.hi_offset < 0 {
            return None;
        }
        if p.consumer_lag >= 0 {
            return Some(p.consumer_lag);
        }
        p.hi_offset.checked_sub(p.lo_offset.max(0)).map(|lag| lag.max(0))
    }

    /// Lag per (topic, assigned partition).
    pub fn assigned_lags(stats: &Stats) -> HashMap<(String, i32), i64> {
        let mut out = HashMap::new();
        for (name, topic) in &stats.topics {
            for p in topic.partitions.values() {
                if let Some(lag) = partition_lag(p) {
                    out.insert((name.clone(), p.partition), lag);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: i32, offset: i64) -> Record {
        Record { topic: "t".into(), partition, offset, key: None, payload: vec![], headers: vec![] }
    }

    #[test]
    fn held_back_records_keep_one_copy_in_offset_order() {
        let mut held = HeldBack::default();
        for (p, o) in [(0, 7), (1, 3), (0, 5), (0, 7)] {
            held.hold(rec(p, o));
        }
        let order: Vec<(i32, i64)> = held.0.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(order, vec![(0, 5), (0, 7), (1, 3)]);
    }

    #[test]
    fn handled_offsets_cover_what_was_handled_per_partition() {
        let mut handled = HandledOffsets::default();
        handled.mark(&rec(0, 4));
        handled.mark(&rec(0, 2));
        assert!(handled.covers(&rec(0, 4)) && handled.covers(&rec(0, 0)));
        assert!(!handled.covers(&rec(0, 5)), "a later record is new");
        assert!(!handled.covers(&rec(1, 0)), "another partition is untouched");
    }

    #[test]
    fn the_handler_schedule_is_the_settings_backoff() {
        let args = ConsumerArgs {
            handler_backoff_ms: 100,
            handler_backoff_max_ms: 1_000,
            handler_max_attempts: 4,
            ..Default::default()
        };
        let ceilings: Vec<u128> = [1, 2, 4, 5, 60].map(|n| args.retry_backoff().ceiling(n).as_millis()).to_vec();
        assert_eq!(ceilings, [100, 200, 800, 1_000, 1_000]);
        let mut schedule = args.retry_backoff().start_seeded(5);
        for n in 1..4 {
            let wait = schedule.next_delay().expect("attempts left");
            assert!(wait <= args.retry_backoff().ceiling(n), "wait {n}: {wait:?}");
        }
        assert_eq!(schedule.next_delay(), None, "4 attempts in all");
        let none = ConsumerArgs { handler_max_attempts: 0, ..Default::default() };
        assert_eq!(none.retry_backoff().start().next_delay(), None, "0 attempts still makes one, and no retry");
    }

    #[test]
    fn lag_is_committed_lag_or_everything_for_a_group_that_never_committed() {
        let stats: lag::Stats = serde_json::from_str(
            r#"{"name":"c","topics":{"t":{"topic":"t","partitions":{
                "0":{"partition":0,"desired":true,"hi_offset":20,"lo_offset":0,"consumer_lag":-1},
                "1":{"partition":1,"desired":true,"hi_offset":20,"lo_offset":5,"consumer_lag":3},
                "2":{"partition":2,"desired":false,"hi_offset":20,"lo_offset":0,"consumer_lag":-1},
                "3":{"partition":3,"desired":true,"hi_offset":-1001,"lo_offset":-1001,"consumer_lag":-1},
                "-1":{"partition":-1,"desired":false,"hi_offset":-1,"lo_offset":-1,"consumer_lag":-1}}}}}"#,
        )
        .expect("statistics JSON");
        let lags = lag::assigned_lags(&stats);
        assert_eq!(lags.get(&("t".to_string(), 0)), Some(&20), "never committed: from the log start");
        assert_eq!(lags.get(&("t".to_string(), 1)), Some(&3));
        assert_eq!(lags.len(), 2, "unassigned, unknown and internal partitions have no series: {lags:?}");
        let extreme =
            lag::Partition { partition: 0, desired: true, hi_offset: i64::MAX, lo_offset: -5, consumer_lag: -1 };
        assert_eq!(lag::partition_lag(&extreme), Some(i64::MAX));
    }

    #[test]
    fn keys_and_headers_over_the_limits_are_refused() {
        let args = ConsumerArgs::default();
        let mut r = rec(0, 0);
        assert_eq!(args.refuse(&r), None);
        r.key = Some(vec![b'k'; 1025]);
        assert!(args.refuse(&r).is_some_and(|why| why.contains("KAFKA_MAX_KEY_BYTES")));
        r.key = Some(vec![b'k'; 1024]);
        r.headers = (0..65).map(|i| (format!("h{i}"), vec![])).collect();
        assert!(args.refuse(&r).is_some_and(|why| why.contains("KAFKA_MAX_HEADERS")));
        r.headers = vec![("big".into(), vec![0; 16 * 1024])];
        assert!(args.refuse(&r).is_some_and(|why| why.contains("KAFKA_MAX_HEADER_BYTES")));
        r.headers = vec![("ok".into(), vec![0; 1000])];
        assert_eq!(args.refuse(&r), None);
    }

    #[test]
    fn handler_error_message_has_the_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such object");
        let e = HandlerError::permanent(Code::ObjectNotFound, inner);
        assert_eq!(e.code, "object_not_found");
        assert_eq!(e.message(), "no such object");
        assert_eq!(e.disposition, Disposition::Permanent);
        let e = e.context("train part");
        assert_eq!((e.code, e.message()), (Code::ObjectNotFound, "train part: no such object".to_string()));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0} failed")]
    struct Failed(Code, bool);
    impl Classified for Failed {
        fn code(&self) -> Code {
            self.0
        }
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn a_classified_error_brings_its_code_and_disposition() {
        let of = |code, retryable| {
            let e = HandlerError::from(Failed(code, retryable));
            (e.code.to_string(), e.disposition)
        };
        assert_eq!(of(Code::S3Unavailable, true), ("s3_unavailable".into(), Disposition::Retryable));
        assert_eq!(of(Code::ChecksumMismatch, false), ("checksum_mismatch".into(), Disposition::Permanent));
        assert_eq!(of(Code::Decode, false), ("decode".into(), Disposition::Decode));
        assert_eq!(of(Code::Cancelled, false), ("cancelled".into(), Disposition::Cancelled));
        // By cause: the error decides.
        assert_eq!(of(Code::PublishFailed, true).1, Disposition::Retryable);
        assert_eq!(of(Code::PublishFailed, false).1, Disposition::Permanent);
        // A fixed policy wins over an error that disagrees.
        assert_eq!(of(Code::ObjectNotFound, true).1, Disposition::Permanent);
        assert_eq!(of(Code::MlflowUnavailable, false).1, Disposition::Retryable);
        fn handler_step() -> Result<(), HandlerError> {
            Err(Failed(Code::BadData, false))?;
            Ok(())
        }
        assert_eq!(handler_step().unwrap_err().code, "bad_data");
    }
}
