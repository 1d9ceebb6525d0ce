//! Hand-built recurrent forecasters in the contract's ONNX form, with a plain
//! Rust forward pass to check them against: for tests and benches that need a
//! model without a trainer.
//!
//! The graph is what `docs/data-contract.md` describes: input `input`
//! `[input_len, batch, n_features]`, stacked forward `GRU` (linear_before_reset
//! = 1) or `LSTM` layers (opset 14, layout 0, ONNX gate orders: GRU z, r, h;
//! LSTM i, o, f, c), the last layer's `Y_h` squeezed to `[batch, hidden]`, then
//! a `Gemm` head to `output` `[batch, output_len * n_targets]`.

use prost::Message as _;
use tract_onnx::pb;

/// The recurrent cell type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Gru,
    Lstm,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }
}

/// Shape of a synthetic network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    pub cell: Cell,
    pub n_features: usize,
    /// Hidden size of each stacked layer.
    pub hidden: Vec<usize>,
    pub input_len: usize,
    pub output_len: usize,
    pub n_targets: usize,
}

/// One recurrent layer's weights in ONNX layout (one direction).
#[derive(Debug, Clone)]
struct Layer {
    input: usize,
    hidden: usize,
    /// `[gates * hidden, input]`, row-major.
    w: Vec<f32>,
    /// `[gates * hidden, hidden]`.
    r: Vec<f32>,
    /// `[2 * gates * hidden]`: input biases then recurrent biases.
    b: Vec<f32>,
}

/// A network with fixed weights.
#[derive(Debug, Clone)]
pub struct SyntheticNet {
    pub spec: NetSpec,
    layers: Vec<Layer>,
    /// `[out, hidden]` (Gemm with transB = 1).
    head_w: Vec<f32>,
    head_b: Vec<f32>,
}

/// xorshift64*: deterministic weights without a rand dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, bound: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * u - 1.0) * bound
    }
    fn fill(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(bound)).collect()
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `out[j] = sum_k m[j][k] * v[k]` for a row-major `rows x v.len()` block of `m`.
fn matvec(m: &[f32], v: &[f32], rows: std::ops::Range<usize>) -> Vec<f32> {
    let cols = v.len();
    rows.map(|j| m[j * cols..(j + 1) * cols].iter().zip(v).map(|(a, b)| a * b).sum()).collect()
}

impl SyntheticNet {
    /// Weights drawn uniformly from `±1/sqrt(hidden)` (PyTorch's init), from `seed`.
    pub fn random(spec: NetSpec, seed: u64) -> Self {
        assert!(!spec.hidden.is_empty(), "at least one recurrent layer");
        let mut rng = Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let g = spec.cell.gates();
        let mut input = spec.n_features;
        let mut layers = Vec::new();
        for &h in &spec.hidden {
            let bound = 1.0 / (h as f32).sqrt();
            layers.push(Layer {
                input,
                hidden: h,
                w: rng.fill(g * h * input, bound),
                r: rng.fill(g * h * h, bound),
                b: rng.fill(2 * g * h, bound),
            });
            input = h;
        }
        let out = spec.output_len * spec.n_targets;
        let bound = 1.0 / (input as f32).sqrt();
        let head_w = rng.fill(out * input, bound);
        let head_b = rng.fill(out, bound);
        SyntheticNet { spec, layers, head_w, head_b }
    }

    /// Width of one output row: `output_len * n_targets`.
    pub fn out_width(&self) -> usize {
        self.spec.output_len * self.spec.n_targets
    }

