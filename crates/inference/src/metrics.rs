//! Every metric the inference service exports (`flts_inference_*`).

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, IntGauge, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge,
};

// The model runtime's families (forward passes, loads, served models, errors).
pub use model_runtime::metrics::{DIGEST_FAILURES, ERRORS, MODEL_LOADS, MODEL_SECONDS, MODELS_LOADED, WINDOWS};

/// HTTP requests answered, by route and status code.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_inference_http_requests_total", "HTTP requests answered", &["route", "status"])
        .expect("metric registered once")
});

/// HTTP request latency by route, from the first byte read to the response.
pub static LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "flts_inference_http_request_seconds",
        "HTTP request latency",
        &["route"],
        vec![0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
    )
    .expect("metric registered once")
});

/// /predict requests admitted to the work queue (waiting for a worker or running).
pub static QUEUE_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("flts_inference_queue_depth", "Predict requests admitted and not finished")
        .expect("metric registered once")
});

/// Rows of test data read by batch inference.
pub static BATCH_ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_inference_batch_rows_total", "Test rows read by batch inference", &["identifier"])
        .expect("metric registered once")
});

/// Batch inference runs by outcome (`ok`, `error`).
pub static BATCH_RUNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_inference_batch_runs_total", "Batch inference runs", &["outcome"])
        .expect("metric registered once")
});

/// Inference-data requests that arrived before any model was served for their
/// identifier, by event: `parked` (written to `pending/`), `run` (forecast and
/// deleted once a model was installed), `dead_lettered` (failed for good when run).
pub static PARKED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_inference_parked_requests_total",
        "Inference-data requests parked until a model is served, by event",
        &["event"]
    )
    .expect("metric registered once")
});

/// model-selected records refused because eval's pointer does not confirm them.
pub static UNCONFIRMED_PROMOTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "flts_inference_unconfirmed_promotions_total",
        "model-selected records the promotion pointer does not confirm (forged or corrupt)"
    )
    .expect("metric registered once")
});

/// Every route the HTTP metrics name (the rest is `other`).
pub const ROUTES: [&str; 6] = ["/predict", "/model", "/healthz", "/readyz", "/metrics", "other"];

/// Register every family with the label sets known in advance, at zero, so a
/// fresh inference's /metrics lists them before the first request or record.
/// Call once at start (a new family here belongs in this list too).
pub fn init() {
    model_runtime::metrics::init();
    for route in ROUTES {
        LATENCY.with_label_values(&[route]);
        REQUESTS.with_label_values(&[route, "200"]);
    }
    QUEUE_DEPTH.set(0);
    // Labelled by identifier: the family shows with the first batch.
    LazyLock::force(&BATCH_ROWS);
    for outcome in ["ok", "error"] {
        BATCH_RUNS.with_label_values(&[outcome]);
    }
    for kind in ["bad_request", "overloaded", "model", "batch"] {
        ERRORS.with_label_values(&[kind]);
    }
    for event in ["parked", "run", "dead_lettered"] {
        PARKED.with_label_values(&[event]);
    }
    LazyLock::force(&UNCONFIRMED_PROMOTIONS);
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_lists_every_family_before_first_use() {
        super::init();
        let missing = kafka_utils::metrics::missing_families(&[
            "flts_inference_http_requests_total",
            "flts_inference_http_request_seconds",
            "flts_inference_queue_depth",
            "flts_inference_model_seconds",
            "flts_inference_windows_total",
            "flts_inference_model_loads_total",
            "flts_inference_models_loaded",
            "flts_inference_batch_runs_total",
            "flts_inference_errors_total",
            "flts_inference_parked_requests_total",
            "flts_inference_model_digest_failures_total",
            "flts_inference_unconfirmed_promotions_total",
        ]);
        assert!(missing.is_empty(), "missing after init: {missing:?}");
    }
}
