//! Every metric the trainers export (`flts_trainer_*`, labelled by model type where it helps).

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, register_histogram_vec, register_int_counter, register_int_counter_vec,
};

/// Finished runs by outcome (success, failed).
pub static RUNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_trainer_runs_total", "Training runs by outcome", &["outcome"])
        .expect("metric registered once")
});

/// Claim checks answered from an already finished run.
pub static REPUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("flts_trainer_republished_total", "Redelivered claim checks answered from a finished run")
        .expect("metric registered once")
});

/// Epochs (or fitted targets) completed.
pub static EPOCHS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_trainer_epochs_total", "Training epochs completed", &["model_type"])
        .expect("metric registered once")
});

/// Wall time of one fit.
pub static FIT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "flts_trainer_fit_seconds",
        "Wall time of one fit",
        &["model_type"],
        vec![0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0]
    )
    .expect("metric registered once")
});

/// MLflow calls retried after a fit.
pub static MLFLOW_RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("flts_trainer_mlflow_retries_total", "MLflow calls retried after a fit")
        .expect("metric registered once")
});

/// Register every family with the label sets known in advance, at zero, so a
/// fresh trainer's /metrics lists them before the first claim check. Call once
/// at start with the trainer's model type (a new family here belongs in this
/// list too).
pub fn init(model_type: &str) {
    for outcome in ["success", "failed"] {
        RUNS.with_label_values(&[outcome]);
    }
    LazyLock::force(&REPUBLISHED);
    EPOCHS.with_label_values(&[model_type]);
    FIT_SECONDS.with_label_values(&[model_type]);
    LazyLock::force(&MLFLOW_RETRIES);
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_lists_every_family_before_first_use() {
        super::init("gru");
        let missing = kafka_utils::metrics::missing_families(&[
            "flts_trainer_runs_total",
            "flts_trainer_republished_total",
            "flts_trainer_epochs_total",
            "flts_trainer_fit_seconds",
            "flts_trainer_mlflow_retries_total",
        ]);
        assert!(missing.is_empty(), "missing after init: {missing:?}");
    }
}
