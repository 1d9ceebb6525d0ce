//! Every metric the inference service exports (`flts_inference_*`).

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, IntGauge, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge,
};

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

/// Time a model spent forecasting, by path (`http`, `batch`).
pub static MODEL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "flts_inference_model_seconds",
        "Time spent in the model's forward pass",
        &["path"],
        vec![0.000_02, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0]
    )
    .expect("metric registered once")
});

/// Windows forecast, by path (`http`, `batch`).
pub static WINDOWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_inference_windows_total", "Forecast windows", &["path"])
        .expect("metric registered once")
});

/// Model loads by model type, source (`promotion`, `training`, `startup`) and outcome.
pub static MODEL_LOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_inference_model_loads_total",
        "Model load attempts",
        &["model_type", "source", "outcome"]
    )
    .expect("metric registered once")
});

/// Models currently served (one per identifier).
pub static MODELS_LOADED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("flts_inference_models_loaded", "Models currently served").expect("metric registered once")
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

/// Errors by kind (`bad_request`, `overloaded`, `model`, `batch`, `load`).
pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_inference_errors_total", "Errors by kind", &["kind"])
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

/// Model files refused because their SHA-256 is not the one recorded at
/// training (or none was recorded). The previous model, if any, stays
/// served. No identifier label: identifiers come from input.
pub static DIGEST_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "flts_inference_model_digest_failures_total",
        "Model files refused because their SHA-256 differs from the one recorded at training"
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
    for route in ROUTES {
        LATENCY.with_label_values(&[route]);
        REQUESTS.with_label_values(&[route, "200"]);
    }
    QUEUE_DEPTH.set(0);
    for path in ["http", "batch"] {
        MODEL_SECONDS.with_label_values(&[path]);
        WINDOWS.with_label_values(&[path]);
    }
    for model_type in ["gru", "lstm", "prophet"] {
        for source in ["promotion", "training"] {
            for outcome in ["ok", "error"] {
                MODEL_LOADS.with_label_values(&[model_type, source, outcome]);
            }
        }
    }
    MODELS_LOADED.set(0);
    // Labelled by identifier: the family shows with the first batch.
    LazyLock::force(&BATCH_ROWS);
    for outcome in ["ok", "error"] {
        BATCH_RUNS.with_label_values(&[outcome]);
    }
    for kind in ["bad_request", "overloaded", "model", "batch", "load", "bad_data"] {
        ERRORS.with_label_values(&[kind]);
    }
    for event in ["parked", "run", "dead_lettered"] {
        PARKED.with_label_values(&[event]);
    }
    LazyLock::force(&DIGEST_FAILURES);
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
