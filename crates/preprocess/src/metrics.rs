//! Every metric the preprocess stage exports.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, register_histogram, register_int_counter, register_int_counter_vec,
};

/// Jobs by outcome: processed, reused (re-published without recomputing), failed (per attempt).
pub static JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_preprocess_jobs_total", "Preprocess jobs by outcome", &["outcome"])
        .expect("metric registered once")
});

/// Processed rows written, by part (train, test).
pub static ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_preprocess_rows_total", "Processed rows written", &["part"])
        .expect("metric registered once")
});

/// Rows filled over a gap longer than `clean.fill_limit` (listed in
/// `flts.gaps`, so that no window uses them), both parts.
pub static LONG_GAP_ROWS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "flts_preprocess_long_gap_rows_total",
        "Processed rows filled over gaps longer than clean.fill_limit (in flts.gaps, used by no window)"
    )
    .expect("metric registered once")
});
/// Raw input bytes read.
pub static INPUT_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("flts_preprocess_input_bytes_total", "Raw input bytes read").expect("metric registered once")
});

/// Wall time of a successful job, fetch to publish.
pub static SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "flts_preprocess_job_seconds",
        "Wall time of a successful preprocess job",
        vec![0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
    )
    .expect("metric registered once")
});

/// Register every family with the label sets known in advance, at zero, so a
/// fresh preprocess's /metrics lists them before the first request. Call once
/// at start (a new family here belongs in this list too).
pub fn init() {
    for outcome in ["processed", "reused", "failed"] {
        JOBS.with_label_values(&[outcome]);
    }
    for part in ["train", "test"] {
        ROWS.with_label_values(&[part]);
    }
    LazyLock::force(&INPUT_BYTES);
    LazyLock::force(&SECONDS);
    LazyLock::force(&LONG_GAP_ROWS);
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_lists_every_family_before_first_use() {
        super::init();
        let missing = kafka_utils::metrics::missing_families(&[
            "flts_preprocess_jobs_total",
            "flts_preprocess_rows_total",
            "flts_preprocess_input_bytes_total",
            "flts_preprocess_job_seconds",
            "flts_preprocess_long_gap_rows_total",
        ]);
        assert!(missing.is_empty(), "missing after init: {missing:?}");
    }
}
