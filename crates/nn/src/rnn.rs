//! Forward and backward passes of the stacked GRU/LSTM and its head, for one batch.
//!
//! Inside a batch everything is time-major and batch-major per step: the values of
//! step `t` form one row-major `[batch][width]` block, so each step's products are
//! single sgemm calls on contiguous memory. The input projections of all steps are
//! one product before the time loop; only the recurrent product `h_{t-1} W_hh^T`
//! runs per step, followed by one fused loop over the gates. Backward keeps the
//! per-step work to the gate derivatives and `d_pre_t W_hh`, and accumulates the
//! weight gradients afterwards in three products over all steps.
//!
//! Shapes, with `T = input_len`, `B` the batch, `H = hidden`, `G = gates * H`:
//! gate blocks are `[T][B][G]`, hidden and cell states `[T + 1][B][H]` (index 0 is
//! the zero initial state). Gate order is PyTorch's (GRU `r, z, n`; LSTM `i, f, g, o`).

use crate::config::{CellKind, ModelConfig};
use crate::gemm::{Mat, add_column_sums, fill_rows, gemm};
use crate::math::{sigmoid, tanh};
use crate::network::{LayerWeights, Weights};

/// Every buffer one forward and backward pass needs, for batches of up to
/// `max_batch` windows, allocated once and reused for every batch.
pub(crate) struct Workspace {
    max_batch: usize,
    /// The batch's inputs, time-major `[T][B][n_features]`.
    x: Vec<f32>,
    /// The batch's targets `[B][n_outputs]` (training only).
    y: Vec<f32>,
    layers: Vec<LayerState>,
    /// Predictions `[B][n_outputs]`.
    out: Vec<f32>,
    /// Backward buffers (training only).
    grad: Scratch,
}

/// What the forward pass of one layer keeps for the backward pass.
struct LayerState {
    /// `[T][B][G]`: input projection plus bias, then (after each step) the activated gates.
    gates: Vec<f32>,
    /// GRU: `[T][B][G]`, the recurrent projection plus `bias_hh` (its `n` part is
    /// needed again backward). LSTM: unused.
    rec: Vec<f32>,
    /// LSTM: `bias_ih + bias_hh` `[G]`, added once for both products. GRU: unused.
    bias: Vec<f32>,
    /// `[T + 1][B][H]` hidden states, `h[0] = 0`.
    h: Vec<f32>,
    /// LSTM: `[T + 1][B][H]` cell states, `c[0] = 0`. GRU: unused.
    c: Vec<f32>,
    /// LSTM: `[T][B][H]`, `tanh(c_t)`. GRU: unused.
    tanh_c: Vec<f32>,
}

/// Gradients of the loss with respect to intermediate values.
struct Scratch {
    /// `[B][n_outputs]`: predictions.
    d_out: Vec<f32>,
    /// `[T][B][H]`: the current layer's outputs `h_1..h_T`; after the layer, its inputs.
    d_seq: Vec<f32>,
    /// `[T][B][G]`: the input-side gate pre-activations (what `x W_ih^T + bias_ih` feeds).
    d_pre: Vec<f32>,
    /// GRU `[T][B][G]`: the recurrent-side pre-activations (`h W_hh^T + bias_hh`).
    /// For an LSTM both sides feed the same sum, so `d_pre` serves for both.
    d_rec: Vec<f32>,
    /// `[B][H]`: the hidden state carried to the previous step.
    d_h: Vec<f32>,
    /// LSTM `[B][H]`: the cell state carried to the previous step.
    d_c: Vec<f32>,
}

