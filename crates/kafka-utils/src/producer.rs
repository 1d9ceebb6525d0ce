//! A producer whose sends return only when the broker has acknowledged them.
//!
//! # Recovering an unusable idempotent producer
//! librdkafka's idempotent producer answers a permanent produce error (and a
//! timed-out message) by bumping its epoch: an `InitProducerId` request that
//! carries the current producer id (KIP-360). tansu 0.6.0, the local stack's
//! broker, does not implement that request: its sqlite storage hits a
//! `todo!()`, the panic ends tansu's one storage task, and from then on every
//! request to that broker fails (`Storage(UnableToSend)`, produce answers
//! UNKNOWN_SERVER_ERROR) until it is restarted. A graceful tansu restart
//! triggers exactly that: after SIGTERM it stops its storage first and, for up
//! to 5 s, answers the still-open connections with UNKNOWN_SERVER_ERROR.
//!
//! So the producer never lets librdkafka bump the epoch:
//! `enable.gapless.guarantee` turns a permanent error into a fatal one instead,
//! and a timed-out message marks the instance as about to bump. Either way the
//! [`Producer`] replaces its librdkafka instance with a fresh one (a new
//! producer id, an `InitProducerId` every broker supports), counts it in
//! `flts_kafka_producer_rebuilds_total` and sends the failed message again
//! within the delivery timeout. A message sent again may be stored twice
//! (at-least-once); every consumer is idempotent.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use serde::Serialize;

use contracts::error::{Classified, Code};

use crate::backoff::Backoff;
use crate::config::{ConfigError, KafkaArgs};
use crate::metrics;

/// One librdkafka producer instance (see [`QuietContext`]).
type Client = FutureProducer<QuietContext>;

/// The resend schedule of a failed send, within the delivery timeout.
const RESEND: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Where the broker stored an acknowledged message. A retry of a message the
/// broker had already stored is acknowledged without a valid (non-negative)
/// offset: librdkafka reports the broker's duplicate-sequence answer as a
/// delivery whose offset it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// A send that did not reach the broker.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot build producer: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot create producer: {0}")]
    Client(KafkaError),
    #[error("cannot encode message for {topic}: {source}")]
    Encode { topic: String, source: serde_json::Error },
    #[error("broker did not acknowledge message to {topic}: {source}")]
    Delivery { topic: String, source: KafkaError },
}

/// Every failed send is `publish_failed` (one name in every stage); whether
/// it may pass later depends on the broker's answer.
impl Classified for ProduceError {
    fn code(&self) -> Code {
        Code::PublishFailed
    }
    /// Whether sending again may succeed. librdkafka already retried inside the
    /// delivery timeout, so only broker-side transient states count.
    fn is_retryable(&self) -> bool {
        match self {
            ProduceError::Delivery { source, .. } => is_retryable_code(source.rdkafka_error_code()),
            _ => false,
        }
    }
}

impl ProduceError {
    /// Whether this message can never be sent as it is (see [`is_permanent_code`]).
    pub fn is_permanent(&self) -> bool {
        match self {
            ProduceError::Delivery { source, .. } => is_permanent_code(source.rdkafka_error_code()),
            ProduceError::Encode { .. } => true,
            _ => false,
        }
    }
}

/// The one place rdkafka error codes are classified (vector's `service.rs` idea):
/// whether sending the same message again may succeed.
pub fn is_retryable_code(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode::*;
    match code {
        Some(code) if is_permanent_code(Some(code)) => false,
        Some(
            MessageTimedOut
            | QueueFull
            | BrokerTransportFailure
            | AllBrokersDown
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | LeaderNotAvailable
            | NotLeaderForPartition
            | RequestTimedOut
            | NetworkException,
        ) => true,
        Some(_) | None => false,
    }
}

/// Whether the broker (or librdkafka, locally) refuses this message for what
/// it is: too large, malformed, or not allowed on that topic. Sending the same
/// message again can never succeed, so it is never sent again; a DLQ write that
/// meets one shrinks its envelope instead ([`crate::dlq`]).
pub fn is_permanent_code(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | MessageBatchTooLarge
                | InvalidMessage
                | InvalidRecord
                | InvalidTopic
                | InvalidRequiredAcks
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | TransactionalIdAuthorizationFailed
                | UnsupportedVersion
                | UnsupportedForMessageFormat
                | UnsupportedCompressionType
                | PolicyViolation
                | InvalidArgument
                | BadMessage
                | InvalidType
        )
    )
}

