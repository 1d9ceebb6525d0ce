//! The forward pass behind a served model: [`Net`], and its ONNX
//! implementation on tract ([`OnnxNet`]). Everything here is in **scaled**
//! units; [`crate::model::Model`] scales in and out.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid as _;

/// What a forward pass gets.
#[derive(Debug, Clone, Copy)]
pub struct NetInput<'a> {
    /// Scaled inputs, `[n][input_len][n_features]` in the model's feature order.
    pub x: &'a [f32],
    /// Number of windows.
    pub n: usize,
    /// The times being forecast, `[n][output_len]` (ms since the epoch); needed
    /// by models that forecast by time (Prophet), ignored by the others.
    pub forecast_timestamps: Option<&'a [i64]>,
}

/// A forward pass failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The model file cannot be used (bad ONNX, wrong shapes).
    #[error("invalid model: {0}")]
    Invalid(String),
    /// The caller gave the model something it cannot use.
    #[error("{0}")]
    Input(String),
    /// The model failed while running.
    #[error("model run failed: {0}")]
    Run(String),
}

/// A loaded forecaster. Implementations are synchronous and CPU-bound: call
/// them from a blocking thread.
pub trait Net: Send + Sync + 'static {
    /// `onnx`, `prophet`, ... (for logs and `/model`).
    fn kind(&self) -> &'static str;
    /// Whether [`NetInput::forecast_timestamps`] is required.
    fn needs_timestamps(&self) -> bool {
        false
    }
    /// Scaled forecasts, `[n][output_len][n_targets]` (step-major per window).
    fn forecast(&self, input: &NetInput<'_>) -> Result<Vec<f32>, NetError>;
}

/// Largest batch one tract plan runs; bigger requests go in chunks.
const MAX_PLAN_BATCH: usize = 256;

/// One optimised plan for a fixed batch size.
///
/// Every run gets a fresh state: tract's recurrent ops keep their last hidden
/// state in the run state (a Scan's state input), so a reused state would
/// start the next window from the previous one's hidden state.
struct Plan {
    plan: Arc<TypedSimplePlan>,
}

impl Plan {
    fn run(&self, input: Tensor) -> TractResult<TVec<TValue>> {
        self.plan.run(tvec!(input.into()))
    }
}

/// An ONNX GRU/LSTM forecaster run by tract.
///
/// tract's recurrent ops need a concrete batch size when the model has no
/// `initial_h` input (their zero state is a constant), so the model is
/// optimised once per batch size: batch 1 at load, other sizes on first use,
/// rounded up to a power of two (the padding rows are zeros and dropped).
pub struct OnnxNet {
    /// The parsed model, before shapes are fixed.
    model: InferenceModel,
    plans: RwLock<HashMap<usize, Arc<Plan>>>,
    input_len: usize,
    /// Features the artifact lists (what callers give).
    n_features: usize,
    /// Features the ONNX input declares; extra ones are fed zeros (an exporter
    /// may pad a univariate input, see CRATE-NOTES on tract's GRU).
    input_width: usize,
    out_width: usize,
}

fn invalid(context: &str) -> impl FnOnce(anyhow::Error) -> NetError + '_ {
    move |e| NetError::Invalid(format!("{context}: {e:#}"))
}