impl Workspace {
    pub fn new(cfg: &ModelConfig, max_batch: usize, training: bool) -> Workspace {
        let (t, b, h, g) = (cfg.input_len, max_batch, cfg.hidden, cfg.gate_rows());
        let lstm = cfg.cell == CellKind::Lstm;
        let when = |cond: bool, n: usize| if cond { vec![0.0; n] } else { Vec::new() };
        let layers = (0..cfg.layers)
            .map(|_| LayerState {
                gates: vec![0.0; t * b * g],
                rec: when(!lstm, t * b * g),
                bias: when(lstm, g),
                h: vec![0.0; (t + 1) * b * h],
                c: when(lstm, (t + 1) * b * h),
                tanh_c: when(lstm, t * b * h),
            })
            .collect();
        let grad = Scratch {
            d_out: when(training, b * cfg.n_outputs),
            d_seq: when(training, t * b * h),
            d_pre: when(training, t * b * g),
            d_rec: when(training && !lstm, t * b * g),
            d_h: when(training, b * h),
            d_c: when(training && lstm, b * h),
        };
        Workspace {
            max_batch,
            x: vec![0.0; t * b * cfg.n_features],
            y: when(training, b * cfg.n_outputs),
            layers,
            out: vec![0.0; b * cfg.n_outputs],
            grad,
        }
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Copy windows `windows` of the batch-major `x` (`[window][T][n_features]`)
    /// into the time-major batch buffer.
    pub fn load_inputs(&mut self, cfg: &ModelConfig, x: &[f32], windows: &[usize]) {
        let (t_len, f, b) = (cfg.input_len, cfg.n_features, windows.len());
        assert!(b <= self.max_batch, "batch of {b} exceeds the workspace's {}", self.max_batch);
        for (i, &w) in windows.iter().enumerate() {
            let window = &x[w * t_len * f..(w + 1) * t_len * f];
            for (t, row) in window.chunks_exact(f).enumerate() {
                let at = (t * b + i) * f;
                self.x[at..at + f].copy_from_slice(row);
            }
        }
    }

    /// Copy the targets of `windows` (`y` is `[window][n_outputs]`).
    pub fn load_targets(&mut self, cfg: &ModelConfig, y: &[f32], windows: &[usize]) {
        let o = cfg.n_outputs;
        for (i, &w) in windows.iter().enumerate() {
            self.y[i * o..(i + 1) * o].copy_from_slice(&y[w * o..(w + 1) * o]);
        }
    }

    /// Run the loaded batch of `b` windows through the network; returns the
    /// predictions `[b][n_outputs]`.
    pub fn forward(&mut self, cfg: &ModelConfig, w: &Weights<&[f32]>, b: usize) -> &[f32] {
        assert!(b <= self.max_batch, "batch of {b} exceeds the workspace's {}", self.max_batch);
        let (t_len, h, o) = (cfg.input_len, cfg.hidden, cfg.n_outputs);
        for l in 0..cfg.layers {
            let (below, this) = self.layers.split_at_mut(l);
            // Layer 0 reads the batch; the others read h_1..h_T of the layer below.
            let input = match below.last() {
                None => &self.x[..t_len * b * cfg.n_features],
                Some(prev) => &prev.h[b * h..(t_len + 1) * b * h],
            };
            layer_forward(cfg, &w.layers[l], cfg.layer_input(l), input, b, &mut this[0]);
        }
        let top = &self.layers[cfg.layers - 1];
        let h_last = &top.h[t_len * b * h..(t_len + 1) * b * h];
        let out = &mut self.out[..b * o];
        fill_rows(out, w.b_out);
        gemm(Mat::new(h_last, b, h), Mat::new(w.w_out, o, h).t(), 1.0, out);
        out
    }

    /// Sum over the batch of the squared errors of the last forward pass.
    pub fn squared_error(&self, cfg: &ModelConfig, b: usize) -> f64 {
        let n = b * cfg.n_outputs;
        self.out[..n].iter().zip(&self.y[..n]).map(|(p, y)| (*p as f64 - *y as f64).powi(2)).sum()
    }

    /// Add to `grad` the gradient of `loss = scale / 2 * sum (out - y)^2` over the
    /// batch of the last forward pass (`scale = 2 / (windows * n_outputs)` gives
    /// the mean squared error).
    pub fn backward(
        &mut self,
        cfg: &ModelConfig,
        w: &Weights<&[f32]>,
        b: usize,
        scale: f32,
        grad: &mut Weights<&mut [f32]>,
    ) {
        let (t_len, h, o) = (cfg.input_len, cfg.hidden, cfg.n_outputs);
        let s = &mut self.grad;
        let d_out = &mut s.d_out[..b * o];
        for ((d, p), y) in d_out.iter_mut().zip(&self.out[..b * o]).zip(&self.y[..b * o]) {
            *d = scale * (p - y);
        }
        // Head: out = h_T W_out^T + b_out.
        let top = &self.layers[cfg.layers - 1];
        let h_last = &top.h[t_len * b * h..(t_len + 1) * b * h];
        gemm(Mat::new(d_out, b, o).t(), Mat::new(h_last, b, h), 1.0, grad.w_out);
        add_column_sums(d_out, grad.b_out);
        // Only the top layer's last hidden state feeds the head.
        let step = b * h;
        s.d_seq[..(t_len - 1) * step].fill(0.0);
        gemm(Mat::new(d_out, b, o), Mat::new(w.w_out, o, h), 0.0, &mut s.d_seq[(t_len - 1) * step..t_len * step]);

        for l in (0..cfg.layers).rev() {
            let input = match l {
                0 => &self.x[..t_len * b * cfg.n_features],
                _ => &self.layers[l - 1].h[b * h..(t_len + 1) * b * h],
            };
            let layer = LayerBackward {
                cfg,
                w: &w.layers[l],
                n_in: cfg.layer_input(l),
                input,
                b,
                state: &self.layers[l],
                want_d_input: l > 0,
            };
            layer.run(s, &mut grad.layers[l]);
        }
    }
}

/// Forward through one layer: fills `st` for all `T` steps.
fn layer_forward(
    cfg: &ModelConfig,
    w: &LayerWeights<&[f32]>,
    n_in: usize,
    input: &[f32],
    b: usize,
    st: &mut LayerState,
) {
    let (t_len, h, g) = (cfg.input_len, cfg.hidden, cfg.gate_rows());
    let (gate_step, h_step) = (b * g, b * h);
    let gates = &mut st.gates[..t_len * gate_step];
    // The input projection of every step in one product, biases first.
    match cfg.cell {
        CellKind::Gru => fill_rows(gates, w.b_ih),
        CellKind::Lstm => {
            for ((sum, bi), bh) in st.bias.iter_mut().zip(w.b_ih).zip(w.b_hh) {
                *sum = bi + bh;
            }
            fill_rows(gates, &st.bias);
        }
    }
    gemm(Mat::new(input, t_len * b, n_in), Mat::new(w.w_ih, g, n_in).t(), 1.0, gates);

    st.h[..h_step].fill(0.0);
    if cfg.cell == CellKind::Lstm {
        st.c[..h_step].fill(0.0);
    }
    let w_hh_t = Mat::new(w.w_hh, g, h).t();
    for t in 0..t_len {
        let (done, next) = st.h.split_at_mut((t + 1) * h_step);
        let h_prev = &done[t * h_step..];
        let h_next = &mut next[..h_step];
        let gates_t = &mut gates[t * gate_step..(t + 1) * gate_step];
        // h_0 = 0, so the first step's recurrent product is zero: skip it.
        match cfg.cell {
            CellKind::Gru => {
                let rec_t = &mut st.rec[t * gate_step..(t + 1) * gate_step];
                fill_rows(rec_t, w.b_hh);
                if t > 0 {
                    gemm(Mat::new(h_prev, b, h), w_hh_t, 1.0, rec_t);
                }
                gru_step(h, gates_t, rec_t, h_prev, h_next);
            }
            CellKind::Lstm => {
                if t > 0 {
                    gemm(Mat::new(h_prev, b, h), w_hh_t, 1.0, gates_t);
                }
                let (c_done, c_next) = st.c.split_at_mut((t + 1) * h_step);
                let tanh_c = &mut st.tanh_c[t * h_step..(t + 1) * h_step];
                lstm_step(h, gates_t, &c_done[t * h_step..], &mut c_next[..h_step], tanh_c, h_next);
            }
        }
    }
}

/// One GRU step for a batch (PyTorch's equations):
/// `r = σ(x_r + rec_r)`, `z = σ(x_z + rec_z)`, `n = tanh(x_n + r * rec_n)`,
/// `h' = (1 - z) * n + z * h`, where `x_*` already hold `x W_i*^T + b_i*` and
/// `rec_*` hold `h W_h*^T + b_h*`. `gates` rows go in as `[x_r | x_z | x_n]` and
/// come out as `[r | z | n]`.
fn gru_step(h: usize, gates: &mut [f32], rec: &[f32], h_prev: &[f32], h_next: &mut [f32]) {
    for row in 0..h_next.len() / h {
        let (at3, at) = (row * 3 * h, row * h);
        let (r, rest) = gates[at3..at3 + 3 * h].split_at_mut(h);
        let (z, n) = rest.split_at_mut(h);
        let rec_r = &rec[at3..at3 + h];
        let rec_z = &rec[at3 + h..at3 + 2 * h];
        let rec_n = &rec[at3 + 2 * h..at3 + 3 * h];
        let prev = &h_prev[at..at + h];
        let next = &mut h_next[at..at + h];
        for j in 0..h {
            let rj = sigmoid(r[j] + rec_r[j]);
            let zj = sigmoid(z[j] + rec_z[j]);
            let nj = tanh(n[j] + rj * rec_n[j]);
            r[j] = rj;
            z[j] = zj;
            n[j] = nj;
            next[j] = (1.0 - zj) * nj + zj * prev[j];
        }
    }
}

/// One LSTM step for a batch: `gates` rows go in as the pre-activations
/// `[i | f | g | o]` (both products and biases summed) and come out activated:
/// `i, f, o = σ(.)`, `g = tanh(.)`; then `c' = f * c + i * g`, `h' = o * tanh(c')`.
fn lstm_step(h: usize, gates: &mut [f32], c_prev: &[f32], c_next: &mut [f32], tanh_c: &mut [f32], h_next: &mut [f32]) {
    for row in 0..h_next.len() / h {
        let (at4, at) = (row * 4 * h, row * h);
        let (i, rest) = gates[at4..at4 + 4 * h].split_at_mut(h);
        let (f, rest) = rest.split_at_mut(h);
        let (g, o) = rest.split_at_mut(h);
        let cp = &c_prev[at..at + h];
        let cn = &mut c_next[at..at + h];
        let tc = &mut tanh_c[at..at + h];
        let hn = &mut h_next[at..at + h];
        for j in 0..h {
            let (ij, fj, gj, oj) = (sigmoid(i[j]), sigmoid(f[j]), tanh(g[j]), sigmoid(o[j]));
            i[j] = ij;
            f[j] = fj;
            g[j] = gj;
            o[j] = oj;
            let c = fj * cp[j] + ij * gj;
            cn[j] = c;
            tc[j] = tanh(c);
            hn[j] = oj * tc[j];
        }
    }
}

/// Backpropagation through time for one layer.
struct LayerBackward<'a> {
    cfg: &'a ModelConfig,
    w: &'a LayerWeights<&'a [f32]>,
    n_in: usize,
    /// The layer's input `[T][B][n_in]`.
    input: &'a [f32],
    b: usize,
    state: &'a LayerState,
    /// Leave the gradient with respect to `input` in `d_seq` (for the layer below).
    want_d_input: bool,
}

