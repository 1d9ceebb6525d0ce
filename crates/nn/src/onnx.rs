//! ONNX export with the standard operators, so that tract, onnxruntime or any
//! other runtime can load the model (the contract in `docs/data-contract.md`).
//!
//! Graph (opset 14, IR version 8):
//! ```text
//! input [input_len, batch, n_features] (time-major, ONNX layout 0)
//!   -> (GRU with n_features = 1 only) Pad to 2 features with a zero column
//!   -> GRU/LSTM layer 0 -> Squeeze(axis 1) -> GRU/LSTM layer 1 -> ...   (Y between layers)
//!   -> last layer's Y_h [1, batch, hidden] -> Squeeze(axis 0)
//!   -> Gemm with the head (transB = 1) -> output [batch, n_outputs]
//! initial_h (and the LSTM's initial_c) = MatMul(input[0:1], zeros [n_features, hidden]),
//! zeros of shape [1, batch, hidden], so the batch size can stay symbolic in tract.
//! ```
//! The input is **time-major**, unlike [`Network::predict`](crate::Network::predict)'s
//! batch-major windows: element `[t, b, f]` is feature `f` of row `t` of window `b`.
//!
//! Weights are reordered from PyTorch's gate order to the ONNX spec's: GRU
//! `r, z, n` becomes `z, r, h`; LSTM `i, f, g, o` becomes `i, o, f, c`. The GRU has
//! `linear_before_reset = 1` (PyTorch's reset-after form). Biases are
//! `B = [bias_ih | bias_hh]`.
//!
//! The padding works around tract 0.23's fused GRU, which fails on a one-feature
//! input ("xw not contiguous"); the extra input column has zero weights, so the
//! maths is unchanged.

use prost::Message;
use tract_onnx::pb;

use crate::config::CellKind;
use crate::network::{Network, Weights};

const OPSET: i64 = 14;
const IR_VERSION: i64 = 8;
const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;
const INT64: i32 = pb::tensor_proto::DataType::Int64 as i32;