impl OnnxNet {
    /// Parse `bytes`, optimise it for batch 1 and check it on dummy batches:
    /// the output must be `[batch, output_len * n_targets]`.
    pub fn load(
        bytes: &[u8],
        input_len: usize,
        n_features: usize,
        output_len: usize,
        n_targets: usize,
    ) -> Result<Self, NetError> {
        if input_len == 0 || n_features == 0 || output_len == 0 || n_targets == 0 {
            return Err(NetError::Invalid(format!(
                "input_len {input_len}, features {n_features}, output_len {output_len}, targets {n_targets}: all must be positive"
            )));
        }
        let model = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .model_for_read(&mut &bytes[..])
            .map_err(invalid("cannot parse ONNX"))?;
        let input = model.input_fact(0).map_err(invalid("model has no input"))?;
        let dim = |i: usize| input.shape.dim(i).and_then(|d| d.concretize()).and_then(|d| d.to_i64().ok());
        let (declared_len, declared) = (dim(0), dim(2));
        // The promotion's sizes are checked against the model itself before
        // anything is allocated from them.
        if let Some(len) = declared_len
            && len != input_len as i64
        {
            return Err(NetError::Invalid(format!(
                "the ONNX input takes sequences of {len} rows but the artifact says input_len {input_len}"
            )));
        }
        let input_width = match declared {
            None => n_features,
            Some(w) if w >= n_features as i64 => w as usize,
            Some(w) => {
                return Err(NetError::Invalid(format!(
                    "the ONNX input takes {w} features per row but the artifact lists {n_features}"
                )));
            }
        };
        let net = OnnxNet {
            model,
            plans: RwLock::new(HashMap::new()),
            input_len,
            n_features,
            input_width,
            out_width: output_len * n_targets,
        };
        for n in [1, 3] {
            let x = vec![0f32; n * input_len * n_features];
            let y = net
                .forecast(&NetInput { x: &x, n, forecast_timestamps: None })
                .map_err(|e| NetError::Invalid(format!("check run with batch {n}: {e}")))?;
            if y.iter().any(|v| !v.is_finite()) {
                return Err(NetError::Invalid(format!("check run with batch {n} gave a non-finite output")));
            }
        }
        Ok(net)
    }

    /// The plan for `batch` (a power of two), built on first use.
    fn plan(&self, batch: usize) -> Result<Arc<Plan>, NetError> {
        if let Some(p) = self.plans.read().ok().and_then(|m| m.get(&batch).cloned()) {
            return Ok(p);
        }
        let fact = f32::fact([self.input_len, batch, self.input_width]);
        let plan = self
            .model
            .clone()
            .with_input_fact(0, fact.into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| NetError::Invalid(format!("cannot type and optimise the model for batch {batch}: {e:#}")))?;
        let plan = Arc::new(Plan { plan });
        if let Ok(mut m) = self.plans.write() {
            m.entry(batch).or_insert_with(|| plan.clone());
        }
        Ok(plan)
    }

    /// Forecast `n <= MAX_PLAN_BATCH` windows in one run.
    fn run_chunk(&self, x: &[f32], n: usize, out: &mut Vec<f32>) -> Result<(), NetError> {
        let (t_len, f, w) = (self.input_len, self.n_features, self.input_width);
        let batch = n.next_power_of_two();
        // [n][T][F] -> the contract's layout 0: [T][batch][W], padding zero.
        let mut data = vec![0f32; t_len * batch * w];
        for i in 0..n {
            for t in 0..t_len {
                let src = &x[(i * t_len + t) * f..(i * t_len + t + 1) * f];
                data[(t * batch + i) * w..(t * batch + i) * w + f].copy_from_slice(src);
            }
        }
        let tensor = Tensor::from_shape(&[t_len, batch, w], &data).map_err(|e| NetError::Run(format!("{e:#}")))?;
        let result = self.plan(batch)?.run(tensor).map_err(|e| NetError::Run(format!("{e:#}")))?;
        let y = result.first().ok_or_else(|| NetError::Run("model produced no output".into()))?;
        let view = y.to_plain_array_view::<f32>().map_err(|e| NetError::Run(format!("{e:#}")))?;
        let shape = view.shape().to_vec();
        if shape.first() != Some(&batch) || view.len() != batch * self.out_width {
            return Err(NetError::Invalid(format!(
                "output has shape {shape:?}, expected [{batch}, {}] (output_len * targets)",
                self.out_width
            )));
        }
        out.extend(view.iter().take(n * self.out_width).copied());
        Ok(())
    }
}