impl LayerBackward<'_> {
    /// On entry `s.d_seq` holds the gradient with respect to the layer's outputs;
    /// adds the weight gradients to `grad`.
    fn run(&self, s: &mut Scratch, grad: &mut LayerWeights<&mut [f32]>) {
        let (cfg, w, st, b) = (self.cfg, self.w, self.state, self.b);
        let (t_len, h, g) = (cfg.input_len, cfg.hidden, cfg.gate_rows());
        let (gate_step, h_step) = (b * g, b * h);
        let lstm = cfg.cell == CellKind::Lstm;
        s.d_h[..h_step].fill(0.0);
        if lstm {
            s.d_c[..h_step].fill(0.0);
        }
        let w_hh = Mat::new(w.w_hh, g, h);
        for t in (0..t_len).rev() {
            let gates = &st.gates[t * gate_step..(t + 1) * gate_step];
            let d_out = &s.d_seq[t * h_step..(t + 1) * h_step];
            let d_h = &mut s.d_h[..h_step];
            let d_pre = &mut s.d_pre[t * gate_step..(t + 1) * gate_step];
            if lstm {
                let c_prev = &st.c[t * h_step..(t + 1) * h_step];
                let tanh_c = &st.tanh_c[t * h_step..(t + 1) * h_step];
                lstm_step_backward(h, gates, c_prev, tanh_c, d_out, d_h, &mut s.d_c[..h_step], d_pre);
                // d h_{t-1} = d_pre W_hh (not needed before the first step).
                if t > 0 {
                    gemm(Mat::new(d_pre, b, g), w_hh, 0.0, d_h);
                }
            } else {
                let rec = &st.rec[t * gate_step..(t + 1) * gate_step];
                let h_prev = &st.h[t * h_step..(t + 1) * h_step];
                let d_rec = &mut s.d_rec[t * gate_step..(t + 1) * gate_step];
                gru_step_backward(h, gates, rec, h_prev, d_out, d_h, d_pre, d_rec);
                // d h_{t-1} = (direct path, left in d_h) + d_rec W_hh.
                if t > 0 {
                    gemm(Mat::new(d_rec, b, g), w_hh, 1.0, d_h);
                }
            }
        }

        // Weight gradients, summed over all steps at once. h_0 = 0 adds nothing
        // to W_hh's gradient, so its sum starts at step 1.
        let rows = t_len * b;
        let d_pre = &s.d_pre[..rows * g];
        let d_rec = if lstm { d_pre } else { &s.d_rec[..rows * g] };
        if t_len > 1 {
            let later = (t_len - 1) * b;
            let h_prev = &st.h[h_step..t_len * h_step];
            gemm(Mat::new(&d_rec[gate_step..], later, g).t(), Mat::new(h_prev, later, h), 1.0, grad.w_hh);
        }
        add_column_sums(d_rec, grad.b_hh);
        gemm(Mat::new(d_pre, rows, g).t(), Mat::new(self.input, rows, self.n_in), 1.0, grad.w_ih);
        add_column_sums(d_pre, grad.b_ih);
        if self.want_d_input {
            gemm(Mat::new(d_pre, rows, g), Mat::new(w.w_ih, g, self.n_in), 0.0, &mut s.d_seq[..rows * self.n_in]);
        }
    }
}

