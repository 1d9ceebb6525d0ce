//! Naive forecasts as ONNX models, so eval can promote one like any trained
//! network when no model beats them and inference serves it unchanged.
//!
//! Same interface as [`export_onnx`](crate::export_onnx)'s networks: input
//! `[input_len, batch, n_features]` time-major, scaled with the dataset
//! scaler; output `[batch, output_len * n_targets]` step-major, scaled. Both
//! forecasts copy scaled input values, so scaling and inverse scaling cancel
//! and the served forecast is the observed value itself.
//!
//! Graph (opset 14):
//! ```text
//! input [T, batch, F] -> Gather(axis 0, rows [H])        -> [H, batch, F]
//!   -> Transpose(1, 0, 2)                                 -> [batch, H, F]
//!   -> Gather(axis 2, the targets' feature columns [K])   -> [batch, H, K]
//!   -> Reshape([-1, H * K])                               -> output [batch, H * K]
//! ```
//! - last value: every step reads row `T - 1`, the last input row;
//! - seasonal naive with season `S` rows (`T >= S >= H`): step `h` (from 0)
//!   reads row `T - S + h`, the value one season before the forecast row.

use tract_onnx::pb;

use crate::NnError;
use crate::onnx::{Dim, GraphBuilder, int_attr, model_bytes, value_info};

/// Which naive forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naive {
    /// Repeat the last input row's target values for every step.
    LastValue,
    /// The value `season` rows before each forecast row.
    SeasonalNaive { season: usize },
}

/// The shape of a naive model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaiveSpec {
    pub kind: Naive,
    /// Input rows per window (for seasonal naive at least the season).
    pub input_len: usize,
    pub n_features: usize,
    /// Each target's column among the input features, in target order.
    pub target_columns: Vec<usize>,
    /// Rows forecast per window.
    pub output_len: usize,
}

impl NaiveSpec {
    /// The input row each forecast step copies.
    fn rows(&self) -> Result<Vec<i64>, NnError> {
        let bad = |m: String| Err(NnError::InvalidModel(m));
        if self.input_len == 0 || self.output_len == 0 || self.n_features == 0 || self.target_columns.is_empty() {
            return bad("a naive model needs input rows, output rows, features and targets".into());
        }
        if let Some(c) = self.target_columns.iter().find(|&&c| c >= self.n_features) {
            return bad(format!("target column {c} is not among the {} features", self.n_features));
        }
        let t = self.input_len as i64;
        match self.kind {
            Naive::LastValue => Ok(vec![t - 1; self.output_len]),
            Naive::SeasonalNaive { season } => {
                if season < self.output_len || season > self.input_len {
                    return bad(format!(
                        "seasonal naive needs output_len {} <= season {season} <= input_len {}",
                        self.output_len, self.input_len
                    ));
                }
                Ok((0..self.output_len as i64).map(|h| t - season as i64 + h).collect())
            }
        }
    }
}

/// The naive forecast `spec` describes as an ONNX model (protobuf bytes).
pub fn export_naive(spec: &NaiveSpec) -> Result<Vec<u8>, NnError> {
    let rows = spec.rows()?;
    let (h, k) = (spec.output_len, spec.target_columns.len());
    let mut graph = GraphBuilder::default();
    graph.int64s("rows", &rows);
    let columns: Vec<i64> = spec.target_columns.iter().map(|&c| c as i64).collect();
    graph.int64s("target_columns", &columns);
    graph.int64s("output_shape", &[-1, (h * k) as i64]);
    graph.node("Gather", "steps", &["input", "rows"], &["steps"], vec![int_attr("axis", 0)]);
    let perm = pb::AttributeProto {
        name: "perm".to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: vec![1, 0, 2],
        ..Default::default()
    };
    graph.node("Transpose", "by_window", &["steps"], &["by_window"], vec![perm]);
    graph.node("Gather", "targets", &["by_window", "target_columns"], &["picked"], vec![int_attr("axis", 2)]);
    graph.node("Reshape", "flatten", &["picked", "output_shape"], &["output"], vec![]);
    let what = match spec.kind {
        Naive::LastValue => "last value".to_string(),
        Naive::SeasonalNaive { season } => format!("seasonal naive (season {season} rows)"),
    };
    let doc = format!(
        "{what}: input [input_len={}, batch, n_features={}] time-major, scaled; output [batch, {}] scaled, step-major",
        spec.input_len,
        spec.n_features,
        h * k
    );
    let graph = pb::GraphProto {
        name: "flts_naive".to_string(),
        node: graph.nodes,
        initializer: graph.initializers,
        input: vec![value_info("input", &[Dim::Fixed(spec.input_len), Dim::Batch, Dim::Fixed(spec.n_features)])],
        output: vec![value_info("output", &[Dim::Batch, Dim::Fixed(h * k)])],
        ..Default::default()
    };
    Ok(model_bytes(doc, graph))
}

