//! Every metric the eval stage exports.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, register_int_counter_vec, register_int_gauge};

/// model-training events taken in, by status.
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_eval_events_total", "model-training events taken in", &["status"])
        .expect("metric registered once")
});

/// Decisions by outcome (promoted, not_promoted) and trigger (complete, timeout).
pub static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_eval_decisions_total", "Promotion decisions", &["outcome", "trigger"])
        .expect("metric registered once")
});

/// Sets waiting for more models.
pub static PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("flts_eval_pending_sets", "Sets waiting for more model reports")
        .expect("metric registered once")
});