/// Derivatives of one GRU step. `d_h` holds, on entry, the gradient carried back
/// from step `t + 1`, and on return the direct part `dh * z` of the gradient for
/// `h_{t-1}` (the caller adds `d_rec W_hh`).
#[allow(clippy::too_many_arguments)]
fn gru_step_backward(
    h: usize,
    gates: &[f32],
    rec: &[f32],
    h_prev: &[f32],
    d_out: &[f32],
    d_h: &mut [f32],
    d_pre: &mut [f32],
    d_rec: &mut [f32],
) {
    for row in 0..d_h.len() / h {
        let (at3, at) = (row * 3 * h, row * h);
        let r = &gates[at3..at3 + h];
        let z = &gates[at3 + h..at3 + 2 * h];
        let n = &gates[at3 + 2 * h..at3 + 3 * h];
        let rec_n = &rec[at3 + 2 * h..at3 + 3 * h];
        let prev = &h_prev[at..at + h];
        let d_out = &d_out[at..at + h];
        let d_h = &mut d_h[at..at + h];
        let (dp_r, rest) = d_pre[at3..at3 + 3 * h].split_at_mut(h);
        let (dp_z, dp_n) = rest.split_at_mut(h);
        let (dr_r, rest) = d_rec[at3..at3 + 3 * h].split_at_mut(h);
        let (dr_z, dr_n) = rest.split_at_mut(h);
        for j in 0..h {
            let dh = d_out[j] + d_h[j];
            let (rj, zj, nj) = (r[j], z[j], n[j]);
            let dn = dh * (1.0 - zj) * (1.0 - nj * nj);
            let dz = dh * (prev[j] - nj) * zj * (1.0 - zj);
            let dr = dn * rec_n[j] * rj * (1.0 - rj);
            dp_r[j] = dr;
            dp_z[j] = dz;
            dp_n[j] = dn;
            dr_r[j] = dr;
            dr_z[j] = dz;
            dr_n[j] = dn * rj;
            d_h[j] = dh * zj;
        }
    }
}

