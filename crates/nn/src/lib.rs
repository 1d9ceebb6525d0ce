//! FLTS GRU and LSTM trainer: a hand-written, single-precision recurrent network
//! with a linear head, trained with Adam on mean squared error, and exported as a
//! standard ONNX model (pure Rust, no I/O).
//!
//! The maths is PyTorch's: [`CellKind::Gru`] is `nn.GRU` (reset gate applied after
//! the recurrent product, ONNX `linear_before_reset=1`), [`CellKind::Lstm`] is
//! `nn.LSTM`, both with an input and a recurrent bias, stacked `layers` deep; the
//! head maps the top layer's last hidden state to `n_outputs` values. Weights are
//! initialised like PyTorch's, `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
//!
//! Tensors are flat `f32` slices:
//! - model inputs, for [`Network::predict`] and [`train`], are **batch-major**
//!   `[window][input_len][n_features]` (one window after the other, each in time order);
//! - targets and predictions are `[window][n_outputs]`;
//! - the exported ONNX model's input is **time-major** `[input_len, batch, n_features]`
//!   (ONNX `layout = 0`): transpose before feeding it (see [`export_onnx`]).
//!
//! # Layout
//! - [`config`]: [`ModelConfig`], [`TrainConfig`], [`CellKind`].
//! - [`network`]: [`Network`], the weights, and inference.
//! - [`train`](mod@train): [`train`](fn@train), early stopping, [`TrainReport`].
//! - [`onnx`]: [`export_onnx`], the model for tract, onnxruntime and the inference service.
//! - [`naive`]: [`export_naive`], last value and seasonal naive as ONNX models (eval's fallback).
//! - `rnn` (private): the forward and backward passes, batch-major per time step on
//!   `matrixmultiply`'s sgemm, with buffers allocated once per call.

pub mod config;
pub mod naive;
pub mod network;
pub mod onnx;
pub mod train;

mod adam;
mod gemm;
mod math;
mod rng;
mod rnn;

#[cfg(test)]
mod reference;

pub use config::{CellKind, ModelConfig, TrainConfig};
pub use naive::{Naive, NaiveSpec, export_naive};
pub use network::Network;
pub use onnx::export_onnx;
pub use train::{EpochReport, TrainReport, train};

/// Why a network cannot be built, trained or loaded. None of these is transient:
/// the same input fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("invalid model config: {0}")]
    InvalidModel(String),
    #[error("invalid training config: {0}")]
    InvalidTraining(String),
    #[error(
        "{what}: {inputs} input and {targets} target values are not whole windows \
         of {input_len}x{n_features} inputs and {n_outputs} outputs"
    )]
    Shape { what: &'static str, inputs: usize, targets: usize, input_len: usize, n_features: usize, n_outputs: usize },
    #[error("{0} set has no windows")]
    Empty(&'static str),
    #[error("{what} window {window} holds a NaN or infinite value")]
    NonFiniteData { what: &'static str, window: usize },
    #[error("loss became NaN or infinite in epoch {epoch} (lower the learning rate or set a gradient clip)")]
    NonFinite { epoch: usize },
    #[error("training cancelled")]
    Cancelled,
    #[error("network has {actual} parameters but its config needs {expected}")]
    ParamCount { expected: usize, actual: usize },
}