/// The librdkafka settings of every FLTS producer: acks=all, idempotence,
/// bounded retries with backoff inside the delivery timeout, lz4, a short
/// linger, the Java client's murmur2 partitioner ([`crate::partitioner`]) and
/// the message size limit of [`KafkaArgs::message_max_bytes`]. Public so
/// benches can build a bare rdkafka producer that is the same.
pub fn producer_config(args: &KafkaArgs, service: &str) -> Result<ClientConfig, ConfigError> {
    let mut cfg = args.client_config(service)?;
    cfg.set("acks", "all")
        .set("enable.idempotence", "true")
        // A permanent error raises a fatal error instead of an epoch bump
        // (see the module docs); the Producer then rebuilds its instance.
        .set("enable.gapless.guarantee", "true")
        // Bounded retries with backoff, all inside the delivery timeout.
        .set("retries", "2147483647")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "2000")
        .set("message.timeout.ms", args.delivery_timeout_ms.to_string())
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        // A key lands on the partition the Java and kafka-python clients pick.
        .set("partitioner", crate::partitioner::PARTITIONER)
        .set("message.max.bytes", args.message_max_bytes.to_string());
    Ok(cfg)
}

/// The librdkafka instance in use and how many times it was replaced.
struct Instance {
    generation: u64,
    producer: Client,
}

/// librdkafka's log lines, as [`DefaultClientContext`] passes them on, less
/// the warning that `enable.gapless.guarantee` is experimental: it is set on
/// purpose (see the module docs), and a warning on every start of every stage
/// that nobody can act on teaches operators to ignore warnings. It goes to
/// debug instead.
#[derive(Clone, Copy)]
struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "CONFWARN" && log_message.contains("enable.gapless.guarantee") {
            tracing::debug!(target: "librdkafka", "{fac} {log_message}");
        } else {
            DefaultClientContext.log(level, fac, log_message);
        }
    }
}

struct Shared {
    config: ClientConfig,
    current: RwLock<Instance>,
    delivery_timeout: Duration,
    max_message_bytes: usize,
    service: String,
}