    /// The reference forward pass: `x` is `[n][input_len][n_features]`, the
    /// result `[n][output_len * n_targets]`.
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (t_len, f) = (self.spec.input_len, self.spec.n_features);
        assert_eq!(x.len(), n * t_len * f, "input is [n][input_len][n_features]");
        let mut out = Vec::with_capacity(n * self.out_width());
        for i in 0..n {
            let mut seq: Vec<Vec<f32>> =
                (0..t_len).map(|t| x[(i * t_len + t) * f..(i * t_len + t + 1) * f].to_vec()).collect();
            for layer in &self.layers {
                seq = self.run_layer(layer, &seq);
            }
            let last = seq.last().expect("input_len >= 1");
            let y = matvec(&self.head_w, last, 0..self.out_width());
            out.extend(y.iter().zip(&self.head_b).map(|(a, b)| a + b));
        }
        out
    }

    fn run_layer(&self, l: &Layer, seq: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let h_n = l.hidden;
        let mut h = vec![0f32; h_n];
        let mut c = vec![0f32; h_n];
        let mut ys = Vec::with_capacity(seq.len());
        let g = self.spec.cell.gates();
        for x in seq {
            let xw = matvec(&l.w, x, 0..g * h_n);
            let hr = matvec(&l.r, &h, 0..g * h_n);
            let (wb, rb) = l.b.split_at(g * h_n);
            let pre = |gate: usize, j: usize| {
                let k = gate * h_n + j;
                (xw[k] + wb[k], hr[k] + rb[k])
            };
            match self.spec.cell {
                Cell::Gru => {
                    // z, r, h; linear_before_reset = 1.
                    let next: Vec<f32> = (0..h_n)
                        .map(|j| {
                            let (zx, zh) = pre(0, j);
                            let (rx, rh) = pre(1, j);
                            let (nx, nh) = pre(2, j);
                            let z = sigmoid(zx + zh);
                            let r = sigmoid(rx + rh);
                            let cand = (nx + r * nh).tanh();
                            (1.0 - z) * cand + z * h[j]
                        })
                        .collect();
                    h = next;
                }
                Cell::Lstm => {
                    // i, o, f, c.
                    for j in 0..h_n {
                        let (ix, ih) = pre(0, j);
                        let (ox, oh) = pre(1, j);
                        let (fx, fh) = pre(2, j);
                        let (cx, ch) = pre(3, j);
                        let (i, o, f) = (sigmoid(ix + ih), sigmoid(ox + oh), sigmoid(fx + fh));
                        c[j] = f * c[j] + i * (cx + ch).tanh();
                        h[j] = o * c[j].tanh();
                    }
                }
            }
            ys.push(h.clone());
        }
        ys
    }

    /// The network as an ONNX `ModelProto`, encoded.
    pub fn to_onnx(&self) -> Vec<u8> {
        let s = &self.spec;
        let g = s.cell.gates() as i64;
        let op = match s.cell {
            Cell::Gru => "GRU",
            Cell::Lstm => "LSTM",
        };
        let mut nodes = Vec::new();
        let mut inits = Vec::new();
        let mut x = "input".to_string();
        let mut last_h = String::new();
        for (li, l) in self.layers.iter().enumerate() {
            let (h, i) = (l.hidden as i64, l.input as i64);
            inits.push(float_tensor(&format!("W{li}"), &[1, g * h, i], &l.w));
            inits.push(float_tensor(&format!("R{li}"), &[1, g * h, h], &l.r));
            inits.push(float_tensor(&format!("B{li}"), &[1, 2 * g * h], &l.b));
            let mut attrs = vec![int_attr("hidden_size", h)];
            if s.cell == Cell::Gru {
                attrs.push(int_attr("linear_before_reset", 1));
            }
            let (y, yh) = (format!("Y{li}"), format!("Yh{li}"));
            nodes.push(node(
                op,
                &format!("rnn{li}"),
                &[&x, &format!("W{li}"), &format!("R{li}"), &format!("B{li}")],
                &[&y, &yh],
                attrs,
            ));
            // Y [seq, 1, batch, h] -> [seq, batch, h] for the next layer.
            let squeezed = format!("X{}", li + 1);
            nodes.push(node("Squeeze", &format!("squeeze_y{li}"), &[&y, "axis1"], &[&squeezed], vec![]));
            x = squeezed;
            last_h = yh;
        }
        inits.push(int64_tensor("axis0", &[1], &[0]));
        inits.push(int64_tensor("axis1", &[1], &[1]));
        // Y_h [1, batch, h] -> [batch, h] -> Gemm head.
        nodes.push(node("Squeeze", "squeeze_h", &[&last_h, "axis0"], &["last"], vec![]));
        let h_last = self.layers.last().map(|l| l.hidden).unwrap_or_default() as i64;
        let out = self.out_width() as i64;
        inits.push(float_tensor("head_W", &[out, h_last], &self.head_w));
        inits.push(float_tensor("head_B", &[out], &self.head_b));
        nodes.push(node("Gemm", "head", &["last", "head_W", "head_B"], &["output"], vec![int_attr("transB", 1)]));
        let graph = pb::GraphProto {
            name: "flts-synthetic".into(),
            node: nodes,
            initializer: inits,
            input: vec![value_info(
                "input",
                &[Dim::Fixed(s.input_len as i64), Dim::Param("batch"), Dim::Fixed(s.n_features as i64)],
            )],
            output: vec![value_info("output", &[Dim::Param("batch"), Dim::Fixed(out)])],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 14 }],
            producer_name: "flts-inference-synthetic".into(),
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

enum Dim {
    Fixed(i64),
    Param(&'static str),
}

fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(v) => Value::DimValue(*v),
                Dim::Param(p) => Value::DimParam(p.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn float_tensor(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    debug_assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn int64_tensor(name: &str, dims: &[i64], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}
