//! FLTS Kafka plumbing shared by every stage binary.
//!
//! # Layout
//! - [`config`]: [`KafkaArgs`], connection and security settings from flags and
//!   env, validated at start-up; secrets never reach logs.
//! - [`producer`]: [`Producer`], JSON sends that return only after the broker's
//!   acknowledgement (acks=all, idempotence on, the Java client's murmur2
//!   partitioner); an instance librdkafka can no longer use is replaced and the
//!   send goes again; a permanent error is never sent again.
//! - [`consumer`]: [`consumer::run`], the at-least-once loop: a [`Handler`]
//!   per record, offsets stored only after its outputs are acknowledged,
//!   retries with backoff, then the DLQ; keys and headers over the operator's
//!   limits are dead-lettered before the handler; the consumer-lag gauge.
//! - [`backoff`]: the one retry schedule (exponential, full jitter, cap,
//!   attempts or budget, cancellable waits) and [`backoff::retry`].
//! - [`dlq`]: the dead-letter envelope with the original bytes, always sized to
//!   fit the producer's message limit.
//! - [`partitioner`]: which partition a key goes to (Java's murmur2).
//! - [`admin`]: topic bootstrap ([`admin::ensure_topics`]).
//! - [`metrics`]: every `flts_kafka_*` metric.
//! - [`runner`]: [`StageRunner`], the one way a stage runs its admin server,
//!   consumers and tasks under one cancellation token.

pub mod admin;
pub mod backoff;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod metrics;
pub mod partitioner;
pub mod producer;
pub mod runner;

pub use backoff::Backoff;
pub use config::{KafkaArgs, Secret};
pub use consumer::{ConsumerArgs, ConsumerSettings, Disposition, Handler, HandlerError, Record, RunSummary};
pub use producer::{Delivery, ProduceError, Producer, producer_config};
pub use runner::StageRunner;
