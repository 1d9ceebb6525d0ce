//! [`Network`]: a config and its weights, stored as one flat vector in PyTorch's
//! `state_dict` order and layout, and inference on batches of windows.

use serde::{Deserialize, Serialize};

use crate::NnError;
use crate::config::ModelConfig;
use crate::rng::Rng;
use crate::rnn::Workspace;

/// A recurrent network with a linear head. Serialises as its config and the flat
/// weight vector; deserialising checks that the two agree.
///
/// Weight order (PyTorch's `state_dict` of `nn.GRU`/`nn.LSTM` then `nn.Linear`),
/// for each layer `l`: `weight_ih [G, in]`, `weight_hh [G, hidden]`, `bias_ih [G]`,
/// `bias_hh [G]` with `G = gates * hidden`; then the head's `weight [n_outputs, hidden]`
/// and `bias [n_outputs]`. Matrices are row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stored")]
pub struct Network {
    config: ModelConfig,
    params: Vec<f32>,
}

/// The serialised form, checked before it becomes a [`Network`].
#[derive(Deserialize)]
struct Stored {
    config: ModelConfig,
    params: Vec<f32>,
}

impl TryFrom<Stored> for Network {
    type Error = NnError;

    fn try_from(s: Stored) -> Result<Network, NnError> {
        Network::from_params(s.config, s.params)
    }
}

impl Network {
    /// A network with PyTorch's default initialisation: every weight and bias,
    /// the head's included, drawn from `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
    ///
    /// # Panics
    /// If a size in `config` is 0 (check with [`ModelConfig::validate`] first).
    pub fn new(config: ModelConfig, seed: u64) -> Network {
        if let Err(e) = config.validate() {
            panic!("Network::new: {e}");
        }
        let bound = 1.0 / (config.hidden as f32).sqrt();
        let mut rng = Rng::new(seed);
        let params = (0..param_count(&config)).map(|_| rng.uniform(-bound, bound)).collect();
        Network { config, params }
    }

