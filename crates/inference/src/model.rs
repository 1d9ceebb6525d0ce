//! A served model: what it is ([`ModelInfo`]), how it scales, and its
//! forward pass. Raw rows go in, forecasts in original units come out.

use std::time::Instant;

use chrono::{DateTime, Utc};
use contracts::{ModelArtifact, ModelFormat, ModelSelected, ModelTraining, ModelType, TrainingStatus};
use serde::{Deserialize, Serialize};
use series::Scaler;

use crate::metrics;
use crate::net::{Net, NetError, NetInput};

/// Why a model is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Promoted by eval (model-selected, or `current.json` at start-up).
    Promotion,
    /// Loaded from a model-training SUCCESS (the fast path), not yet promoted.
    Training,
}

impl ModelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSource::Promotion => "promotion",
            ModelSource::Training => "training",
        }
    }
}

/// What to load: one model of one dataset, from either event.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub identifier: String,
    pub model_type: ModelType,
    pub run_id: String,
    pub config_hash: String,
    /// The MLflow run's artifact root.
    pub artifact_uri: String,
    pub artifact: ModelArtifact,
    pub source: ModelSource,
    /// When eval promoted it (promotions only; shown, never compared).
    pub promotion_time: Option<DateTime<Utc>>,
    /// Eval's promotion number for the identifier (promotions only; 0 otherwise):
    /// what orders promotions.
    pub sequence: u64,
    /// SHA-256 of the model file recorded at training; the loaded file must match.
    pub model_sha256: Option<String>,
    /// When training finished (fast-path models only).
    pub trained_at: Option<DateTime<Utc>>,
    /// Test metrics the producer reported (scaled units).
    pub test_rmse: f64,
    pub test_mae: f64,
    pub test_mse: f64,
}

impl ModelSpec {
    /// The promoted model of a model-selected event (or `current.json`).
    pub fn from_selected(ev: &ModelSelected) -> Self {
        ModelSpec {
            identifier: ev.identifier.clone(),
            model_type: ev.model_type,
            run_id: ev.run_id.clone(),
            config_hash: ev.config_hash.clone(),
            artifact_uri: ev.artifact_uri.clone(),
            artifact: ev.model.clone(),
            source: ModelSource::Promotion,
            promotion_time: Some(ev.promotion_time),
            sequence: ev.sequence,
            model_sha256: ev.model_sha256.clone(),
            trained_at: None,
            test_rmse: ev.test_rmse,
            test_mae: ev.test_mae,
            test_mse: ev.test_mse,
        }
    }

    /// The fresh model of a SUCCESS event; `None` for RUNNING and FAILED.
    pub fn from_training(ev: &ModelTraining) -> Option<Self> {
        let TrainingStatus::Success(s) = &ev.status else { return None };
        Some(ModelSpec {
            identifier: ev.identifier.clone(),
            model_type: ev.model_type,
            run_id: ev.run_id.clone(),
            config_hash: ev.config_hash.clone(),
            artifact_uri: s.artifact_uri.clone(),
            artifact: s.model.clone(),
            source: ModelSource::Training,
            promotion_time: None,
            sequence: 0,
            model_sha256: s.model_sha256.clone(),
            trained_at: Some(s.train_end),
            test_rmse: s.test_rmse,
            test_mae: s.test_mae,
            test_mse: s.test_mse,
        })
    }

    /// `<MODEL_TYPE>/<run_id>`: what `/predict` answers as the model version.
    pub fn version(&self) -> String {
        format!("{}/{}", self.model_type, self.run_id)
    }
}

/// A served model as `/model` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub identifier: String,
    pub model_type: ModelType,
    pub run_id: String,
    pub config_hash: String,
    /// `<MODEL_TYPE>/<run_id>`.
    pub version: String,
    /// `runs:/<run_id>/<model path>`.
    pub model_uri: String,
    pub artifact_uri: String,
    pub format: ModelFormat,
    pub source: ModelSource,
    pub promotion_time: Option<DateTime<Utc>>,
    /// Eval's promotion number (0 for fast-path models).
    pub sequence: u64,
    /// SHA-256 of the served model file, verified at load.
    pub model_sha256: Option<String>,
    pub trained_at: Option<DateTime<Utc>>,
    pub loaded_at: DateTime<Utc>,
    pub input_len: u32,
    pub output_len: u32,
    pub features: Vec<String>,
    pub targets: Vec<String>,
    /// Test metrics reported at training (scaled units).
    pub test_rmse: f64,
    pub test_mae: f64,
    pub test_mse: f64,
}