/// Derivatives of one LSTM step. `d_h` and `d_c` hold, on entry, the gradients
/// carried back from step `t + 1`; on return `d_c` holds the one for `c_{t-1}`
/// (the caller computes `d h_{t-1} = d_pre W_hh`).
#[allow(clippy::too_many_arguments)]
fn lstm_step_backward(
    h: usize,
    gates: &[f32],
    c_prev: &[f32],
    tanh_c: &[f32],
    d_out: &[f32],
    d_h: &[f32],
    d_c: &mut [f32],
    d_pre: &mut [f32],
) {
    for row in 0..d_c.len() / h {
        let (at4, at) = (row * 4 * h, row * h);
        let i = &gates[at4..at4 + h];
        let f = &gates[at4 + h..at4 + 2 * h];
        let g = &gates[at4 + 2 * h..at4 + 3 * h];
        let o = &gates[at4 + 3 * h..at4 + 4 * h];
        let cp = &c_prev[at..at + h];
        let tc = &tanh_c[at..at + h];
        let d_out = &d_out[at..at + h];
        let d_h = &d_h[at..at + h];
        let d_c = &mut d_c[at..at + h];
        let (dp_i, rest) = d_pre[at4..at4 + 4 * h].split_at_mut(h);
        let (dp_f, rest) = rest.split_at_mut(h);
        let (dp_g, dp_o) = rest.split_at_mut(h);
        for j in 0..h {
            let dh = d_out[j] + d_h[j];
            let (ij, fj, gj, oj, tcj) = (i[j], f[j], g[j], o[j], tc[j]);
            let dc = dh * oj * (1.0 - tcj * tcj) + d_c[j];
            dp_i[j] = dc * gj * ij * (1.0 - ij);
            dp_f[j] = dc * cp[j] * fj * (1.0 - fj);
            dp_g[j] = dc * ij * (1.0 - gj * gj);
            dp_o[j] = dh * tcj * oj * (1.0 - oj);
            d_c[j] = dc * fj;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::param_count;
    use crate::reference;
    use crate::rng::Rng;

    /// A small problem: large enough that every gate, both layers and several
    /// steps matter, small enough for central differences on every parameter.
    struct Problem {
        cfg: ModelConfig,
        batch: usize,
        params: Vec<f32>,
        x: Vec<f32>,
        y: Vec<f32>,
    }

    fn problem(cell: CellKind, layers: usize) -> Problem {
        let cfg = ModelConfig { cell, n_features: 3, hidden: 5, layers, input_len: 4, n_outputs: 2 };
        let batch = 3;
        let mut rng = Rng::new(11);
        let mut draw = |n: usize, bound: f32| -> Vec<f32> { (0..n).map(|_| rng.uniform(-bound, bound)).collect() };
        // Weights well beyond PyTorch's init bound, so that the gates are far from linear.
        let params = draw(param_count(&cfg), 0.8);
        let x = draw(batch * cfg.window_len(), 1.0);
        let y = draw(batch * cfg.n_outputs, 1.0);
        Problem { cfg, batch, params, x, y }
    }

    fn to_f64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// The hand-written gradient of the mean squared error.
    fn analytic(p: &Problem) -> Vec<f32> {
        let windows: Vec<usize> = (0..p.batch).collect();
        let mut ws = Workspace::new(&p.cfg, p.batch, true);
        ws.load_inputs(&p.cfg, &p.x, &windows);
        ws.load_targets(&p.cfg, &p.y, &windows);
        let w = Weights::split(&p.cfg, &p.params);
        ws.forward(&p.cfg, &w, p.batch);
        let mut grad = vec![0.0; p.params.len()];
        let scale = 2.0 / (p.batch * p.cfg.n_outputs) as f32;
        ws.backward(&p.cfg, &w, p.batch, scale, &mut Weights::split_mut(&p.cfg, &mut grad));
        grad
    }

    /// Central differences of the f64 reference loss, at the same (f32) point.
    fn numeric(p: &Problem) -> Vec<f64> {
        const EPS: f64 = 1e-6;
        let (x, y) = (to_f64(&p.x), to_f64(&p.y));
        let mut params = to_f64(&p.params);
        (0..params.len())
            .map(|i| {
                let keep = params[i];
                params[i] = keep + EPS;
                let up = reference::loss(&p.cfg, &params, &x, &y, p.batch);
                params[i] = keep - EPS;
                let down = reference::loss(&p.cfg, &params, &x, &y, p.batch);
                params[i] = keep;
                (up - down) / (2.0 * EPS)
            })
            .collect()
    }

    /// Largest difference between the gradients, relative to the largest gradient.
    fn gradient_error(analytic: &[f32], numeric: &[f64]) -> f64 {
        let scale = numeric.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let worst = analytic.iter().zip(numeric).fold(0.0f64, |m, (a, n)| m.max((*a as f64 - n).abs()));
        worst / scale
    }

    /// f32 arithmetic leaves ~1e-6 relative error in the analytic gradient; a
    /// wrong term in any derivative leaves far more (see the test below).
    const TOLERANCE: f64 = 1e-4;

    fn check(cell: CellKind, layers: usize) {
        let p = problem(cell, layers);
        let numeric = numeric(&p);
        assert!(numeric.iter().filter(|g| g.abs() > 1e-3).count() > numeric.len() / 2, "too many flat parameters");
        let err = gradient_error(&analytic(&p), &numeric);
        assert!(err < TOLERANCE, "{cell} x{layers}: gradient error {err:e}");
    }

    #[test]
    fn gradient_check_gru_one_layer() {
        check(CellKind::Gru, 1);
    }

    #[test]
    fn gradient_check_gru_two_layers() {
        check(CellKind::Gru, 2);
    }

    #[test]
    fn gradient_check_lstm_one_layer() {
        check(CellKind::Lstm, 1);
    }

    #[test]
    fn gradient_check_lstm_two_layers() {
        check(CellKind::Lstm, 2);
    }

    #[test]
    fn gradient_check_catches_a_one_percent_error_in_one_parameter() {
        let p = problem(CellKind::Gru, 2);
        let numeric = numeric(&p);
        let mut grad = analytic(&p);
        // The first-layer recurrent weight with the largest gradient, off by 1%.
        let i = (p.cfg.gate_rows() * 3..p.cfg.gate_rows() * 8)
            .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
            .expect("non-empty range");
        let before = gradient_error(&grad, &numeric);
        grad[i] *= 1.01;
        let after = gradient_error(&grad, &numeric);
        assert!(before < TOLERANCE && after > TOLERANCE, "before {before:e}, after {after:e}");
    }

    #[test]
    fn forward_matches_the_reference() {
        for (cell, layers) in [(CellKind::Gru, 1), (CellKind::Gru, 2), (CellKind::Lstm, 1), (CellKind::Lstm, 2)] {
            let p = problem(cell, layers);
            let net = crate::Network::from_params(p.cfg, p.params.clone()).expect("sizes match");
            let ours = net.predict(&p.x, p.batch);
            let want = reference::forward(&p.cfg, &to_f64(&p.params), &to_f64(&p.x), p.batch);
            for (a, b) in ours.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-5, "{cell} x{layers}: {a} vs {b}");
            }
        }
    }
}