    /// A network from given weights, in the order described on [`Network`].
    pub fn from_params(config: ModelConfig, params: Vec<f32>) -> Result<Network, NnError> {
        config.validate()?;
        let expected = param_count(&config);
        if params.len() != expected {
            return Err(NnError::ParamCount { expected, actual: params.len() });
        }
        Ok(Network { config, params })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    /// The flat weight vector, in the order described on [`Network`].
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    pub(crate) fn params_mut(&mut self) -> &mut Vec<f32> {
        &mut self.params
    }

    /// Predictions `[batch][n_outputs]` for `batch` windows given **batch-major**,
    /// `x = [batch][input_len][n_features]` (rows of a window in time order).
    /// Single-threaded.
    ///
    /// # Panics
    /// If `x.len() != batch * input_len * n_features`.
    pub fn predict(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let cfg = &self.config;
        let per_window = cfg.window_len();
        assert_eq!(
            x.len(),
            batch * per_window,
            "predict: {batch} windows of {}x{} need {} values",
            cfg.input_len,
            cfg.n_features,
            batch * per_window
        );
        const CHUNK: usize = 256;
        let mut ws = Workspace::new(cfg, batch.clamp(1, CHUNK), false);
        let weights = Weights::split(cfg, &self.params);
        let windows: Vec<usize> = (0..CHUNK).collect();
        let mut out = Vec::with_capacity(batch * cfg.n_outputs);
        for chunk in x.chunks(CHUNK * per_window) {
            let n = chunk.len() / per_window;
            ws.load_inputs(cfg, chunk, &windows[..n]);
            out.extend_from_slice(ws.forward(cfg, &weights, n));
        }
        out
    }
}

/// Number of weights and biases of a network of shape `cfg`.
pub(crate) fn param_count(cfg: &ModelConfig) -> usize {
    let (g, h) = (cfg.gate_rows(), cfg.hidden);
    let layers: usize = (0..cfg.layers).map(|l| g * cfg.layer_input(l) + g * h + 2 * g).sum();
    layers + cfg.n_outputs * h + cfg.n_outputs
}

/// One recurrent layer's tensors (slices of the flat vector), PyTorch names.
pub(crate) struct LayerWeights<S> {
    pub w_ih: S,
    pub w_hh: S,
    pub b_ih: S,
    pub b_hh: S,
}

/// All tensors of a network, cut out of a flat parameter (or gradient) vector.
pub(crate) struct Weights<S> {
    pub layers: Vec<LayerWeights<S>>,
    pub w_out: S,
    pub b_out: S,
}

impl<'a> Weights<&'a [f32]> {
    pub fn split(cfg: &ModelConfig, mut rest: &'a [f32]) -> Self {
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        let (g, h) = (cfg.gate_rows(), cfg.hidden);
        // Fields are evaluated in the order written: the storage order.
        let layers = (0..cfg.layers)
            .map(|l| LayerWeights {
                w_ih: take(g * cfg.layer_input(l)),
                w_hh: take(g * h),
                b_ih: take(g),
                b_hh: take(g),
            })
            .collect();
        Weights { layers, w_out: take(cfg.n_outputs * h), b_out: take(cfg.n_outputs) }
    }
}

impl<'a> Weights<&'a mut [f32]> {
    pub fn split_mut(cfg: &ModelConfig, mut rest: &'a mut [f32]) -> Self {
        let mut take = |n: usize| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            head
        };
        let (g, h) = (cfg.gate_rows(), cfg.hidden);
        let layers = (0..cfg.layers)
            .map(|l| LayerWeights {
                w_ih: take(g * cfg.layer_input(l)),
                w_hh: take(g * h),
                b_ih: take(g),
                b_hh: take(g),
            })
            .collect();
        Weights { layers, w_out: take(cfg.n_outputs * h), b_out: take(cfg.n_outputs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellKind;

    fn cfg(cell: CellKind, layers: usize) -> ModelConfig {
        ModelConfig { cell, n_features: 11, hidden: 128, layers, input_len: 10, n_outputs: 5 }
    }

    #[test]
    fn parameter_counts_match_pytorch() {
        // sum(p.numel() for p in model.parameters()) for nn.GRU/nn.LSTM(11, 128, layers) + nn.Linear(128, 5)
        assert_eq!(Network::new(cfg(CellKind::Gru, 1), 0).param_count(), 54_789);
        assert_eq!(Network::new(cfg(CellKind::Lstm, 1), 0).param_count(), 72_837);
        assert_eq!(Network::new(cfg(CellKind::Gru, 2), 0).param_count(), 153_861);
        assert_eq!(Network::new(cfg(CellKind::Lstm, 2), 0).param_count(), 204_933);
    }

    #[test]
    fn split_covers_every_parameter() {
        let c = cfg(CellKind::Lstm, 2);
        let p = vec![0.0; param_count(&c)];
        let w = Weights::split(&c, &p);
        let sum: usize = w.layers.iter().map(|l| l.w_ih.len() + l.w_hh.len() + l.b_ih.len() + l.b_hh.len()).sum();
        assert_eq!(sum + w.w_out.len() + w.b_out.len(), p.len());
        assert_eq!(w.layers[1].w_ih.len(), 512 * 128);
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let a = Network::new(cfg(CellKind::Gru, 1), 3);
        assert_eq!(a, Network::new(cfg(CellKind::Gru, 1), 3));
        assert_ne!(a, Network::new(cfg(CellKind::Gru, 1), 4));
        let bound = 1.0 / 128f32.sqrt();
        assert!(a.params().iter().all(|p| p.abs() <= bound));
    }

    #[test]
    fn serde_round_trip_checks_the_length() {
        let net = Network::new(ModelConfig { hidden: 4, ..cfg(CellKind::Gru, 2) }, 1);
        let json = serde_json::to_string(&net).unwrap();
        assert!(json.contains(r#""cell":"gru""#), "{json}");
        assert_eq!(serde_json::from_str::<Network>(&json).unwrap(), net);
        let short = json.replacen("[", "[0.5,", 1);
        let err = serde_json::from_str::<Network>(&short).unwrap_err().to_string();
        assert!(err.contains("parameters but its config needs"), "{err}");
    }
}