impl Net for OnnxNet {
    fn kind(&self) -> &'static str {
        "onnx"
    }

    fn forecast(&self, input: &NetInput<'_>) -> Result<Vec<f32>, NetError> {
        let (stride, n) = (self.input_len * self.n_features, input.n);
        if input.x.len() != n * stride {
            return Err(NetError::Input(format!(
                "expected {n} x {} x {} = {} input values, got {}",
                self.input_len,
                self.n_features,
                n * stride,
                input.x.len()
            )));
        }
        let mut out = Vec::with_capacity(n * self.out_width);
        for start in (0..n).step_by(MAX_PLAN_BATCH) {
            let end = (start + MAX_PLAN_BATCH).min(n);
            self.run_chunk(&input.x[start * stride..end * stride], end - start, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Cell, NetSpec, SyntheticNet};

    fn check(cell: Cell, n_features: usize, hidden: Vec<usize>, output_len: usize, n_targets: usize) {
        let spec = NetSpec { cell, n_features, hidden, input_len: 6, output_len, n_targets };
        let synth = SyntheticNet::random(spec.clone(), 7);
        let net = OnnxNet::load(&synth.to_onnx(), spec.input_len, n_features, output_len, n_targets).unwrap();
        for n in [1usize, 2, 5] {
            let x: Vec<f32> =
                (0..n * spec.input_len * n_features).map(|i| ((i * 37 % 17) as f32 / 8.0) - 1.0).collect();
            let got = net.forecast(&NetInput { x: &x, n, forecast_timestamps: None }).unwrap();
            let want = synth.forward(&x, n);
            assert_eq!(got.len(), want.len());
            let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 1e-5, "{cell:?} n={n}: max |tract - reference| = {max}\n{got:?}\n{want:?}");
        }
    }

    #[test]
    fn lstm_matches_the_reference_forward_pass() {
        check(Cell::Lstm, 1, vec![5], 1, 1);
        check(Cell::Lstm, 3, vec![4, 3], 2, 2);
    }

    #[test]
    fn gru_matches_the_reference_forward_pass() {
        check(Cell::Gru, 2, vec![5], 1, 1);
        check(Cell::Gru, 3, vec![4, 6], 3, 2);
    }

    #[test]
    fn reused_states_give_the_same_answer() {
        let spec =
            NetSpec { cell: Cell::Lstm, n_features: 2, hidden: vec![4], input_len: 5, output_len: 1, n_targets: 1 };
        let synth = SyntheticNet::random(spec, 3);
        let net = OnnxNet::load(&synth.to_onnx(), 5, 2, 1, 1).unwrap();
        let x: Vec<f32> = (0..10).map(|i| i as f32 / 10.0).collect();
        let first = net.forecast(&NetInput { x: &x, n: 1, forecast_timestamps: None }).unwrap();
        let zeros = vec![0f32; 30];
        net.forecast(&NetInput { x: &zeros, n: 3, forecast_timestamps: None }).unwrap();
        let again = net.forecast(&NetInput { x: &x, n: 1, forecast_timestamps: None }).unwrap();
        assert_eq!(first, again);
    }

    #[test]
    fn shape_mismatches_are_invalid_models() {
        let spec =
            NetSpec { cell: Cell::Lstm, n_features: 2, hidden: vec![4], input_len: 5, output_len: 1, n_targets: 1 };
        let bytes = SyntheticNet::random(spec, 3).to_onnx();
        let e = OnnxNet::load(&bytes, 5, 3, 1, 1).err().expect("3 features > 2 declared");
        assert!(e.to_string().contains("takes 2 features per row but the artifact lists 3"), "{e}");
        let e = OnnxNet::load(&bytes, 5, 2, 2, 1).err().expect("output width 1, artifact says 2");
        assert!(e.to_string().contains("expected [1, 2]"), "{e}");
        let e = OnnxNet::load(b"not onnx", 5, 2, 1, 1).err().expect("garbage");
        assert!(e.to_string().starts_with("invalid model: cannot parse ONNX"), "{e}");
    }

    #[test]
    fn a_padded_input_is_fed_zeros() {
        // An exporter padding a univariate series to two inputs (tract's GRU
        // workaround): the artifact lists one feature, ONNX declares two.
        let spec =
            NetSpec { cell: Cell::Gru, n_features: 2, hidden: vec![4], input_len: 5, output_len: 1, n_targets: 1 };
        let synth = SyntheticNet::random(spec, 11);
        let net = OnnxNet::load(&synth.to_onnx(), 5, 1, 1, 1).unwrap();
        let x: Vec<f32> = (0..5).map(|i| i as f32 / 5.0).collect();
        let padded: Vec<f32> = x.iter().flat_map(|v| [*v, 0.0]).collect();
        let got = net.forecast(&NetInput { x: &x, n: 1, forecast_timestamps: None }).unwrap();
        let want = synth.forward(&padded, 1);
        assert!((got[0] - want[0]).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}
