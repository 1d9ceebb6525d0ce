//! A served model: what it is ([`ModelInfo`]), how it scales, and its
//! forward pass. Raw rows go in, forecasts in original units come out.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use contracts::{ModelArtifact, ModelFormat, ModelSelected, ModelTraining, ModelType, TrainingStatus};
use serde::{Deserialize, Serialize};
use series::{Scaler, ScalerColumn};

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

    /// A promoted ONNX model at `model/model.onnx` (scaler `model/scaler.json`)
    /// of run `run_id`: sequence 1, promoted now, no digest, no test metrics.
    /// What tests and benches build models from.
    pub fn promoted_onnx(
        identifier: &str,
        model_type: ModelType,
        run_id: &str,
        (input_len, output_len): (u32, u32),
        features: Vec<String>,
        targets: Vec<String>,
    ) -> Self {
        ModelSpec {
            identifier: identifier.into(),
            model_type,
            run_id: run_id.into(),
            config_hash: "cfg".into(),
            artifact_uri: format!("mlflow-artifacts:/0/{run_id}/artifacts"),
            artifact: ModelArtifact {
                format: ModelFormat::Onnx,
                path: "model/model.onnx".into(),
                scaler_path: "model/scaler.json".into(),
                input_len,
                output_len,
                features,
                targets,
            },
            source: ModelSource::Promotion,
            promotion_time: Some(Utc::now()),
            sequence: 1,
            model_sha256: None,
            trained_at: None,
            test_rmse: 0.0,
            test_mae: 0.0,
            test_mse: 0.0,
        }
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
    /// An ensemble's members, as its manifest lists them (empty for a single model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberInfo>,
}

/// One ensemble member as `/model` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub model_type: ModelType,
    pub run_id: String,
    pub weight: f64,
    /// SHA-256 of the member's model file, verified at load.
    pub model_sha256: Option<String>,
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
            members: Vec::new(),
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
///
/// Every forward pass goes through [`Model::forecast_scaled`], which applies
/// the scaler's input clip (`ScalerColumn::clip`, model inputs only) and the
/// forecast floor (`ScalerColumn::floor`, forecasts only): callers never see
/// an unclipped input reach the net nor a forecast below its floor. Actuals
/// are never touched.
pub struct Model {
    pub info: ModelInfo,
    pub scaler: Scaler,
    /// (offset, scale) per feature, in model order.
    feature_scale: Vec<(f64, f64)>,
    /// (offset, scale) per target, in model order.
    target_scale: Vec<(f64, f64)>,
    /// Raw-unit forecast floor per target, in model order.
    target_floor: Vec<Option<f64>>,
    /// Whether any feature has an input clip.
    clips_inputs: bool,
    engine: Engine,
}

/// What computes the scaled forecast.
enum Engine {
    Net(Box<dyn Net>),
    /// Weighted mean of member forecasts in original units ([`contracts::ensemble`]).
    Ensemble(Vec<Member>),
}

/// One member of an ensemble: its own model (own scaler, clip and floor).
#[derive(Debug)]
pub struct Member {
    pub weight: f64,
    pub model: Arc<Model>,
    /// For each member feature, its column in the ensemble's features.
    columns: Vec<usize>,
}

