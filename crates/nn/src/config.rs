//! What to build ([`ModelConfig`]) and how to train it ([`TrainConfig`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::NnError;

/// The recurrent cell. Gate order inside the weights is PyTorch's: GRU
/// `r, z, n` (reset, update, new), LSTM `i, f, g, o` (input, forget, cell, output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    Gru,
    Lstm,
}

impl CellKind {
    /// Gates per hidden unit: 3 for a GRU, 4 for an LSTM.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }
}

impl fmt::Display for CellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CellKind::Gru => "GRU",
            CellKind::Lstm => "LSTM",
        })
    }
}

/// The shape of a network: `layers` stacked recurrent layers of `hidden` units
/// reading windows of `input_len` rows of `n_features` values, and a linear head
/// from the last hidden state to `n_outputs` values (`output_len * n_targets`,
/// step-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub cell: CellKind,
    pub n_features: usize,
    pub hidden: usize,
    /// Usually 1 or 2; any positive number works.
    pub layers: usize,
    pub input_len: usize,
    pub n_outputs: usize,
}

impl ModelConfig {
    /// Every size must be at least 1.
    pub fn validate(&self) -> Result<(), NnError> {
        let sizes = [
            ("n_features", self.n_features),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("input_len", self.input_len),
            ("n_outputs", self.n_outputs),
        ];
        match sizes.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(NnError::InvalidModel(format!("{name} must be at least 1"))),
            None => Ok(()),
        }
    }

    /// Rows of a layer's weight matrices: `gates * hidden`.
    pub(crate) fn gate_rows(&self) -> usize {
        self.cell.gates() * self.hidden
    }

    /// Width of layer `layer`'s input: the features for the first, the hidden state above.
    pub(crate) fn layer_input(&self, layer: usize) -> usize {
        if layer == 0 { self.n_features } else { self.hidden }
    }

    /// Values per input window: `input_len * n_features`.
    pub(crate) fn window_len(&self) -> usize {
        self.input_len * self.n_features
    }
}

/// How to train. Loss is the mean squared error over every output of every window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of passes over the training windows.
    pub epochs: usize,
    /// Windows per Adam step; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Adam step size (betas 0.9 and 0.999, epsilon 1e-8, as PyTorch's defaults).
    pub learning_rate: f32,
    /// Stop after this many epochs without a lower validation loss; 0 = never stop early.
    pub patience: usize,
    /// Scale the gradient down when its global L2 norm exceeds this
    /// (PyTorch's `clip_grad_norm_`); 0 = no clipping.
    pub clip_norm: f32,
    /// Seeds the shuffling of training windows. Same data, config, seed and
    /// thread count give the same weights.
    pub seed: u64,
    /// Visit the training windows in a new random order every epoch (otherwise
    /// in chronological order, every epoch the same).
    #[serde(default = "shuffle_default")]
    pub shuffle: bool,
    /// Threads sharing each batch; 0 = one per available core. Results differ in
    /// the last bits between thread counts (the gradient is summed in another order).
    pub threads: usize,
}

fn shuffle_default() -> bool {
    true
}

impl TrainConfig {
    /// Sizes at least 1, a positive learning rate, a non-negative clip.
    pub fn validate(&self) -> Result<(), NnError> {
        let fail = |why: &str| Err(NnError::InvalidTraining(why.to_string()));
        if self.epochs == 0 {
            return fail("epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return fail("batch_size must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return fail("learning_rate must be a positive number");
        }
        if !(self.clip_norm.is_finite() && self.clip_norm >= 0.0) {
            return fail("clip_norm must be 0 (off) or a positive number");
        }
        Ok(())
    }

    /// The thread count to use: `threads`, or the available cores for 0.
    pub(crate) fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}
