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

/// Every value of the `op` label.
pub const OPS: [&str; 5] = ["put", "get", "head", "list", "delete"];

/// Register every family with the label sets known in advance, at zero, so a
/// fresh process's /metrics lists them before the first S3 call. Call once at
/// start (a new family here belongs in this list too).
pub fn init() {
    for op in OPS {
        SECONDS.with_label_values(&[op]);
        for outcome in ["ok", "not_found", "error"] {
            REQUESTS.with_label_values(&[op, outcome]);
        }
    }
    for direction in ["put", "get"] {
        BYTES.with_label_values(&[direction]);
    }
}

#[cfg(test)]
mod tests {
    use prometheus::Encoder as _;

    #[test]
    fn init_lists_every_family_before_first_use() {
        super::init();
        let mut text = Vec::new();
        prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut text).expect("encodes");
        let text = String::from_utf8(text).expect("utf-8");
        for family in ["flts_s3_requests_total", "flts_s3_request_duration_seconds", "flts_s3_bytes_total"] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family} is missing");
        }
    }
}
