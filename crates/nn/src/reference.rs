//! Test oracle: a deliberately plain `f64` forward pass, written from the
//! equations in PyTorch's `nn.GRU` and `nn.LSTM` documentation and sharing no code
//! with `rnn`. Central differences of its loss are the ground truth the
//! hand-written backward pass is checked against.

use crate::config::{CellKind, ModelConfig};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Row `row` of the row-major matrix `w` (rows of `v.len()` values) times `v`.
fn row_dot(w: &[f64], row: usize, v: &[f64]) -> f64 {
    w[row * v.len()..(row + 1) * v.len()].iter().zip(v).map(|(a, b)| a * b).sum()
}

/// Predictions `[batch][n_outputs]` for batch-major windows `x`; `params` in
/// [`crate::Network`]'s order.
pub(crate) fn forward(cfg: &ModelConfig, params: &[f64], x: &[f64], batch: usize) -> Vec<f64> {
    let (t_len, f, h) = (cfg.input_len, cfg.n_features, cfg.hidden);
    let mut out = Vec::new();
    for b in 0..batch {
        let mut seq: Vec<Vec<f64>> =
            (0..t_len).map(|t| x[(b * t_len + t) * f..(b * t_len + t + 1) * f].to_vec()).collect();
        let mut rest = params;
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        for _ in 0..cfg.layers {
            let n_in = seq[0].len();
            let g = cfg.cell.gates() * h;
            let (w_ih, w_hh, b_ih, b_hh) = (take(g * n_in), take(g * h), take(g), take(g));
            let (mut h_t, mut c_t) = (vec![0.0; h], vec![0.0; h]);
            let mut outputs = Vec::new();
            for x_t in &seq {
                // gate `gate`'s pre-activations for unit k, input side and hidden side
                let wx = |gate: usize, k: usize| row_dot(w_ih, gate * h + k, x_t) + b_ih[gate * h + k];
                let wh = |gate: usize, k: usize| row_dot(w_hh, gate * h + k, &h_t) + b_hh[gate * h + k];
                let (mut h_new, mut c_new) = (vec![0.0; h], vec![0.0; h]);
                for k in 0..h {
                    match cfg.cell {
                        CellKind::Gru => {
                            // r, z, n
                            let r = sigmoid(wx(0, k) + wh(0, k));
                            let z = sigmoid(wx(1, k) + wh(1, k));
                            let n = (wx(2, k) + r * wh(2, k)).tanh();
                            h_new[k] = (1.0 - z) * n + z * h_t[k];
                        }
                        CellKind::Lstm => {
                            // i, f, g, o
                            let i = sigmoid(wx(0, k) + wh(0, k));
                            let f = sigmoid(wx(1, k) + wh(1, k));
                            let g = (wx(2, k) + wh(2, k)).tanh();
                            let o = sigmoid(wx(3, k) + wh(3, k));
                            c_new[k] = f * c_t[k] + i * g;
                            h_new[k] = o * c_new[k].tanh();
                        }
                    }
                }
                h_t = h_new;
                c_t = c_new;
                outputs.push(h_t.clone());
            }
            seq = outputs;
        }
        let (w_out, b_out) = (take(cfg.n_outputs * h), take(cfg.n_outputs));
        let last = &seq[t_len - 1];
        out.extend((0..cfg.n_outputs).map(|k| row_dot(w_out, k, last) + b_out[k]));
    }
    out
}

/// Mean squared error of [`forward`] against `y`.
pub(crate) fn loss(cfg: &ModelConfig, params: &[f64], x: &[f64], y: &[f64], batch: usize) -> f64 {
    let pred = forward(cfg, params, x, batch);
    pred.iter().zip(y).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / y.len() as f64
}