impl ModelInfo {
    pub fn new(spec: &ModelSpec) -> Self {
        ModelInfo {
            identifier: spec.identifier.clone(),
            model_type: spec.model_type,
            run_id: spec.run_id.clone(),
            config_hash: spec.config_hash.clone(),
            version: spec.version(),
            model_uri: format!("runs:/{}/{}", spec.run_id, spec.artifact.path),
            artifact_uri: spec.artifact_uri.clone(),
            format: spec.artifact.format,
            source: spec.source,
            promotion_time: spec.promotion_time,
            sequence: spec.sequence,
            model_sha256: spec.model_sha256.clone(),
            trained_at: spec.trained_at,
            loaded_at: Utc::now(),
            input_len: spec.artifact.input_len,
            output_len: spec.artifact.output_len,
            features: spec.artifact.features.clone(),
            targets: spec.artifact.targets.clone(),
            test_rmse: spec.test_rmse,
            test_mae: spec.test_mae,
            test_mse: spec.test_mse,
        }
    }
}

/// The model and its scaler do not fit together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// A forecast request the model cannot serve, or a model failure.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The input is wrong (status 422); the message says where.
    #[error("{0}")]
    Input(String),
    /// The model failed (status 500).
    #[error(transparent)]
    Model(NetError),
}

/// Forecasts in original units.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// `[n][output_len][n_targets]`.
    pub values: Vec<f64>,
    /// The forecast times `[n][output_len]`, when the input had timestamps.
    pub timestamps: Option<Vec<i64>>,
}

/// A loaded model, immutable: swapping models swaps the whole `Arc<Model>`.
pub struct Model {
    pub info: ModelInfo,
    pub scaler: Scaler,
    /// (offset, scale) per feature, in model order.
    feature_scale: Vec<(f64, f64)>,
    /// (offset, scale) per target, in model order.
    target_scale: Vec<(f64, f64)>,
    net: Box<dyn Net>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).field("net", &self.net.kind()).finish()
    }
}

fn scale_of(scaler: &Scaler, name: &str, role: &str) -> Result<(f64, f64), ModelError> {
    scaler.columns.iter().find(|c| c.name == name).map(|c| (c.offset, c.scale)).ok_or_else(|| {
        ModelError(format!(
            "the scaler has no column for {role} `{name}` (it has {:?})",
            scaler.columns.iter().map(|c| &c.name).collect::<Vec<_>>()
        ))
    })
}

impl Model {
    /// Put a model together; the scaler must cover every feature and target.
    pub fn new(info: ModelInfo, scaler: Scaler, net: Box<dyn Net>) -> Result<Self, ModelError> {
        if info.features.is_empty() || info.targets.is_empty() || info.input_len == 0 || info.output_len == 0 {
            return Err(ModelError(format!(
                "model artifact must have features, targets, input_len and output_len (got {} features, {} targets, input_len {}, output_len {})",
                info.features.len(),
                info.targets.len(),
                info.input_len,
                info.output_len
            )));
        }
        let feature_scale =
            info.features.iter().map(|f| scale_of(&scaler, f, "feature")).collect::<Result<Vec<_>, _>>()?;
        let target_scale =
            info.targets.iter().map(|t| scale_of(&scaler, t, "target")).collect::<Result<Vec<_>, _>>()?;
        Ok(Model { info, scaler, feature_scale, target_scale, net })
    }