/// JSON producer with acks=all and idempotence: no duplicates from its own
/// retries, no silent return while the broker is away. Clones share one
/// librdkafka instance.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl Producer {
    /// Build a producer for `service` (used as client id and in a header).
    pub fn new(args: &KafkaArgs, service: &str) -> Result<Self, ProduceError> {
        let config = producer_config(args, service)?;
        let producer: Client = config.create_with_context(QuietContext).map_err(ProduceError::Client)?;
        metrics::init_producer();
        Ok(Producer {
            shared: Arc::new(Shared {
                config,
                current: RwLock::new(Instance { generation: 0, producer }),
                delivery_timeout: args.delivery_timeout(),
                max_message_bytes: args.message_max_bytes,
                service: service.to_string(),
            }),
        })
    }

    /// librdkafka's `message.max.bytes` for this producer: a message whose key,
    /// payload and headers exceed it is refused locally (`MessageSizeTooLarge`).
    pub fn max_message_bytes(&self) -> usize {
        self.shared.max_message_bytes
    }

    /// Serialize `value` as JSON and send it; returns once the broker acknowledged it.
    pub async fn send_json<T: Serialize>(
        &self,
        topic: &str,
        key: Option<&str>,
        value: &T,
    ) -> Result<Delivery, ProduceError> {
        let payload =
            serde_json::to_vec(value).map_err(|source| ProduceError::Encode { topic: topic.to_string(), source })?;
        self.send_bytes(topic, key.map(str::as_bytes), &payload, &[]).await
    }

    /// Send a message (a typed contract) to its own topic, keyed by its identifier.
    pub async fn publish<M: contracts::Message>(&self, message: &M) -> Result<Delivery, ProduceError> {
        self.send_json(M::TOPIC, Some(message.identifier()), message).await
    }

    /// Send raw bytes with extra headers; returns once the broker acknowledged them.
    pub async fn send_bytes(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<Delivery, ProduceError> {
        let mut hdrs = OwnedHeaders::new_with_capacity(headers.len().saturating_add(2))
            .insert(Header { key: "content-type", value: Some("application/json") })
            .insert(Header { key: "flts-service", value: Some(self.shared.service.as_str()) });
        for (k, v) in headers {
            hdrs = hdrs.insert(Header { key: k, value: Some(*v) });
        }
        // librdkafka retries inside message.timeout.ms. On top of that, a send
        // that failed on an instance that had to be replaced, or with a
        // transient or unknown broker error, is sent again with backoff until
        // the delivery timeout is spent. A resend may duplicate the message:
        // at-least-once, and every consumer is idempotent.
        let mut schedule = RESEND.budget(self.shared.delivery_timeout).start();
        loop {
            let (generation, producer) = self.current();
            let mut record = FutureRecord::to(topic).payload(payload).headers(hdrs.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            // The queue timeout only bounds waiting for room in the local queue;
            // message.timeout.ms bounds the whole delivery.
            let result = producer.send(record, self.shared.delivery_timeout).await;
            match result {
                Ok(d) => {
                    metrics::PRODUCED.with_label_values(&[topic, "acked"]).inc();
                    return Ok(Delivery { partition: d.partition, offset: d.offset });
                }
                Err((source, _msg)) => {
                    let code = source.rdkafka_error_code();
                    let replaced = self.replace_if_unusable(generation, &producer, code);
                    drop(producer);
                    // A permanent error is never sent again, even when the
                    // instance it failed on was replaced (with gapless
                    // guarantee a broker-side permanent error is fatal).
                    let resend = !is_permanent_code(code)
                        && (replaced || is_retryable_code(code) || code == Some(RDKafkaErrorCode::Unknown));
                    if resend && let Some(wait) = schedule.next_delay() {
                        tracing::warn!(%topic, error = %source, "send failed; sending again in {wait:?}");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    metrics::PRODUCED.with_label_values(&[topic, "failed"]).inc();
                    return Err(ProduceError::Delivery { topic: topic.to_string(), source });
                }
            }
        }
    }

    /// Wait for every message in flight (used at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.current().1.flush(timeout)
    }

    fn current(&self) -> (u64, Client) {
        let cur = self.shared.current.read().unwrap_or_else(|e| e.into_inner());
        (cur.generation, cur.producer.clone())
    }

    /// After a failed send on instance `generation`: replace that instance if
    /// it cannot be used any more (a fatal error, or a timed-out message after
    /// which librdkafka would bump the epoch). Returns whether the send failed
    /// on an instance that is no longer current, i.e. sending again may work.
    fn replace_if_unusable(&self, generation: u64, used: &Client, code: Option<RDKafkaErrorCode>) -> bool {
        let (reason, detail) = match used.client().fatal_error() {
            Some((_, why)) => ("fatal", why),
            None if code == Some(RDKafkaErrorCode::MessageTimedOut) => ("timed_out", "a message timed out".into()),
            None => return self.shared.current.read().unwrap_or_else(|e| e.into_inner()).generation != generation,
        };
        let mut cur = self.shared.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.generation != generation {
            return true; // another send replaced it already
        }
        match self.shared.config.create_with_context::<_, Client>(QuietContext) {
            Ok(fresh) => {
                cur.generation += 1;
                // The old instance is destroyed when its last in-flight send
                // drops it; librdkafka purges what it still holds, and those
                // sends come here and go again on the fresh instance.
                cur.producer = fresh;
                metrics::PRODUCER_REBUILDS.with_label_values(&[reason]).inc();
                tracing::warn!(service = %self.shared.service, generation = cur.generation, %detail,
                    "producer instance replaced by a fresh one; failed sends go again");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, %detail, "cannot create a replacement producer");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::{Disposition, HandlerError};

    fn delivery(code: RDKafkaErrorCode) -> ProduceError {
        ProduceError::Delivery { topic: "t".into(), source: KafkaError::MessageProduction(code) }
    }

    #[test]
    fn a_failed_send_is_publish_failed_and_retryable_only_while_the_broker_is_away() {
        let away = delivery(RDKafkaErrorCode::AllBrokersDown);
        let refused = delivery(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!((away.code(), away.is_retryable()), (Code::PublishFailed, true));
        assert_eq!((refused.code(), refused.is_retryable()), (Code::PublishFailed, false));
        assert_eq!(HandlerError::from(away).disposition, Disposition::Retryable);
        assert_eq!(HandlerError::from(refused).disposition, Disposition::Permanent);
    }

    /// The lines `log` emits through [`QuietContext`], at debug and above.
    fn logged(log: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_gapless_guarantee_warning_is_debug_and_other_warnings_stay_warnings() {
        let experimental = "Configuration property enable.gapless.guarantee is experimental: When set to `true`, ...";
        let line = logged(|| QuietContext.log(RDKafkaLogLevel::Warning, "CONFWARN", experimental));
        assert!(line.contains(" DEBUG ") && !line.contains(" WARN "), "{line}");
        let other = "Configuration property queue.buffering.max.ms is deprecated";
        let line = logged(|| QuietContext.log(RDKafkaLogLevel::Warning, "CONFWARN", other));
        assert!(line.contains(" WARN ") && line.contains("queue.buffering.max.ms"), "{line}");
    }
}
