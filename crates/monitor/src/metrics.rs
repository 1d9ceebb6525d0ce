//! Every metric the monitor exports. Per-model series are labelled by
//! identifier and model type (a handful per deployment).

use std::sync::LazyLock;

use prometheus::{
    GaugeVec, IntCounterVec, IntGaugeVec, register_gauge_vec, register_int_counter_vec, register_int_gauge_vec,
};

/// performance-eval records taken in, by what they showed.
pub static RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_monitor_records_total",
        "performance-eval records judged, by outcome (warming, healthy, degraded, drift, duplicate)",
        &["outcome"]
    )
    .expect("metric registered once")
});

/// Rolling RMSE of the served forecasts over the model's test RMSE.
pub static ERROR_RATIO: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "flts_monitor_error_ratio",
        "Rolling RMSE of served forecasts divided by the model's test RMSE",
        &["identifier", "model_type"]
    )
    .expect("metric registered once")
});

/// Rolling RMSE of the served forecasts (scaled units).
pub static ROLLING_RMSE: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "flts_monitor_rolling_rmse",
        "Rolling RMSE of served forecasts against actuals (scaled units)",
        &["identifier", "model_type"]
    )
    .expect("metric registered once")
});

/// 1 while a served model is in a drift episode, else 0.
pub static DRIFT_ACTIVE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "flts_monitor_drift_active",
        "1 while the served model's error stays degraded after a drift event",
        &["identifier", "model_type"]
    )
    .expect("metric registered once")
});

/// Drift events published.
pub static DRIFT_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_monitor_drift_events_total",
        "model-drift events published",
        &["identifier", "model_type"]
    )
    .expect("metric registered once")
});

/// Retraining requests sent to preprocess (MONITOR_RETRAIN_ON_DRIFT), by outcome.
pub static RETRAINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_monitor_retrain_requests_total",
        "Retraining requests sent to preprocess on drift, by outcome (sent, no_request_known)",
        &["outcome"]
    )
    .expect("metric registered once")
});

/// Register every metric and the label values known in advance, so that
/// Prometheus sees zeros from the start instead of absent series.
pub fn init() {
    for outcome in ["warming", "healthy", "degraded", "drift", "duplicate"] {
        RECORDS.with_label_values(&[outcome]);
    }
    for outcome in ["sent", "no_request_known"] {
        RETRAINS.with_label_values(&[outcome]);
    }
    LazyLock::force(&ERROR_RATIO);
    LazyLock::force(&ROLLING_RMSE);
    LazyLock::force(&DRIFT_ACTIVE);
    LazyLock::force(&DRIFT_EVENTS);
}
