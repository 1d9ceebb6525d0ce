//! Every metric the claim-check store exports.

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

/// S3 calls by operation and outcome (ok, not_found, error).
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_s3_requests_total", "S3 requests by operation and outcome", &["op", "outcome"])
        .expect("metric registered once")
});

/// S3 call latency by operation.
pub static SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "flts_s3_request_duration_seconds",
        "S3 request latency",
        &["op"],
        vec![0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0]
    )
    .expect("metric registered once")
});

/// Bytes moved by direction (put, get).
pub static BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_s3_bytes_total", "Bytes uploaded and downloaded", &["direction"])
        .expect("metric registered once")
});