    pub fn input_len(&self) -> usize {
        self.info.input_len as usize
    }
    pub fn output_len(&self) -> usize {
        self.info.output_len as usize
    }
    pub fn n_features(&self) -> usize {
        self.info.features.len()
    }
    pub fn n_targets(&self) -> usize {
        self.info.targets.len()
    }
    /// Whether forecasts need the input rows' timestamps (Prophet).
    pub fn needs_timestamps(&self) -> bool {
        self.net.needs_timestamps()
    }
    /// The forward pass kind (`onnx`, `prophet`).
    pub fn net_kind(&self) -> &'static str {
        self.net.kind()
    }

    /// Scaled forward pass, timed under `path` (`http`, `batch`).
    pub fn forecast_scaled(
        &self,
        x: &[f32],
        n: usize,
        forecast_timestamps: Option<&[i64]>,
        path: &str,
    ) -> Result<Vec<f32>, NetError> {
        let started = Instant::now();
        let out = self.net.forecast(&NetInput { x, n, forecast_timestamps });
        metrics::MODEL_SECONDS.with_label_values(&[path]).observe(started.elapsed().as_secs_f64());
        let out = out?;
        let want = n * self.output_len() * self.n_targets();
        if out.len() != want {
            return Err(NetError::Invalid(format!("model returned {} values, expected {want}", out.len())));
        }
        metrics::WINDOWS.with_label_values(&[path]).inc_by(n as u64);
        Ok(out)
    }

    /// Forecast `n` windows of raw rows, `[n][input_len][n_features]` in
    /// original units and model feature order. `timestamps` (`[n][input_len]`,
    /// ms) are required by Prophet and otherwise only echoed as forecast times.
    pub fn predict_raw(&self, rows: &[f64], n: usize, timestamps: Option<&[i64]>) -> Result<Forecast, PredictError> {
        let (t_len, f) = (self.input_len(), self.n_features());
        if rows.len() != n * t_len * f {
            return Err(PredictError::Input(format!(
                "expected {n} windows x {t_len} rows x {f} features = {} values, got {}",
                n * t_len * f,
                rows.len()
            )));
        }
        let forecast_ts = match timestamps {
            Some(ts) => Some(self.forecast_times(ts, n)?),
            None if self.needs_timestamps() => {
                return Err(PredictError::Input(format!(
                    "a {} model forecasts by time: give `timestamps` for every input row",
                    self.info.model_type
                )));
            }
            None => None,
        };
        let x: Vec<f32> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| ((v - self.feature_scale[i % f].0) / self.feature_scale[i % f].1) as f32)
            .collect();
        let scaled = self.forecast_scaled(&x, n, forecast_ts.as_deref(), "http").map_err(PredictError::Model)?;
        let k = self.n_targets();
        let values = scaled
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (offset, scale) = self.target_scale[i % k];
                f64::from(*s) * scale + offset
            })
            .collect();
        Ok(Forecast { values, timestamps: forecast_ts })
    }

    /// Forecast times `[n][output_len]`: the last input time plus whole
    /// intervals, the interval being the gap between the last two input rows.
    fn forecast_times(&self, ts: &[i64], n: usize) -> Result<Vec<i64>, PredictError> {
        let (t_len, h) = (self.input_len(), self.output_len());
        if ts.len() != n * t_len {
            return Err(PredictError::Input(format!(
                "timestamps: expected {t_len} per window ({} in all), got {}",
                n * t_len,
                ts.len()
            )));
        }
        let mut out = Vec::with_capacity(n * h);
        for (w, win) in ts.chunks(t_len).enumerate() {
            if let Some(i) = win.windows(2).position(|p| p[1] <= p[0]) {
                return Err(PredictError::Input(format!(
                    "timestamps[{w}] must be strictly increasing (row {} is not after row {i})",
                    i + 1
                )));
            }
            let last = win[t_len - 1];
            let step = if t_len >= 2 { last - win[t_len - 2] } else { 0 };
            if step <= 0 {
                return Err(PredictError::Input(format!(
                    "timestamps[{w}]: at least two rows are needed to know the sampling interval"
                )));
            }
            out.extend((1..=h as i64).map(|k| last + k * step));
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use series::{ScalerColumn, ScalerKind};

    /// Forecasts the mean of the last row's features for every step and target.
    struct MeanNet {
        input_len: usize,
        n_features: usize,
        out: usize,
    }

    impl Net for MeanNet {
        fn kind(&self) -> &'static str {
            "mean"
        }
        fn forecast(&self, input: &NetInput<'_>) -> Result<Vec<f32>, NetError> {
            let w = self.input_len * self.n_features;
            Ok(input
                .x
                .chunks(w)
                .flat_map(|win| {
                    let last = &win[w - self.n_features..];
                    let mean = last.iter().sum::<f32>() / self.n_features as f32;
                    std::iter::repeat_n(mean, self.out)
                })
                .collect())
        }
    }

    pub(crate) fn spec(features: &[&str], targets: &[&str], input_len: u32, output_len: u32) -> ModelSpec {
        ModelSpec {
            identifier: "site".into(),
            model_type: ModelType::Gru,
            run_id: "run1".into(),
            config_hash: "hash".into(),
            artifact_uri: "mlflow-artifacts:/1/run1/artifacts".into(),
            artifact: ModelArtifact {
                format: ModelFormat::Onnx,
                path: "model/model.onnx".into(),
                scaler_path: "model/scaler.json".into(),
                input_len,
                output_len,
                features: features.iter().map(|s| s.to_string()).collect(),
                targets: targets.iter().map(|s| s.to_string()).collect(),
            },
            source: ModelSource::Promotion,
            promotion_time: Some(Utc::now()),
            sequence: 1,
            model_sha256: None,
            trained_at: None,
            test_rmse: 0.1,
            test_mae: 0.08,
            test_mse: 0.01,
        }
    }

    fn scaler() -> Scaler {
        Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![
                ScalerColumn { name: "a".into(), offset: 10.0, scale: 2.0 },
                ScalerColumn { name: "b".into(), offset: 0.0, scale: 4.0 },
            ],
        }
    }

    #[test]
    fn raw_rows_are_scaled_in_and_forecasts_scaled_out() {
        let s = spec(&["a", "b"], &["b"], 2, 2);
        let net = MeanNet { input_len: 2, n_features: 2, out: 2 };
        let m = Model::new(ModelInfo::new(&s), scaler(), Box::new(net)).unwrap();
        // last row a=14 -> 2.0, b=8 -> 2.0: mean 2.0 scaled; target b: 2*4+0 = 8.
        let f = m.predict_raw(&[0.0, 0.0, 14.0, 8.0], 1, None).unwrap();
        assert_eq!(f.values, vec![8.0, 8.0]);
        assert_eq!(f.timestamps, None);
        let f = m.predict_raw(&[0.0, 0.0, 14.0, 8.0], 1, Some(&[1_000, 3_000])).unwrap();
        assert_eq!(f.timestamps, Some(vec![5_000, 7_000]));
    }

    #[test]
    fn prophet_forecasts_by_time_in_original_units() {
        let json = crate::prophet::tests::hand_made().to_json();
        let mut s = spec(&["load"], &["load"], 2, 1);
        s.model_type = ModelType::Prophet;
        s.artifact.format = ModelFormat::ProphetJson;
        let scaler = Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![ScalerColumn { name: "load".into(), offset: 100.0, scale: 2.0 }],
        };
        let m = crate::loader::build(&s, json.as_bytes(), scaler).unwrap();
        assert!(m.needs_timestamps());
        let e = m.predict_raw(&[1.0, 2.0], 1, None).unwrap_err();
        assert_eq!(e.to_string(), "a PROPHET model forecasts by time: give `timestamps` for every input row");
        // Inputs at days 2 and 2.25 -> forecast at day 2.5: t = 0.25, yhat 7.5 scaled = 115 original.
        let day = 86_400_000;
        let f = m.predict_raw(&[1.0, 2.0], 1, Some(&[2 * day, 9 * day / 4])).unwrap();
        assert_eq!(f.timestamps, Some(vec![5 * day / 2]));
        assert!((f.values[0] - 115.0).abs() < 1e-4, "{:?}", f.values);
    }

    #[test]
    fn bad_timestamps_and_scalers_are_explained() {
        let s = spec(&["a", "b"], &["b"], 2, 1);
        let m = Model::new(ModelInfo::new(&s), scaler(), Box::new(MeanNet { input_len: 2, n_features: 2, out: 1 }))
            .unwrap();
        let e = m.predict_raw(&[0.0; 4], 1, Some(&[5, 5])).unwrap_err();
        assert_eq!(e.to_string(), "timestamps[0] must be strictly increasing (row 1 is not after row 0)");
        let e = m.predict_raw(&[0.0; 4], 1, Some(&[5])).unwrap_err();
        assert!(e.to_string().starts_with("timestamps: expected 2 per window"), "{e}");
        let s = spec(&["a", "c"], &["c"], 2, 1);
        let e = Model::new(ModelInfo::new(&s), scaler(), Box::new(MeanNet { input_len: 2, n_features: 2, out: 1 }))
            .unwrap_err();
        assert_eq!(e.to_string(), "the scaler has no column for feature `c` (it has [\"a\", \"b\"])");
    }
}