impl Member {
    /// A member of an ensemble whose inputs are `ensemble_features` x
    /// `ensemble_input_len` rows: the member must read a subset of those
    /// columns and at most that many rows (it reads the last ones).
    pub fn new(
        weight: f64,
        model: Arc<Model>,
        ensemble_features: &[String],
        ensemble_input_len: u32,
    ) -> Result<Self, ModelError> {
        if model.info.input_len > ensemble_input_len {
            return Err(ModelError(format!(
                "ensemble member {} reads {} rows but the ensemble gives {ensemble_input_len}",
                model.info.version, model.info.input_len
            )));
        }
        let columns = model
            .info
            .features
            .iter()
            .map(|f| {
                ensemble_features.iter().position(|e| e == f).ok_or_else(|| {
                    ModelError(format!(
                        "ensemble member {} reads feature `{f}`, which the ensemble does not list",
                        model.info.version
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Member { weight, model, columns })
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).field("net", &self.net_kind()).finish()
    }
}

fn column_of<'a>(scaler: &'a Scaler, name: &str, role: &str) -> Result<&'a ScalerColumn, ModelError> {
    scaler.columns.iter().find(|c| c.name == name).ok_or_else(|| {
        ModelError(format!(
            "the scaler has no column for {role} `{name}` (it has {:?})",
            scaler.columns.iter().map(|c| &c.name).collect::<Vec<_>>()
        ))
    })
}

impl Model {
    /// Put a model together; the scaler must cover every feature and target.
    pub fn new(info: ModelInfo, scaler: Scaler, net: Box<dyn Net>) -> Result<Self, ModelError> {
        Self::with_engine(info, scaler, Engine::Net(net))
    }

    /// An ensemble: the weighted mean of `members` in original units. The
    /// ensemble's `scaler` (the dataset's) defines its scaled units; weights
    /// must be positive and sum to 1, and every member must forecast the
    /// ensemble's targets and output length.
    pub fn ensemble(info: ModelInfo, scaler: Scaler, members: Vec<Member>) -> Result<Self, ModelError> {
        let sum: f64 = members.iter().map(|m| m.weight).sum();
        if members.is_empty()
            || members.iter().any(|m| !(m.weight.is_finite() && m.weight > 0.0))
            || (sum - 1.0).abs() > 1e-6
        {
            return Err(ModelError(format!(
                "an ensemble needs members with positive weights summing to 1 (got {} members, sum {sum})",
                members.len()
            )));
        }
        if let Some(m) =
            members.iter().find(|m| m.model.info.targets != info.targets || m.model.info.output_len != info.output_len)
        {
            return Err(ModelError(format!(
                "ensemble member {} forecasts {:?} x {} but the ensemble {:?} x {}",
                m.model.info.version, m.model.info.targets, m.model.info.output_len, info.targets, info.output_len
            )));
        }
        Self::with_engine(info, scaler, Engine::Ensemble(members))
    }

    fn with_engine(info: ModelInfo, scaler: Scaler, engine: Engine) -> Result<Self, ModelError> {
        if info.features.is_empty() || info.targets.is_empty() || info.input_len == 0 || info.output_len == 0 {
            return Err(ModelError(format!(
                "model artifact must have features, targets, input_len and output_len (got {} features, {} targets, input_len {}, output_len {})",
                info.features.len(),
                info.targets.len(),
                info.input_len,
                info.output_len
            )));
        }
        let features = info.features.iter().map(|f| column_of(&scaler, f, "feature")).collect::<Result<Vec<_>, _>>()?;
        let targets = info.targets.iter().map(|t| column_of(&scaler, t, "target")).collect::<Result<Vec<_>, _>>()?;
        let feature_scale = features.iter().map(|c| (c.offset, c.scale)).collect();
        let clips_inputs = features.iter().any(|c| c.clip.is_some());
        let target_scale = targets.iter().map(|c| (c.offset, c.scale)).collect();
        let target_floor = targets.iter().map(|c| c.floor).collect();
        Ok(Model { info, scaler, feature_scale, target_scale, target_floor, clips_inputs, engine })
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
    /// Whether forecasts need the input rows' timestamps (Prophet, or an ensemble with a Prophet member).
    pub fn needs_timestamps(&self) -> bool {
        match &self.engine {
            Engine::Net(net) => net.needs_timestamps(),
            Engine::Ensemble(members) => members.iter().any(|m| m.model.needs_timestamps()),
        }
    }
    /// The forward pass kind (`onnx`, `prophet`, `ensemble`).
    pub fn net_kind(&self) -> &'static str {
        match &self.engine {
            Engine::Net(net) => net.kind(),
            Engine::Ensemble(_) => "ensemble",
        }
    }
    /// The members of an ensemble (empty for a single model).
    pub fn members(&self) -> &[Member] {
        match &self.engine {
            Engine::Net(_) => &[],
            Engine::Ensemble(members) => members,
        }
    }

    /// Target `j`'s scaled forecast in original units, floored: what every
    /// forecast shown, stored or scored in original units goes through.
    pub fn unscale_forecast(&self, j: usize, scaled: f64) -> f64 {
        let (offset, scale) = self.target_scale[j];
        let raw = scaled * scale + offset;
        match self.target_floor[j] {
            Some(floor) => raw.max(floor),
            None => raw,
        }
    }

    /// Scaled forward pass, timed under `path` (`http`, `batch`). `x` is in
    /// this model's scaled units, unclipped; forecasts come out floored.
    pub fn forecast_scaled(
        &self,
        x: &[f32],
        n: usize,
        forecast_timestamps: Option<&[i64]>,
        path: &str,
    ) -> Result<Vec<f32>, NetError> {
        let started = Instant::now();
        let out = self.forward(x, n, forecast_timestamps);
        metrics::MODEL_SECONDS.with_label_values(&[path]).observe(started.elapsed().as_secs_f64());
        let out = out?;
        metrics::WINDOWS.with_label_values(&[path]).inc_by(n as u64);
        Ok(out)
    }

    /// Clip the inputs, run the engine, check the shape, floor the forecasts.
    fn forward(&self, x: &[f32], n: usize, forecast_timestamps: Option<&[i64]>) -> Result<Vec<f32>, NetError> {
        let want_in = n * self.input_len() * self.n_features();
        if x.len() != want_in {
            return Err(NetError::Input(format!("expected {want_in} input values, got {}", x.len())));
        }
        let clipped;
        let x = if self.clips_inputs {
            let mut copy = x.to_vec();
            self.scaler
                .clip_scaled_inputs(&mut copy, &self.info.features)
                .map_err(|e| NetError::Invalid(format!("input clip: {e}")))?;
            clipped = copy;
            &clipped[..]
        } else {
            x
        };
        let mut out = match &self.engine {
            Engine::Net(net) => net.forecast(&NetInput { x, n, forecast_timestamps })?,
            Engine::Ensemble(members) => self.ensemble_forward(members, x, n, forecast_timestamps)?,
        };
        let want = n * self.output_len() * self.n_targets();
        if out.len() != want {
            return Err(NetError::Invalid(format!("model returned {} values, expected {want}", out.len())));
        }
        let k = self.n_targets();
        for (i, v) in out.iter_mut().enumerate() {
            let j = i % k;
            if let Some(floor) = self.target_floor[j] {
                let (offset, scale) = self.target_scale[j];
                if f64::from(*v) * scale + offset < floor {
                    *v = ((floor - offset) / scale) as f32;
                }
            }
        }
        Ok(out)
    }

    /// Each member reads its own columns and rows of `x` (re-expressed from
    /// this model's scaled units into its own), forecasts, inverts and floors
    /// its forecast; the weighted mean is scaled back into this model's units.
    fn ensemble_forward(
        &self,
        members: &[Member],
        x: &[f32],
        n: usize,
        forecast_timestamps: Option<&[i64]>,
    ) -> Result<Vec<f32>, NetError> {
        let (t_len, f, k) = (self.input_len(), self.n_features(), self.n_targets());
        let per_window = self.output_len() * k;
        let mut mean = vec![0.0f64; n * per_window];
        for m in members {
            let model = &m.model;
            let (mt, mf) = (model.input_len(), model.n_features());
            let mut mx = Vec::with_capacity(n * mt * mf);
            for w in 0..n {
                for t in t_len - mt..t_len {
                    let row = &x[(w * t_len + t) * f..(w * t_len + t + 1) * f];
                    for (jm, &je) in m.columns.iter().enumerate() {
                        let (e_off, e_scale) = self.feature_scale[je];
                        let (m_off, m_scale) = model.feature_scale[jm];
                        let raw = f64::from(row[je]) * e_scale + e_off;
                        mx.push(((raw - m_off) / m_scale) as f32);
                    }
                }
            }
            let out = model.forward(&mx, n, forecast_timestamps)?;
            for (i, v) in out.iter().enumerate() {
                mean[i] += m.weight * model.unscale_forecast(i % k, f64::from(*v));
            }
        }
        Ok(mean
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let (offset, scale) = self.target_scale[i % k];
                ((raw - offset) / scale) as f32
            })
            .collect())
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
        // Scaled here, clipped in `forward`: the same as `Scaler::scale_input`.
        let x: Vec<f32> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| ((v - self.feature_scale[i % f].0) / self.feature_scale[i % f].1) as f32)
            .collect();
        let scaled = self.forecast_scaled(&x, n, forecast_ts.as_deref(), "http").map_err(PredictError::Model)?;
        let k = self.n_targets();
        let values = scaled.iter().enumerate().map(|(i, s)| self.unscale_forecast(i % k, f64::from(*s))).collect();
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
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect();
        ModelSpec::promoted_onnx(
            "site",
            ModelType::Gru,
            "run1",
            (input_len, output_len),
            names(features),
            names(targets),
        )
    }

    fn scaler() -> Scaler {
        Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![ScalerColumn::new("a".into(), 10.0, 2.0), ScalerColumn::new("b".into(), 0.0, 4.0)],
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
        let scaler = Scaler { kind: ScalerKind::MinMax, columns: vec![ScalerColumn::new("load".into(), 100.0, 2.0)] };
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

    fn column(name: &str, offset: f64, scale: f64, clip: Option<[f64; 2]>, floor: Option<f64>) -> ScalerColumn {
        ScalerColumn { clip, floor, ..ScalerColumn::new(name.into(), offset, scale) }
    }

    fn mean_model(features: &[&str], target: &str, input_len: u32, columns: Vec<ScalerColumn>) -> Model {
        let s = spec(features, &[target], input_len, 1);
        let net = MeanNet { input_len: input_len as usize, n_features: features.len(), out: 1 };
        Model::new(ModelInfo::new(&s), Scaler { kind: ScalerKind::MinMax, columns }, Box::new(net)).unwrap()
    }

    #[test]
    fn inputs_are_clipped_and_forecasts_floored() {
        // a clipped to [10, 12]: the last row's a=14 reaches the net as 12 -> 1.0,
        // b=8 -> 2.0; mean 1.5 scaled, b = 1.5 * 4 = 6 (8 without the clip).
        let with_floor = |floor| {
            mean_model(
                &["a", "b"],
                "b",
                2,
                vec![column("a", 10.0, 2.0, Some([10.0, 12.0]), None), column("b", 0.0, 4.0, None, floor)],
            )
        };
        assert_eq!(with_floor(None).predict_raw(&[0.0, 0.0, 14.0, 8.0], 1, None).unwrap().values, vec![6.0]);
        assert_eq!(with_floor(Some(5.0)).predict_raw(&[0.0, 0.0, 14.0, 8.0], 1, None).unwrap().values, vec![6.0]);
        let m = with_floor(Some(7.0));
        assert_eq!(m.predict_raw(&[0.0, 0.0, 14.0, 8.0], 1, None).unwrap().values, vec![7.0]);
        // The scaled forward pass (batch) is floored too, and the caller's inputs are left as they were.
        let x = [0.0f32, 0.0, 2.0, 2.0];
        assert_eq!(m.forecast_scaled(&x, 1, None, "batch").unwrap(), vec![1.75]);
        assert_eq!(x, [0.0, 0.0, 2.0, 2.0]);
        // Inside the clip nothing changes: a=11 -> 0.5, b=8 -> 2.0, mean 1.25 -> b = 5.
        let free = with_floor(None);
        assert_eq!(free.predict_raw(&[0.0, 0.0, 11.0, 8.0], 1, None).unwrap().values, vec![5.0]);
    }

    #[test]
    fn an_ensemble_is_the_weighted_mean_of_its_members_in_original_units() {
        // Member 1 reads a and b (2 rows): last a=14 -> 2, b=8 -> 2: b = 2 * 4 = 8.
        let m1 = mean_model(
            &["a", "b"],
            "b",
            2,
            vec![column("a", 10.0, 2.0, None, None), column("b", 0.0, 4.0, None, None)],
        );
        // Member 2 reads only a, 1 row: a=14 -> 2, b = 2 * 3 + 1 = 7, floored to 7.5.
        let m2 = mean_model(
            &["a"],
            "b",
            1,
            vec![column("a", 10.0, 2.0, None, None), column("b", 1.0, 3.0, None, Some(7.5))],
        );
        let mut s = spec(&["a", "b"], &["b"], 2, 1);
        s.model_type = ModelType::Ensemble;
        s.artifact.format = ModelFormat::Ensemble;
        let features = s.artifact.features.clone();
        let members = vec![
            Member::new(0.25, Arc::new(m1), &features, 2).unwrap(),
            Member::new(0.75, Arc::new(m2), &features, 2).unwrap(),
        ];
        // The ensemble's own (dataset) scaler differs from both members'.
        let dataset = Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![column("a", 0.0, 1.0, None, None), column("b", 5.0, 10.0, None, None)],
        };
        let e = Model::ensemble(ModelInfo::new(&s), dataset, members).unwrap();
        assert_eq!(e.net_kind(), "ensemble");
        assert_eq!(e.members().len(), 2);
        let f = e.predict_raw(&[0.0, 0.0, 14.0, 8.0], 1, None).unwrap();
        assert!((f.values[0] - (0.25 * 8.0 + 0.75 * 7.5)).abs() < 1e-5, "{:?}", f.values);

        // A member must read the ensemble's columns and at most its rows; weights must sum to 1.
        let wide = mean_model(
            &["a", "c"],
            "b",
            2,
            vec![
                column("a", 0.0, 1.0, None, None),
                column("c", 0.0, 1.0, None, None),
                column("b", 0.0, 1.0, None, None),
            ],
        );
        let e = Member::new(1.0, Arc::new(wide), &features, 2).unwrap_err();
        assert!(e.to_string().contains("reads feature `c`"), "{e}");
        let long =
            mean_model(&["a"], "b", 3, vec![column("a", 0.0, 1.0, None, None), column("b", 0.0, 1.0, None, None)]);
        assert!(Member::new(1.0, Arc::new(long), &features, 2).unwrap_err().to_string().contains("reads 3 rows"));
        let one =
            mean_model(&["a"], "b", 1, vec![column("a", 0.0, 1.0, None, None), column("b", 0.0, 1.0, None, None)]);
        let half = vec![Member::new(0.5, Arc::new(one), &features, 2).unwrap()];
        let dataset = Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![column("a", 0.0, 1.0, None, None), column("b", 0.0, 1.0, None, None)],
        };
        assert!(Model::ensemble(ModelInfo::new(&s), dataset, half).unwrap_err().to_string().contains("sum"));
    }
}