/// The network as an ONNX model (protobuf bytes); see the [module docs](self)
/// for its graph and its time-major input.
pub fn export_onnx(net: &Network) -> Vec<u8> {
    let cfg = net.config();
    let w = Weights::split(cfg, net.params());
    let (h, g) = (cfg.hidden, cfg.gate_rows());
    let mut graph = GraphBuilder::default();

    let pad = cfg.cell == CellKind::Gru && cfg.n_features == 1;
    let mut x = "input".to_string();
    if pad {
        // pads = [begin of each axis..., end of each axis...]: one zero column after the feature.
        graph.int64s("pad_widths", &[0, 0, 0, 0, 0, 1]);
        graph.node("Pad", "pad", &["input", "pad_widths"], &["input_padded"], vec![]);
        x = "input_padded".to_string();
    }
    graph.int64s("axis_0", &[0]);
    if cfg.layers > 1 {
        graph.int64s("axis_1", &[1]);
    }
    // Zero initial states [1, batch, hidden]: without them tract needs a fixed
    // batch size. Zeros = (first step of the input [1, batch, n_features]) x
    // (zeros [n_features, hidden]), which every runtime sizes from the input.
    graph.int64s("step_0", &[0]);
    graph.floats("zeros_fh", &[cfg.n_features, h], vec![0.0; cfg.n_features * h]);
    graph.node("Gather", "first_step", &["input", "step_0"], &["first_step"], vec![]);
    graph.node("MatMul", "zero_state", &["first_step", "zeros_fh"], &["zero_state"], vec![]);

    let (op, onnx_order): (&str, &[usize]) = match cfg.cell {
        CellKind::Gru => ("GRU", &[1, 0, 2]),
        CellKind::Lstm => ("LSTM", &[0, 3, 1, 2]),
    };
    for (l, layer) in w.layers.iter().enumerate() {
        let n_in = cfg.layer_input(l);
        let width = if pad && l == 0 { 2 } else { n_in };
        let reorder = |m: &[f32], cols: usize| reorder_gates(m, h, cols, onnx_order);
        let mut bias = reorder(layer.b_ih, 1);
        bias.extend(reorder(layer.b_hh, 1));
        graph.floats(&format!("l{l}_W"), &[1, g, width], widen(&reorder(layer.w_ih, n_in), n_in, width));
        graph.floats(&format!("l{l}_R"), &[1, g, h], reorder(layer.w_hh, h));
        graph.floats(&format!("l{l}_B"), &[1, 2 * g], bias);

        let mut attrs = vec![int_attr("hidden_size", h as i64)];
        if cfg.cell == CellKind::Gru {
            attrs.push(int_attr("linear_before_reset", 1));
        }
        // X, W, R, B, sequence_lens (none: every window is full), initial_h (, initial_c)
        let (w_name, r_name, b_name) = (format!("l{l}_W"), format!("l{l}_R"), format!("l{l}_B"));
        let mut inputs = vec![x.as_str(), &w_name, &r_name, &b_name, "", "zero_state"];
        if cfg.cell == CellKind::Lstm {
            inputs.push("zero_state");
        }
        if l + 1 < cfg.layers {
            // Y [T, 1, batch, H] -> [T, batch, H] for the next layer.
            graph.node(op, &format!("layer{l}"), &inputs, &[&format!("l{l}_y")], attrs);
            graph.node(
                "Squeeze",
                &format!("squeeze{l}"),
                &[&format!("l{l}_y"), "axis_1"],
                &[&format!("l{l}_seq")],
                vec![],
            );
            x = format!("l{l}_seq");
        } else {
            // Only Y_h, the last hidden state [1, batch, H], feeds the head.
            graph.node(op, &format!("layer{l}"), &inputs, &["", "last_h"], attrs);
        }
    }
    graph.node("Squeeze", "squeeze_last", &["last_h", "axis_0"], &["last_h2"], vec![]);
    graph.floats("head_W", &[cfg.n_outputs, h], w.w_out.to_vec());
    graph.floats("head_b", &[cfg.n_outputs], w.b_out.to_vec());
    graph.node("Gemm", "head", &["last_h2", "head_W", "head_b"], &["output"], vec![int_attr("transB", 1)]);

    model_bytes(
        format!(
            "{} x{} hidden {}: input [input_len={}, batch, n_features={}] time-major, scaled; \
             output [batch, {}] scaled, step-major",
            cfg.cell, cfg.layers, h, cfg.input_len, cfg.n_features, cfg.n_outputs
        ),
        pb::GraphProto {
            name: format!("flts_{}", cfg.cell.to_string().to_lowercase()),
            node: graph.nodes,
            initializer: graph.initializers,
            input: vec![value_info("input", &[Dim::Fixed(cfg.input_len), Dim::Batch, Dim::Fixed(cfg.n_features)])],
            output: vec![value_info("output", &[Dim::Batch, Dim::Fixed(cfg.n_outputs)])],
            ..Default::default()
        },
    )
}

