//! The trainers' ONNX (`nn::export_onnx`) served by inference gives exactly
//! what the trained network computes, for both cells, one and several
//! features and layers, single windows and batches beyond one tract plan.

use chrono::Utc;
use contracts::{ModelArtifact, ModelFormat, ModelType};
use inference::loader;
use inference::model::{ModelSource, ModelSpec};
use series::{Scaler, ScalerColumn, ScalerKind};

fn check(cell: nn::CellKind, n_features: usize, layers: usize, output_len: usize) {
    let config = nn::ModelConfig { cell, n_features, hidden: 12, layers, input_len: 10, n_outputs: output_len };
    let net = nn::Network::new(config, 9);
    let features: Vec<String> = (0..n_features).map(|i| format!("f{i}")).collect();
    let spec = ModelSpec {
        identifier: "site".into(),
        model_type: if cell == nn::CellKind::Gru { ModelType::Gru } else { ModelType::Lstm },
        run_id: "run".into(),
        config_hash: "cfg".into(),
        artifact_uri: "s3://mlflow/1/run/artifacts".into(),
        artifact: ModelArtifact {
            format: ModelFormat::Onnx,
            path: "model/model.onnx".into(),
            scaler_path: "model/scaler.json".into(),
            input_len: 10,
            output_len: output_len as u32,
            features: features.clone(),
            targets: vec!["f0".into()],
        },
        source: ModelSource::Promotion,
        promotion_time: Some(Utc::now()),
        sequence: 1,
        model_sha256: None,
        trained_at: None,
        test_rmse: 0.0,
        test_mae: 0.0,
        test_mse: 0.0,
    };
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