#[cfg(test)]
mod tests {
    use tract_onnx::prelude::*;

    use super::*;

    /// Run the export in tract with a symbolic batch, as inference loads it.
    fn run(spec: &NaiveSpec, batch: usize, x: &[f32]) -> Vec<f32> {
        let bytes = export_naive(spec).expect("export");
        let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).expect("tract parses it");
        let b = model.symbols.sym("batch");
        model
            .set_input_fact(0, f32::fact(&[spec.input_len.to_dim(), b.to_dim(), spec.n_features.to_dim()]).into())
            .expect("fact");
        let plan = model.into_optimized().expect("optimise").into_runnable().expect("plan");
        let input = Tensor::from_shape(&[spec.input_len, batch, spec.n_features], x).expect("shape");
        let out = plan.run(tvec!(input.into())).expect("run");
        let view = out[0].to_plain_array_view::<f32>().expect("f32");
        assert_eq!(view.shape(), &[batch, spec.output_len * spec.target_columns.len()]);
        view.iter().copied().collect()
    }

    /// x[t][b][f] = 100 t + 10 b + f: every value says where it came from.
    fn input(t_len: usize, batch: usize, f: usize) -> Vec<f32> {
        let mut x = Vec::new();
        for t in 0..t_len {
            for b in 0..batch {
                for j in 0..f {
                    x.push((100 * t + 10 * b + j) as f32);
                }
            }
        }
        x
    }

    #[test]
    fn last_value_repeats_the_last_rows_targets_per_step() {
        let spec = NaiveSpec {
            kind: Naive::LastValue,
            input_len: 5,
            n_features: 3,
            target_columns: vec![2, 0],
            output_len: 2,
        };
        for batch in [1, 3] {
            let got = run(&spec, batch, &input(5, batch, 3));
            let mut want = Vec::new();
            for b in 0..batch {
                for _step in 0..2 {
                    want.extend([(400 + 10 * b + 2) as f32, (400 + 10 * b) as f32]);
                }
            }
            assert_eq!(got, want, "batch {batch}");
        }
    }

    #[test]
    fn seasonal_naive_reads_one_season_back_per_step() {
        let spec = NaiveSpec {
            kind: Naive::SeasonalNaive { season: 4 },
            input_len: 6,
            n_features: 2,
            target_columns: vec![1],
            output_len: 3,
        };
        let got = run(&spec, 2, &input(6, 2, 2));
        // Rows 6, 7, 8 are forecast; a season back they are rows 2, 3, 4.
        let want: Vec<f32> = (0..2).flat_map(|b| [2, 3, 4].map(|t| (100 * t + 10 * b + 1) as f32)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn impossible_shapes_are_refused() {
        let base =
            NaiveSpec { kind: Naive::LastValue, input_len: 4, n_features: 2, target_columns: vec![0], output_len: 1 };
        assert!(export_naive(&NaiveSpec { target_columns: vec![2], ..base.clone() }).is_err());
        assert!(export_naive(&NaiveSpec { kind: Naive::SeasonalNaive { season: 5 }, ..base.clone() }).is_err());
        let long = NaiveSpec { kind: Naive::SeasonalNaive { season: 2 }, output_len: 3, ..base.clone() };
        assert!(export_naive(&long).is_err());
        assert!(export_naive(&NaiveSpec { output_len: 0, ..base }).is_err());
    }
}
