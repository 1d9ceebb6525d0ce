//! A producer whose sends return only when the broker has acknowledged them.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use serde::Serialize;

use crate::config::{ConfigError, KafkaArgs};
use crate::metrics;

/// Where the broker stored an acknowledged message.
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

impl ProduceError {
    /// Whether sending again may succeed. librdkafka already retried inside the
    /// delivery timeout, so only broker-side transient states count.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProduceError::Delivery { source, .. } => is_retryable_code(source.rdkafka_error_code()),
            _ => false,
        }
    }
}

/// The one place rdkafka error codes are classified (vector's `service.rs` idea).
pub fn is_retryable_code(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode::*;
    match code {
        Some(
            MessageSizeTooLarge
            | UnknownTopicOrPartition
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidRecord
            | UnsupportedVersion
            | InvalidMessage
            | PolicyViolation,
        ) => false,
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

/// JSON producer with acks=all and idempotence: no duplicates from its own
/// retries, no silent return while the broker is away.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    delivery_timeout: Duration,
    service: String,
}

impl Producer {
    /// Build a producer for `service` (used as client id and in a header).
    pub fn new(args: &KafkaArgs, service: &str) -> Result<Self, ProduceError> {
        let mut cfg = args.client_config(service)?;
        cfg.set("acks", "all")
            .set("enable.idempotence", "true")
            // Bounded retries with backoff, all inside the delivery timeout.
            .set("retries", "2147483647")
            .set("retry.backoff.ms", "100")
            .set("retry.backoff.max.ms", "2000")
            .set("message.timeout.ms", args.delivery_timeout_ms.to_string())
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        let inner: FutureProducer = cfg.create().map_err(ProduceError::Client)?;
        Ok(Producer { inner, delivery_timeout: args.delivery_timeout(), service: service.to_string() })
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
        let mut hdrs = OwnedHeaders::new_with_capacity(headers.len() + 2)
            .insert(Header { key: "content-type", value: Some("application/json") })
            .insert(Header { key: "flts-service", value: Some(self.service.as_str()) });
        for (k, v) in headers {
            hdrs = hdrs.insert(Header { key: k, value: Some(*v) });
        }
        // librdkafka retries inside message.timeout.ms; on top of that, a
        // broker answering with a transient or unknown error (tansu does while
        // its storage restarts) is sent again with backoff until the delivery
        // timeout is spent. A resend after an unknown error may duplicate the
        // message: at-least-once, and every consumer is idempotent.
        let deadline = std::time::Instant::now() + self.delivery_timeout;
        let mut wait = Duration::from_millis(200);
        loop {
            let mut record = FutureRecord::to(topic).payload(payload).headers(hdrs.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            // The queue timeout only bounds waiting for room in the local queue;
            // message.timeout.ms bounds the whole delivery.
            match self.inner.send(record, self.delivery_timeout).await {
                Ok(d) => {
                    metrics::PRODUCED.with_label_values(&[topic, "acked"]).inc();
                    return Ok(Delivery { partition: d.partition, offset: d.offset });
                }
                Err((source, _msg)) => {
                    let code = source.rdkafka_error_code();
                    let resend = is_retryable_code(code) || code == Some(RDKafkaErrorCode::Unknown);
                    if resend && std::time::Instant::now() + wait < deadline {
                        tracing::warn!(%topic, error = %source, "send failed; sending again in {wait:?}");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
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
        self.inner.flush(timeout)
    }
}
