//! The model runtime's metrics (`flts_inference_*`: the service that embeds
//! the runtime exports them beside its own).

use std::sync::LazyLock;

use contracts::ModelType;
use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, IntGauge, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge,
};

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

/// Errors by kind (`bad_request`, `overloaded`, `model`, `batch`, `load`).
pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_inference_errors_total", "Errors by kind", &["kind"])
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

/// Error kinds the runtime counts under [`ERRORS`].
pub const ERROR_KINDS: [&str; 2] = ["load", "bad_data"];

/// Register every family (and the label sets known in advance) at zero.
pub fn init() {
    for path in ["http", "batch"] {
        MODEL_SECONDS.with_label_values(&[path]);
        WINDOWS.with_label_values(&[path]);
    }
    for model_type in [ModelType::Gru, ModelType::Lstm, ModelType::Prophet, ModelType::Ensemble, ModelType::Baseline] {
        for source in ["promotion", "training"] {
            for outcome in ["ok", "error"] {
                MODEL_LOADS.with_label_values(&[model_type.as_str(), source, outcome]);
            }
        }
    }
    MODELS_LOADED.set(0);
    for kind in ERROR_KINDS {
        ERRORS.with_label_values(&[kind]);
    }
    LazyLock::force(&DIGEST_FAILURES);
}
