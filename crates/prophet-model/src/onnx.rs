//! The point forecast (`yhat`) of a [`FittedSet`] as a standard ONNX graph,
//! so that a Python user loads a Prophet model with `mlflow.pyfunc` and
//! onnxruntime and nothing of this project (issue 20).
//!
//! Graph (opset 14, all arithmetic in float64): input `timestamp` int64
//! `[n]` (ms since the epoch) -> whole seconds (`floor(ms / 1000)`) -> per
//! target the formula of [`crate::model`]:
//! `t = (s - t_start_s) / t_span_s`,
//! `trend = (k t + m + sum_j delta_j relu(t - cp_j)) y_scale` (the piecewise
//! linear trend: `relu(t - cp)` is `(t - cp)` from the changepoint on),
//! Fourier columns `sin/cos(s / 3600 / 24 * pi * 2 * harmonic / period)`,
//! holiday columns 1 on their listed UTC days, constant columns 1;
//! `yhat = trend (1 + mult) + add y_scale` -> output `yhat` float64
//! `[n, n_targets]`. Intervals are not exported (they are simulated).
//! A model with extra regressors has no export: their values are not a
//! function of time.

use prost::Message;
use tract_onnx::pb;

use crate::model::{Feature, FittedSet, FittedTarget, Wave};
use crate::{SeasonalityMode, model::DAY_S};

const OPSET: i64 = 14;
const IR_VERSION: i64 = 8;
const DOUBLE: i32 = pb::tensor_proto::DataType::Double as i32;
const INT64: i32 = pb::tensor_proto::DataType::Int64 as i32;

/// The input and output names.
pub const INPUT: &str = "timestamp";
pub const OUTPUT: &str = "yhat";

#[derive(Default)]
struct Graph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    next: usize,
}

impl Graph {
    /// Add `op` on `inputs`; its output's (fresh) name.
    fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<pb::AttributeProto>) -> String {
        self.next += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.next);
        self.nodes.push(pb::NodeProto {
            op_type: op.to_string(),
            name: out.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    /// A float64 constant of shape `dims`.
    fn doubles(&mut self, dims: &[usize], values: Vec<f64>) -> String {
        self.next += 1;
        let name = format!("c_{}", self.next);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DOUBLE,
            double_data: values,
            ..Default::default()
        });
        name
    }

    fn scalar(&mut self, v: f64) -> String {
        self.doubles(&[], vec![v])
    }

    fn int64s(&mut self, values: &[i64]) -> String {
        self.next += 1;
        let name = format!("i_{}", self.next);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: INT64,
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// `a op b` for a binary operator.
    fn bin(&mut self, op: &str, a: &str, b: &str) -> String {
        self.op(op, &[a, b], vec![])
    }

    /// `x [n, 1]` times the columns' coefficients: `f(x * w) . beta`, `[n, 1]`.
    fn weighted(&mut self, x: &str, f: &str, w: Vec<f64>, beta: Vec<f64>) -> String {
        let c = w.len();
        let w = self.doubles(&[1, c], w);
        let beta = self.doubles(&[c, 1], beta);
        let angle = self.bin("Mul", x, &w);
        let wave = self.op(f, &[&angle], vec![]);
        self.bin("MatMul", &wave, &beta)
    }
}

fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => Value::DimValue(*n as i64),
                None => Value::DimParam("n".to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `yhat [n, 1]` of one target from the whole seconds `s [n, 1]` and `x = s / 3600 / 24 * pi * 2`.
fn target_yhat(g: &mut Graph, target: &FittedTarget, s: &str, x: &str) -> String {
    // Trend.
    let origin = g.scalar(target.t_start_s as f64);
    let span = g.scalar(target.t_span_s);
    let shifted = g.bin("Sub", s, &origin);
    let t = g.bin("Div", &shifted, &span);
    let k = g.scalar(target.k);
    let m = g.scalar(target.m);
    let kt = g.bin("Mul", &t, &k);
    let mut trend = g.bin("Add", &kt, &m);
    if !target.changepoints_t.is_empty() {
        let cp = g.doubles(&[1, target.changepoints_t.len()], target.changepoints_t.clone());
        let deltas = g.doubles(&[target.deltas.len(), 1], target.deltas.clone());
        let after = g.bin("Sub", &t, &cp);
        let ramps = g.op("Relu", &[&after], vec![]);
        let bends = g.bin("MatMul", &ramps, &deltas);
        trend = g.bin("Add", &trend, &bends);
    }
    let y_scale = g.scalar(target.y_scale);
    let trend = g.bin("Mul", &trend, &y_scale);

    // Seasonal, holiday and constant columns, summed per mode.
    let mut sums: [Vec<String>; 2] = [vec![], vec![]];
    let mode_index = |mode: SeasonalityMode| usize::from(mode == SeasonalityMode::Multiplicative);
    for mode in [SeasonalityMode::Additive, SeasonalityMode::Multiplicative] {
        for (wave, f) in [(Wave::Sin, "Sin"), (Wave::Cos, "Cos")] {
            let (w, beta): (Vec<f64>, Vec<f64>) = target
                .columns
                .iter()
                .filter(|c| c.mode == mode)
                .filter_map(|c| match &c.feature {
                    Feature::Fourier { period_days, harmonic, wave: w, .. } if *w == wave => {
                        Some((f64::from(*harmonic) / period_days, c.beta))
                    }
                    _ => None,
                })
                .unzip();
            if !w.is_empty() {
                let part = g.weighted(x, f, w, beta);
                sums[mode_index(mode)].push(part);
            }
        }
    }
    for column in &target.columns {
        let part = match &column.feature {
            Feature::Holiday { day_starts_s, .. } if !day_starts_s.is_empty() => {
                let starts: Vec<f64> = day_starts_s.iter().map(|d| *d as f64).collect();
                let ends: Vec<f64> = day_starts_s.iter().map(|d| (d + DAY_S) as f64).collect();
                let n = starts.len();
                let (starts, ends) = (g.doubles(&[1, n], starts), g.doubles(&[1, n], ends));
                let from = g.bin("GreaterOrEqual", s, &starts);
                let until = g.bin("Less", s, &ends);
                let on = g.bin("And", &from, &until);
                let on = g.op("Cast", &[&on], vec![int_attr("to", i64::from(DOUBLE))]);
                let any = g.op("ReduceMax", &[&on], vec![ints_attr("axes", &[1]), int_attr("keepdims", 1)]);
                let beta = g.scalar(column.beta);
                g.bin("Mul", &any, &beta)
            }
            Feature::Constant => g.scalar(column.beta),
            _ => continue,
        };
        sums[mode_index(column.mode)].push(part);
    }
    let mut total = |parts: &[String]| -> String {
        let mut acc = g.scalar(0.0);
        for p in parts {
            acc = g.bin("Add", &acc, p);
        }
        acc
    };
    let (add, mult) = (total(&sums[0]), total(&sums[1]));
    let one = g.scalar(1.0);
    let factor = g.bin("Add", &one, &mult);
    let scaled = g.bin("Mul", &trend, &factor);
    let add = g.bin("Mul", &add, &y_scale);
    g.bin("Add", &scaled, &add)
}

/// The set's point forecast as ONNX (protobuf bytes); `None` when a target
/// has extra regressors.
pub fn export_onnx(set: &FittedSet) -> Option<Vec<u8>> {
    let has_regressor =
        set.targets.iter().flat_map(|t| &t.columns).any(|c| matches!(c.feature, Feature::Regressor { .. }));
    if has_regressor || set.targets.is_empty() {
        return None;
    }
    let mut g = Graph::default();
    let ms = g.op("Cast", &[INPUT], vec![int_attr("to", i64::from(DOUBLE))]);
    let thousand = g.scalar(1000.0);
    let seconds = g.bin("Div", &ms, &thousand);
    let seconds = g.op("Floor", &[&seconds], vec![]);
    let axis = g.int64s(&[1]);
    let s = g.bin("Unsqueeze", &seconds, &axis);
    // As the forecast computes it: s / 3600 / 24 * pi * 2.
    let (hour, day, pi, two) = (g.scalar(3600.0), g.scalar(24.0), g.scalar(std::f64::consts::PI), g.scalar(2.0));
    let x = g.bin("Div", &s, &hour);
    let x = g.bin("Div", &x, &day);
    let x = g.bin("Mul", &x, &pi);
    let x = g.bin("Mul", &x, &two);
    let columns: Vec<String> = set.targets.iter().map(|t| target_yhat(&mut g, t, &s, &x)).collect();
    let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let yhat = g.op("Concat", &refs, vec![int_attr("axis", 1)]);
    g.nodes.push(pb::NodeProto {
        op_type: "Identity".into(),
        name: OUTPUT.into(),
        input: vec![yhat],
        output: vec![OUTPUT.into()],
        ..Default::default()
    });
    let names: Vec<&str> = set.targets.iter().map(|t| t.name.as_str()).collect();
    let model = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "flts-prophet-model".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: format!(
            "Prophet point forecast: input timestamp [n] int64 ms since the epoch; output yhat [n, {}] float64, targets {names:?}",
            names.len()
        ),
        graph: Some(pb::GraphProto {
            name: "flts_prophet".to_string(),
            node: g.nodes,
            initializer: g.initializers,
            input: vec![value_info(INPUT, INT64, &[None])],
            output: vec![value_info(OUTPUT, DOUBLE, &[None, Some(names.len())])],
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(model.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use tract_onnx::prelude::*;

    use super::*;
    use crate::{Fitter, ProphetConfig};

    #[test]
    fn the_graph_forecasts_what_the_fitted_set_forecasts() {
        let step = 3_600_000i64;
        // From 2023-11-14 for 60 days: Thanksgiving, Christmas, New Year; the forecasts reach MLK Day.
        let ts: Vec<i64> = (0..24 * 60).map(|i| 1_700_000_000_000 + i * step).collect();
        let wave = |i: usize, p: f64| (i as f64 / p * std::f64::consts::TAU).sin();
        let a: Vec<f64> = (0..ts.len()).map(|i| 100.0 + 0.05 * i as f64 + 10.0 * wave(i, 24.0)).collect();
        let b: Vec<f64> = (0..ts.len()).map(|i| 50.0 - 0.01 * i as f64 + 4.0 * wave(i, 168.0)).collect();
        let plain = ProphetConfig { uncertainty_samples: 0, ..ProphetConfig::default() };
        let holidays = ProphetConfig {
            seasonality_mode: SeasonalityMode::Multiplicative,
            country_holidays: Some("US".into()),
            ..plain.clone()
        };
        for config in [plain, holidays] {
            let mut set = Fitter::new()
                .fit_all(&config, &ts, &[("a".into(), a.clone()), ("b".into(), b.clone())], &[], 2)
                .expect("fit");
            let has_holidays = set.targets[0].columns.iter().any(|c| matches!(c.feature, Feature::Holiday { .. }));
            assert_eq!(has_holidays, config.country_holidays.is_some());
            // Into a dataset's scaled units, as the trainer saves it (a constant column).
            set.rescale("a", 90.0, 40.0).expect("rescale");
            let onnx = export_onnx(&set).expect("no regressors");
            let future: Vec<i64> = (0..48).map(|i| ts[ts.len() - 1] + 1_234 + i * step * 5).collect();
            let want = set.predict(&future).expect("predict");
            let net = tract_onnx::onnx()
                .model_for_read(&mut &onnx[..])
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .expect("tract loads the graph");
            let input = Tensor::from_shape(&[future.len()], &future).expect("input");
            let out = net.run(tvec!(input.into())).expect("tract runs");
            assert_eq!(out[0].shape(), &[future.len(), 2]);
            let got = out[0].to_plain_array_view::<f64>().expect("f64");
            for (k, f) in want.iter().enumerate() {
                for (i, y) in f.yhat.iter().enumerate() {
                    let g = got[[i, k]];
                    assert!((g - y).abs() <= 1e-9 * (1.0 + y.abs()), "{} at {i}: graph {g} vs {y}", f.name);
                }
            }
        }
    }
}
