//! Every metric kafka-utils exports, registered once in the default registry.
//! Labels stay low-cardinality: topic and outcome, never offsets or keys.

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

/// Records handed to this process by the broker.
pub static CONSUMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_kafka_records_consumed_total", "Records received from Kafka", &["topic"])
        .expect("metric registered once")
});

/// Records whose handler succeeded and whose offset was stored.
pub static PROCESSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_kafka_records_processed_total", "Records processed successfully", &["topic"])
        .expect("metric registered once")
});

/// Handler attempts that failed with a retryable error and were tried again.
pub static RETRIED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_kafka_handler_retries_total", "Handler retries after a retryable error", &["topic"])
        .expect("metric registered once")
});

/// Records sent to a dead-letter topic, by why.
pub static DEAD_LETTERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_kafka_records_dead_lettered_total", "Records sent to their DLQ", &["topic", "kind"])
        .expect("metric registered once")
});

/// Messages acknowledged by the broker, and sends that failed.
pub static PRODUCED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_kafka_records_produced_total",
        "Messages produced, by outcome (acked or failed)",
        &["topic", "outcome"]
    )
    .expect("metric registered once")
});

/// Wall time of one handler call, retries excluded.
pub static HANDLER_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "flts_kafka_handler_duration_seconds",
        "Handler latency per attempt",
        &["topic"],
        vec![0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0, 300.0, 1800.0]
    )
    .expect("metric registered once")
});

/// Producer instances replaced after a fatal error or a timed-out message
/// (see [`crate::producer`]), by reason (`fatal`, `timed_out`).
pub static PRODUCER_REBUILDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_kafka_producer_rebuilds_total",
        "Producer instances replaced by a fresh one, by reason",
        &["reason"]
    )
    .expect("metric registered once")
});
