//! The FLTS model runtime: what serving a promoted model takes, apart from
//! any transport. The inference service (Kafka, HTTP, batch) is built on it.
//!
//! A promotion (or a fresh SUCCESS) names a model in an MLflow run; the
//! [`loader`] fetches its files from the artifact store in S3, checks their
//! sizes and SHA-256, and builds a [`model::Model`]: raw rows in, forecasts in
//! original units out, the model scaler's input clip and forecast floor
//! applied on every path. ONNX networks run on tract ([`net`]), Prophet from
//! its fitted parameters ([`prophet`]), and an ensemble is the weighted mean
//! of its members ([`contracts::ensemble`]). The [`registry`] holds the
//! served models and decides which promotion wins.
//!
//! # Layout
//! - [`model`]: a served model, its scaling, clip and floor; ensembles.
//! - [`net`]: the forward pass ([`net::Net`]) and its tract ONNX implementation.
//! - [`prophet`]: Prophet models from `prophet.json`.
//! - [`loader`]: artifacts from the MLflow artifact store in S3, `current.json`.
//! - [`registry`]: the served models and the precedence rules.
//! - [`synthetic`]: hand-built ONNX models with a reference forward pass (tests, benches).
//! - [`metrics`]: the runtime's `flts_inference_*` families.

pub mod loader;
pub mod metrics;
pub mod model;
pub mod net;
pub mod prophet;
pub mod registry;
pub mod synthetic;

pub use loader::{ArtifactDestination, LoadError, Loader};
pub use model::{Forecast, Model, ModelInfo, ModelSource, ModelSpec, PredictError};
pub use registry::Registry;

#[cfg(test)]
mod tests {
    #[test]
    fn init_lists_every_family_before_first_use() {
        super::metrics::init();
        let missing = kafka_utils::metrics::missing_families(&[
            "flts_inference_model_seconds",
            "flts_inference_windows_total",
            "flts_inference_model_loads_total",
            "flts_inference_models_loaded",
            "flts_inference_errors_total",
            "flts_inference_model_digest_failures_total",
        ]);
        assert!(missing.is_empty(), "missing after init: {missing:?}");
    }
}
