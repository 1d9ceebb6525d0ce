//! Every metric kafka-utils exports, registered once in the default registry.
//! Labels stay low-cardinality: topic, partition and outcome, never offsets or keys.
//!
//! Prometheus sees a family only once it has a series, so the families are
//! created at start with every label set known then ([`init_consumer`] from
//! [`crate::consumer::run`], [`init_producer`] from [`crate::Producer::new`]):
//! a fresh stage shows zeros, not nothing.

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounterVec, IntGaugeVec, register_histogram_vec, register_int_counter_vec, register_int_gauge_vec,
};

use crate::consumer::ConsumerSettings;

/// Every family kafka-utils exports (a stage shows all of them once its
/// consumer runs; the lag gauge after librdkafka's first statistics).
pub const FAMILIES: [&str; 9] = [
    "flts_kafka_records_consumed_total",
    "flts_kafka_records_processed_total",
    "flts_kafka_handler_retries_total",
    "flts_kafka_records_dead_lettered_total",
    "flts_kafka_records_produced_total",
    "flts_kafka_handler_duration_seconds",
    "flts_kafka_producer_rebuilds_total",
    "flts_kafka_dlq_fallbacks_total",
    "flts_kafka_consumer_lag",
];

/// Every value of `DEAD_LETTERED`'s `kind` label.
pub const DEAD_LETTER_KINDS: [&str; 3] = ["decode", "permanent", "retries_exhausted"];
/// Every value of `DLQ_FALLBACKS`'s `fallback` label.
pub const DLQ_FALLBACK_KINDS: [&str; 2] = ["minimal", "dropped"];
/// Every value of `PRODUCER_REBUILDS`'s `reason` label.
pub const REBUILD_REASONS: [&str; 2] = ["fatal", "timed_out"];

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

/// DLQ writes that were refused for good (see [`crate::dlq`]), by DLQ topic
/// and what happened then: `minimal` (the minimal envelope was sent instead)
/// or `dropped` (even that was refused; no dead letter exists).
pub static DLQ_FALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_kafka_dlq_fallbacks_total",
        "DLQ envelopes refused for good by the producer or broker, by what was done instead",
        &["topic", "fallback"]
    )
    .expect("metric registered once")
});

/// Records of an assigned partition not yet committed by the group, from
/// librdkafka's statistics: the high watermark minus the committed offset, or
/// minus the log start for a group that never committed (it reads from the
/// earliest record).
pub static CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "flts_kafka_consumer_lag",
        "Records not yet committed by the consumer group, per assigned partition",
        &["group", "topic", "partition"]
    )
    .expect("metric registered once")
});

/// Create every consumer-side series `settings` will use, at zero.
pub fn init_consumer(settings: &ConsumerSettings) {
    for topic in &settings.topics {
        CONSUMED.with_label_values(&[topic.as_str()]);
        PROCESSED.with_label_values(&[topic.as_str()]);
        RETRIED.with_label_values(&[topic.as_str()]);
        HANDLER_SECONDS.with_label_values(&[topic.as_str()]);
        for kind in DEAD_LETTER_KINDS {
            DEAD_LETTERED.with_label_values(&[topic.as_str(), kind]);
        }
        let dlq = contracts::topics::dlq_topic(topic);
        for outcome in ["acked", "failed"] {
            PRODUCED.with_label_values(&[dlq.as_str(), outcome]);
        }
        for fallback in DLQ_FALLBACK_KINDS {
            DLQ_FALLBACKS.with_label_values(&[dlq.as_str(), fallback]);
        }
    }
    LazyLock::force(&CONSUMER_LAG);
}

/// Create every producer-side series known before the first send, at zero.
pub fn init_producer() {
    for reason in REBUILD_REASONS {
        PRODUCER_REBUILDS.with_label_values(&[reason]);
    }
}

/// The metric families this process exposes (registered and with at least
/// one series): what `/metrics` lists.
pub fn exposed_families() -> Vec<String> {
    use prometheus::Encoder as _;
    let mut text = Vec::new();
    if prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut text).is_err() {
        return Vec::new();
    }
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ").and_then(|t| t.split(' ').next()).map(String::from))
        .collect()
}

/// The families of `expected` that the default registry does not expose (yet):
/// what a crate's `init()` test asserts is empty.
pub fn missing_families<'a>(expected: &[&'a str]) -> Vec<&'a str> {
    let exposed = exposed_families();
    expected.iter().copied().filter(|f| !exposed.iter().any(|e| e == f)).collect()
}

/// The lag gauge's value for `group`'s `topic`/`partition` in this process,
/// if librdkafka reported it (the series is not created by asking).
pub fn consumer_lag(group: &str, topic: &str, partition: i32) -> Option<i64> {
    use prometheus::Encoder as _;
    use prometheus::core::Collector as _;
    let mut text = Vec::new();
    prometheus::TextEncoder::new().encode(&CONSUMER_LAG.collect(), &mut text).ok()?;
    let wanted = [format!("group=\"{group}\""), format!("topic=\"{topic}\""), format!("partition=\"{partition}\"")];
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with("flts_kafka_consumer_lag{"))
        .find(|l| wanted.iter().all(|w| l.contains(w.as_str())))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as i64)
}

#[cfg(test)]
mod tests {
    use prometheus::Encoder as _;

    use super::*;
    use crate::consumer::{ConsumerArgs, ConsumerSettings};

    #[test]
    fn init_lists_every_family_with_zero_series_for_the_consumed_topics() {
        let settings = ConsumerSettings {
            service: "s".into(),
            group_id: "g".into(),
            topics: vec!["metrics-init-topic".into()],
            args: ConsumerArgs::default(),
        };
        init_consumer(&settings);
        init_producer();
        let mut text = Vec::new();
        prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut text).expect("encodes");
        let text = String::from_utf8(text).expect("utf-8");
        // The lag gauge has no series until librdkafka reports statistics.
        for family in FAMILIES.iter().filter(|f| **f != "flts_kafka_consumer_lag") {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family} is missing");
        }
        assert!(text.contains("flts_kafka_records_consumed_total{topic=\"metrics-init-topic\"} 0"));
        assert!(text.contains(
            "flts_kafka_records_dead_lettered_total{kind=\"retries_exhausted\",topic=\"metrics-init-topic\"} 0"
        ));
        assert!(
            text.contains("flts_kafka_records_produced_total{outcome=\"acked\",topic=\"DLQ-metrics-init-topic\"} 0")
        );
        assert_eq!(consumer_lag("g", "metrics-init-topic", 0), None, "no lag before librdkafka reports one");
    }
}
