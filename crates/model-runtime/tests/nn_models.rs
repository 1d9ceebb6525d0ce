//! The trainers' ONNX (`nn::export_onnx`) served by inference gives exactly
//! what the trained network computes, for both cells, one and several
//! features and layers, single windows and batches beyond one tract plan.

use contracts::ModelType;
use model_runtime::loader;
use model_runtime::model::ModelSpec;
use series::{Scaler, ScalerColumn, ScalerKind};

fn check(cell: nn::CellKind, n_features: usize, layers: usize, output_len: usize) {
    let config = nn::ModelConfig { cell, n_features, hidden: 12, layers, input_len: 10, n_outputs: output_len };
    let net = nn::Network::new(config, 9);
    let features: Vec<String> = (0..n_features).map(|i| format!("f{i}")).collect();
    let model_type = if cell == nn::CellKind::Gru { ModelType::Gru } else { ModelType::Lstm };
    let shape = (10, output_len as u32);
    let spec = ModelSpec::promoted_onnx("site", model_type, "run", shape, features.clone(), vec!["f0".into()]);
    let scaler = Scaler {
        kind: ScalerKind::MinMax,
        columns: features.iter().map(|f| ScalerColumn::new(f.clone(), 0.0, 1.0)).collect(),
    };
    let model = loader::build(&spec, &nn::export_onnx(&net), scaler).expect("the trainers' ONNX loads");
    for n in [1usize, 7, 300] {
        let x: Vec<f32> = (0..n * 10 * n_features).map(|i| ((i * 31 % 23) as f32 / 11.0) - 1.0).collect();
        let got = model.forecast_scaled(&x, n, None, "test").expect("forecast");
        let want = net.predict(&x, n);
        assert_eq!(got.len(), want.len());
        let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max < 1e-5, "{cell:?} features={n_features} layers={layers} n={n}: max |served - trained| = {max}");
    }
}

#[test]
fn gru_models_from_the_trainers_are_served_exactly() {
    check(nn::CellKind::Gru, 1, 1, 1); // padded univariate input inside the graph
    check(nn::CellKind::Gru, 3, 2, 2);
}

#[test]
fn lstm_models_from_the_trainers_are_served_exactly() {
    check(nn::CellKind::Lstm, 1, 2, 1);
    check(nn::CellKind::Lstm, 2, 1, 3);
}
