//! Every integration test of the `flts-tests` package, in one test binary.
//!
//! Each module is one file of tests/ (named `file::function` in the docs and in
//! test output); they share the `flts_tests` library (tests/common/) and the
//! test worlds below. One binary instead of one per file: each binary links
//! the whole pipeline (polars, tract, the AWS SDK, librdkafka), about 130 MB
//! apiece, so 29 of them cost CI about 4 GB of disk and 29 links.
//!
//! Run one file's tests with `cargo test --test integration FILE::`.
//! `compose_up` and the fuzz targets are `#[ignore]`d: scripts/test and
//! scripts/fuzz run them with `--ignored`.

// The test worlds several files share.
#[path = "worlds/eval_world.rs"]
mod eval_world;
#[path = "worlds/inference_world.rs"]
mod inference_world;
#[path = "support/unchecked_parquet.rs"]
mod unchecked;

mod alerts;
mod broker_restart;
mod compose;
mod compose_up;
mod crash;
mod eval;
mod forecast_quality;
mod fuzz;
mod hostile_data;
mod hostile_inference_data;
mod hostile_kafka;
mod hostile_promotion;
mod inference;
mod interop;
mod kafka;
mod mlflow;
mod monitor;
mod once_chain;
mod outage;
mod pipeline;
mod poison;
mod preprocess;
mod registry;
mod s3;
mod scale_out;
mod stage_crash;
mod status;
mod topology;
mod training;