/// An ONNX model (opset 14, IR 8, producer `flts-nn`) of `graph`, as protobuf bytes.
pub(crate) fn model_bytes(doc_string: String, graph: pb::GraphProto) -> Vec<u8> {
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "flts-nn".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string,
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Reorder the gate blocks of a `[gates * h, cols]` matrix (or bias with
/// `cols = 1`): block `k` of the result is block `order[k]` of `m`.
fn reorder_gates(m: &[f32], h: usize, cols: usize, order: &[usize]) -> Vec<f32> {
    let block = h * cols;
    order.iter().flat_map(|&k| &m[k * block..(k + 1) * block]).copied().collect()
}

/// Pad each row of a row-major matrix from `cols` to `width` columns with zeros.
fn widen(m: &[f32], cols: usize, width: usize) -> Vec<f32> {
    if cols == width {
        return m.to_vec();
    }
    m.chunks_exact(cols).flat_map(|row| row.iter().copied().chain(std::iter::repeat_n(0.0, width - cols))).collect()
}

#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub(crate) nodes: Vec<pb::NodeProto>,
    pub(crate) initializers: Vec<pb::TensorProto>,
}

impl GraphBuilder {
    pub(crate) fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<pb::AttributeProto>,
    ) {
        self.nodes.push(pb::NodeProto {
            op_type: op.to_string(),
            name: name.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }

    pub(crate) fn floats(&mut self, name: &str, dims: &[usize], float_data: Vec<f32>) {
        debug_assert_eq!(dims.iter().product::<usize>(), float_data.len(), "{name}");
        self.initializers.push(pb::TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            float_data,
            ..Default::default()
        });
    }

    pub(crate) fn int64s(&mut self, name: &str, values: &[i64]) {
        self.initializers.push(pb::TensorProto {
            name: name.to_string(),
            dims: vec![values.len() as i64],
            data_type: INT64,
            int64_data: values.to_vec(),
            ..Default::default()
        });
    }
}

pub(crate) fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

pub(crate) enum Dim {
    Fixed(usize),
    /// The symbolic batch dimension, named `batch`.
    Batch,
}

pub(crate) fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n as i64),
                Dim::Batch => Value::DimParam("batch".to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::prelude::*;

    use super::*;
    use crate::config::ModelConfig;
    use crate::rng::Rng;

    /// Load the exported bytes the way the inference service does (symbolic
    /// batch), run `batch` windows and compare with `predict`.
    fn round_trip(cell: CellKind, layers: usize, n_features: usize) {
        let cfg = ModelConfig { cell, n_features, hidden: 8, layers, input_len: 6, n_outputs: 3 };
        let net = Network::new(cfg, 5);
        let bytes = export_onnx(&net);

        let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).expect("tract parses the export");
        let batch_sym = model.symbols.sym("batch");
        model
            .set_input_fact(0, f32::fact(&[cfg.input_len.to_dim(), batch_sym.to_dim(), n_features.to_dim()]).into())
            .expect("input fact");
        let plan = model
            .into_optimized()
            .unwrap_or_else(|e| panic!("tract optimises the export: {e:?}"))
            .into_runnable()
            .expect("plan");

        let mut rng = Rng::new(9);
        for batch in [1, 4] {
            let x: Vec<f32> = (0..batch * cfg.window_len()).map(|_| rng.uniform(-1.0, 2.0)).collect();
            let want = net.predict(&x, batch);
            // batch-major [b][t][f] -> time-major [t][b][f]
            let mut time_major = vec![0.0; x.len()];
            for b in 0..batch {
                for t in 0..cfg.input_len {
                    let src = (b * cfg.input_len + t) * n_features;
                    let dst = (t * batch + b) * n_features;
                    time_major[dst..dst + n_features].copy_from_slice(&x[src..src + n_features]);
                }
            }
            let input = Tensor::from_shape(&[cfg.input_len, batch, n_features], &time_major).expect("shape");
            let out = plan.run(tvec!(input.into())).expect("tract runs the export");
            let got = out[0].to_plain_array_view::<f32>().expect("f32 output");
            assert_eq!(got.shape(), &[batch, cfg.n_outputs]);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{cell} x{layers}, {n_features} features, batch {batch}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn onnx_round_trip_gru() {
        for (layers, n_features) in [(1, 1), (1, 11), (2, 1), (2, 11)] {
            round_trip(CellKind::Gru, layers, n_features);
        }
    }

    #[test]
    fn onnx_round_trip_lstm() {
        for (layers, n_features) in [(1, 1), (1, 11), (2, 1), (2, 11)] {
            round_trip(CellKind::Lstm, layers, n_features);
        }
    }

    #[test]
    fn gate_blocks_are_reordered() {
        // Blocks of h = 1 row with 2 columns: [r, z, n] -> [z, r, n].
        let m = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
        assert_eq!(reorder_gates(&m, 1, 2, &[1, 0, 2]), [2.0, 2.5, 1.0, 1.5, 3.0, 3.5]);
        assert_eq!(widen(&[1.0, 2.0], 1, 2), [1.0, 0.0, 2.0, 0.0]);
    }
}
