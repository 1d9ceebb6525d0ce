//! Batch inference over a processed test set (an inference-data claim check).
//!
//! Every window of the model's input length is forecast (the contract's test
//! windows: the first predicted row is test row `input_len`), scored with
//! `series::evaluate` (scaled units overall, original units per target), and
//! written as JSONL, one line per window, to
//! `inference-logs/<identifier>/<YYYYMMDD>/<config_hash>-<run_id>.jsonl`, with a
//! forecast-versus-actual PNG beside it. The object names depend only on the
//! message and the model (the date is the message's `created_at`), so a
//! redelivered claim check overwrites its results instead of adding a copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use claim_check::{ClaimCheckStore, StoreError};
use contracts::error::{Classified, Code};
use contracts::{ClaimCheck, InferenceData, Metrics, PerformanceEval, V1};
use serde::{Deserialize, Serialize};
use series::{Evaluation, Frame, Roles, Scaler, WindowSpec, Windows, make_windows};
use tracing::{info, warn};

use crate::metrics;
use model_runtime::model::Model;

/// Batch inference settings (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Bucket for batch inference results (JSONL and plots).
    #[arg(long, env = "INFERENCE_LOGS_BUCKET", default_value = "inference-logs")]
    pub logs_bucket: String,
    /// Draw a forecast-versus-actual PNG next to each JSONL result.
    #[arg(long, env = "INFERENCE_PLOT", default_value_t = true, action = clap::ArgAction::Set)]
    pub plot: bool,
    /// Windows per forward pass in batch inference (bounds memory per call).
    #[arg(long, env = "BATCH_CHUNK_WINDOWS", default_value_t = 1024)]
    pub chunk_windows: usize,
}

impl Default for BatchArgs {
    fn default() -> Self {
        BatchArgs { logs_bucket: "inference-logs".into(), plot: true, chunk_windows: 1024 }
    }
}

/// Batch inference failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data cannot be forecast with this model (shape, columns, too short).
    #[error("{0}")]
    Data(String),
    /// The model failed.
    #[error("model failed: {0}")]
    Model(String),
}

impl Classified for BatchError {
    fn code(&self) -> Code {
        match self {
            BatchError::Store(e) => Classified::code(e),
            BatchError::Data(_) => Code::BadTestData,
            BatchError::Model(_) => Code::ModelFailed,
        }
    }
    fn is_retryable(&self) -> bool {
        matches!(self, BatchError::Store(e) if Classified::is_retryable(e))
    }
}

/// One forecast step of a JSONL line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based horizon step.
    pub step: usize,
    /// The forecast row's time, ms since the epoch.
    pub timestamp: i64,
    /// Per target, original units.
    pub forecast: BTreeMap<String, f64>,
    /// Per target, original units.
    pub actual: BTreeMap<String, f64>,
}

/// One JSONL line: one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// 0-based window index in the test set.
    pub window: usize,
    /// Time of the window's first and last input rows.
    pub input_start: i64,
    pub input_end: i64,
    pub model_version: String,
    pub steps: Vec<StepRecord>,
}

/// What a batch run computed before anything is written.
pub struct Computed {
    pub rows: usize,
    pub windows: usize,
    pub evaluation: Evaluation,
    pub jsonl: Vec<u8>,
    pub png: Option<Vec<u8>>,
}

/// `<identifier>/<YYYYMMDD>/<config_hash>-<run_id>` (add `.jsonl` or `.png`).
pub fn result_stem(data: &InferenceData, run_id: &str) -> String {
    format!("{}/{}/{}-{}", data.identifier, data.created_at.format("%Y%m%d"), data.config_hash, run_id)
}

/// Forecast, score and store one test set; returns the performance-eval summary.
pub async fn run(
    store: &ClaimCheckStore,
    args: &BatchArgs,
    data: &InferenceData,
    model: Arc<Model>,
) -> Result<PerformanceEval, BatchError> {
    let result = run_inner(store, args, data, model).await;
    metrics::BATCH_RUNS.with_label_values(&[if result.is_ok() { "ok" } else { "error" }]).inc();
    if result.is_err() {
        metrics::ERRORS.with_label_values(&["batch"]).inc();
    }
    result
}

async fn run_inner(
    store: &ClaimCheckStore,
    args: &BatchArgs,
    data: &InferenceData,
    model: Arc<Model>,
) -> Result<PerformanceEval, BatchError> {
    // A claim check may only name the dataset's own processed objects (issue 17, class 5).
    for claim in [&data.test, &data.scaler] {
        claim_check::check_dataset_claim(claim, contracts::topology::buckets::PROCESSED_DATA, &data.identifier)?;
    }
    let (test, scaler) = tokio::try_join!(store.get(&data.test), store.get(&data.scaler))?;
    let scaler_text = std::str::from_utf8(&scaler)
        .map_err(|e| BatchError::Data(format!("{} is not UTF-8: {e}", data.scaler.uri())))?;
    let data_scaler =
        Scaler::from_json(scaler_text).map_err(|e| BatchError::Data(format!("{}: {e}", data.scaler.uri())))?;
    let (m, d, chunk, plot) = (model.clone(), data.clone(), args.chunk_windows.max(1), args.plot);
    let computed = tokio::task::spawn_blocking(move || compute(&test, &data_scaler, &d, &m, chunk, plot))
        .await
        .map_err(|e| BatchError::Model(format!("batch task failed: {e}")))??;
    metrics::BATCH_ROWS.with_label_values(&[&data.identifier]).inc_by(computed.rows as u64);

    let stem = result_stem(data, &model.info.run_id);
    let results = store
        .put(&args.logs_bucket, &format!("{stem}.jsonl"), Bytes::from(computed.jsonl), "application/x-ndjson")
        .await?;
    let plot: Option<ClaimCheck> = match computed.png {
        Some(png) => Some(store.put(&args.logs_bucket, &format!("{stem}.png"), Bytes::from(png), "image/png").await?),
        None => None,
    };
    info!(identifier = %data.identifier, config_hash = %data.config_hash, version = %model.info.version,
        windows = computed.windows, rmse = computed.evaluation.scaled.rmse, results = %results.uri(), "batch inference done");
    Ok(PerformanceEval {
        v: V1,
        identifier: data.identifier.clone(),
        config_hash: data.config_hash.clone(),
        model_type: model.info.model_type,
        run_id: model.info.run_id.clone(),
        windows: computed.windows as u64,
        metrics: computed.evaluation.scaled,
        per_target: computed.evaluation.per_target,
        results,
        plot,
        source: data.test.clone(),
        created_at: Utc::now(),
    })
}

/// Read, window, forecast, score and render (blocking).
pub fn compute(
    parquet: &[u8],
    data_scaler: &Scaler,
    data: &InferenceData,
    model: &Model,
    chunk: usize,
    plot: bool,
) -> Result<Computed, BatchError> {
    let source = data.test.uri();
    let (frame, meta) = dataset::read_processed(parquet).map_err(|e| BatchError::Data(format!("{source}: {e}")))?;
    if meta.config_hash != data.config_hash {
        return Err(BatchError::Data(format!(
            "{source} has config hash {} but the message says {}",
            meta.config_hash, data.config_hash
        )));
    }
    let title = plot
        .then(|| format!("{}: {} {} forecast vs actual", data.identifier, model.info.model_type, model.info.run_id));
    compute_frame(&frame, data_scaler, &meta.roles, model, chunk, title.as_deref(), &source)
}

/// [`compute`] on a frame already read: `frame` is in `data_scaler`'s units
/// (its timestamp and sampling interval in `roles`); a plot is drawn when
/// `plot_title` is given. `source` names the data in errors.
pub fn compute_frame(
    frame: &Frame,
    data_scaler: &Scaler,
    roles: &Roles,
    model: &Model,
    chunk: usize,
    plot_title: Option<&str>,
    source: &str,
) -> Result<Computed, BatchError> {
    let info = &model.info;
    let columns: Vec<String> =
        info.features.iter().chain(info.targets.iter().filter(|t| !info.features.contains(t))).cloned().collect();
    let frame = to_model_units(frame, data_scaler, &model.scaler, &columns)?;
    let roles = Roles {
        timestamp: roles.timestamp.clone(),
        features: info.features.clone(),
        targets: info.targets.clone(),
        interval_ms: roles.interval_ms,
    };
    let spec = WindowSpec { input_len: model.input_len(), output_len: model.output_len() };
    let windows = make_windows(&frame, &roles, spec).map_err(|e| BatchError::Data(format!("{source}: {e}")))?;
    let pred = forecast_windows(model, &frame, &windows, chunk.max(1))?;
    let evaluation = series::evaluate(&pred, &windows, &roles, &model.scaler)
        .map_err(|e| BatchError::Model(format!("scoring: {e}")))?;
    let jsonl = jsonl(model, &frame, &windows, &pred)?;
    let png = plot_title.and_then(|title| match render(title, model, &frame, &windows, &pred) {
        Ok(png) => Some(png),
        Err(e) => {
            warn!(source, error = %e, "forecast plot not drawn");
            None
        }
    });
    Ok(Computed { rows: frame.len(), windows: windows.n, evaluation, jsonl, png })
}

/// The frame's feature and target columns re-expressed in the model scaler's
/// units when the test set was scaled differently (another preprocess
/// config). Nothing is clipped here: the model clips its own inputs
/// ([`Model::forecast_scaled`]), and actuals stay as they are.
fn to_model_units(frame: &Frame, data: &Scaler, model: &Scaler, columns: &[String]) -> Result<Frame, BatchError> {
    let mut out = frame.clone();
    for name in columns {
        let col = out.columns.iter_mut().find(|c| &c.name == name).ok_or_else(|| {
            BatchError::Data(format!(
                "the test set has no column `{name}` (columns: {:?})",
                frame.columns.iter().map(|c| &c.name).collect::<Vec<_>>()
            ))
        })?;
        let entry = |s: &Scaler| s.columns.iter().find(|c| &c.name == name).map(|c| (c.offset, c.scale));
        let (Some((d_off, d_scale)), Some((m_off, m_scale))) = (entry(data), entry(model)) else {
            return Err(BatchError::Data(format!("column `{name}` is missing from the data or the model scaler")));
        };
        if (d_off, d_scale) != (m_off, m_scale) {
            for v in &mut col.values {
                *v = (*v * d_scale + d_off - m_off) / m_scale;
            }
        }
    }
    Ok(out)
}

/// Scaled forecasts laid out like `windows.y`, in chunks of `chunk` windows.
fn forecast_windows(model: &Model, frame: &Frame, windows: &Windows, chunk: usize) -> Result<Vec<f32>, BatchError> {
    let (xs, h) = (windows.x_stride(), windows.output_len);
    let mut pred = Vec::with_capacity(windows.n * windows.y_stride());
    for start in (0..windows.n).step_by(chunk) {
        let end = (start + chunk).min(windows.n);
        let ts: Option<Vec<i64>> = model.needs_timestamps().then(|| {
            windows.first_target_row[start..end]
                .iter()
                .flat_map(|&r| (0..h).map(move |k| frame.timestamps[r + k]))
                .collect()
        });
        let out = model
            .forecast_scaled(&windows.x[start * xs..end * xs], end - start, ts.as_deref(), "batch")
            .map_err(|e| BatchError::Model(e.to_string()))?;
        pred.extend(out);
    }
    Ok(pred)
}

fn jsonl(model: &Model, frame: &Frame, windows: &Windows, pred: &[f32]) -> Result<Vec<u8>, BatchError> {
    let info = &model.info;
    let (h, k) = (windows.output_len, windows.n_targets);
    let targets: Vec<&[f64]> = info
        .targets
        .iter()
        .map(|t| frame.column(t).ok_or_else(|| BatchError::Data(format!("no target column `{t}`"))))
        .collect::<Result<_, _>>()?;
    // Actuals are only inverted (never clipped or floored); forecasts are floored.
    let inverse = |name: &str, v: f64| model.scaler.inverse_value(name, v).map_err(|e| BatchError::Data(e.to_string()));
    let mut out = Vec::with_capacity(windows.n * 160);
    for w in 0..windows.n {
        let first = windows.first_target_row[w];
        let mut steps = Vec::with_capacity(h);
        for s in 0..h {
            let row = first + s;
            let mut forecast = BTreeMap::new();
            let mut actual = BTreeMap::new();
            for (j, name) in info.targets.iter().enumerate() {
                forecast.insert(name.clone(), model.unscale_forecast(j, f64::from(pred[(w * h + s) * k + j])));
                actual.insert(name.clone(), inverse(name, targets[j][row])?);
            }
            steps.push(StepRecord { step: s + 1, timestamp: frame.timestamps[row], forecast, actual });
        }
        let rec = WindowRecord {
            window: w,
            input_start: frame.timestamps[first - windows.input_len],
            input_end: frame.timestamps[first - 1],
            model_version: info.version.clone(),
            steps,
        };
        serde_json::to_writer(&mut out, &rec).map_err(|e| BatchError::Data(format!("encode JSONL: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Step-1 forecasts against actuals, one panel per target, original units.
fn render(title: &str, model: &Model, frame: &Frame, windows: &Windows, pred: &[f32]) -> Result<Vec<u8>, String> {
    let info = &model.info;
    let (h, k) = (windows.output_len, windows.n_targets);
    let mut panels = Vec::new();
    for (j, name) in info.targets.iter().enumerate() {
        let col = frame.column(name).ok_or_else(|| format!("no column `{name}`"))?;
        let inv = |v: f64| model.scaler.inverse_value(name, v).unwrap_or(f64::NAN);
        let actual = windows.first_target_row.iter().map(|&r| (frame.timestamps[r] as f64, inv(col[r]))).collect();
        let forecast = (0..windows.n)
            .map(|w| {
                let forecast = model.unscale_forecast(j, f64::from(pred[w * h * k + j]));
                (frame.timestamps[windows.first_target_row[w]] as f64, forecast)
            })
            .collect();
        panels.push(plots::Panel {
            title: name.clone(),
            y_label: name.clone(),
            lines: vec![
                plots::Series { name: "actual".into(), points: actual },
                plots::Series { name: format!("{} forecast (step 1)", info.model_type), points: forecast },
            ],
            band: None,
        });
    }
    let fig = plots::Figure { title: title.to_string(), x_label: "time (UTC)".into(), time_axis: true, panels };
    plots::render_png(&fig).map_err(|e| e.to_string())
}

/// Metrics recomputed from JSONL lines (tests and people checking a result):
/// per target, original units.
pub fn per_target_from_jsonl(jsonl: &[u8]) -> Result<BTreeMap<String, Metrics>, serde_json::Error> {
    let mut acc: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for line in jsonl.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let rec: WindowRecord = serde_json::from_slice(line)?;
        for step in &rec.steps {
            for (name, f) in &step.forecast {
                let a = step.actual.get(name).copied().unwrap_or(f64::NAN);
                let e = acc.entry(name.clone()).or_default();
                e.0 += 1;
                e.1 += (f - a) * (f - a);
                e.2 += (f - a).abs();
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(|(k, (n, sq, abs))| {
            let mse = sq / n.max(1) as f64;
            (k, Metrics { mse, rmse: mse.sqrt(), mae: abs / n.max(1) as f64 })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::ModelType;
    use model_runtime::model::{ModelInfo, ModelSpec};
    use model_runtime::net::{Net, NetError, NetInput};

    /// Forecasts its last (one-feature, one-row) input.
    struct LastValue;

    impl Net for LastValue {
        fn kind(&self) -> &'static str {
            "last"
        }
        fn forecast(&self, input: &NetInput<'_>) -> Result<Vec<f32>, NetError> {
            Ok(input.x.to_vec())
        }
    }

    fn spec() -> ModelSpec {
        let names = vec![TARGET.to_string()];
        ModelSpec::promoted_onnx("site", ModelType::Baseline, "run1", (1, 1), names.clone(), names)
    }
    use contracts::V1;
    use series::{Column, ProcessedMeta, ScalerColumn, ScalerKind};

    const TARGET: &str = "up";

    /// A test part with a spike (90) and negative readings, scaled by the
    /// dataset's scaler (no clip, no floor), as preprocess writes it.
    fn processed() -> (Vec<u8>, Scaler, Vec<f64>) {
        let raw = vec![1.0, 2.0, 90.0, 3.0, -4.0, -6.0, 2.0, 5.0];
        let ts = (0..raw.len() as i64).map(|i| i * 60_000).collect();
        let frame = Frame::new(ts, vec![Column::new(TARGET, raw.clone())]).unwrap();
        let data_scaler =
            Scaler { kind: ScalerKind::MinMax, columns: vec![ScalerColumn::new(TARGET.into(), -6.0, 96.0)] };
        let roles = Roles {
            timestamp: "timestamp".into(),
            features: vec![TARGET.into()],
            targets: vec![TARGET.into()],
            interval_ms: 60_000,
        };
        let meta = ProcessedMeta {
            config_hash: "h".into(),
            config: serde_json::json!({}),
            scaler: data_scaler.clone(),
            roles,
            gaps: Vec::new(),
        };
        let parquet = dataset::write_processed(&data_scaler.transform(&frame).unwrap(), &meta).unwrap();
        (parquet, data_scaler, raw)
    }

    #[test]
    fn batch_clips_inputs_floors_forecasts_and_scores_against_raw_actuals() {
        let (parquet, data_scaler, raw) = processed();
        // The model repeats its last (clipped) input; its own scaler clips to
        // [0, 10] and floors at 0, unlike the dataset's.
        let model_scaler = Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![ScalerColumn {
                clip: Some([0.0, 10.0]),
                floor: Some(0.0),
                ..ScalerColumn::new(TARGET.into(), 0.0, 10.0)
            }],
        };
        let model = Model::new(ModelInfo::new(&spec()), model_scaler, Box::new(LastValue)).unwrap();
        let claim = |object: &str| contracts::ClaimCheck {
            bucket: "processed-data".into(),
            object: object.into(),
            size: 0,
            sha256: String::new(),
        };
        let data = InferenceData {
            v: V1,
            identifier: "site".into(),
            config_hash: "h".into(),
            test: claim("site/h/test.parquet"),
            scaler: claim("site/h/scaler.json"),
            created_at: Utc::now(),
        };
        let computed = compute(&parquet, &data_scaler, &data, &model, 3, false).unwrap();
        assert_eq!(computed.windows, raw.len() - 1);
        let lines: Vec<WindowRecord> = computed
            .jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        for (w, line) in lines.iter().enumerate() {
            let (forecast, actual) = (line.steps[0].forecast[TARGET], line.steps[0].actual[TARGET]);
            // Actuals are the raw values, spike and negatives included.
            assert!(close(actual, raw[w + 1]), "window {w}: actual {actual} vs raw {}", raw[w + 1]);
            // Forecasts: the previous value clipped to [0, 10] (so never below the floor).
            assert!(close(forecast, raw[w].clamp(0.0, 10.0)), "window {w}: forecast {forecast}");
        }
        // The reported score is against the raw actuals.
        let mse: f64 = (1..raw.len()).map(|r| (raw[r - 1].clamp(0.0, 10.0) - raw[r]).powi(2)).sum::<f64>()
            / (raw.len() - 1) as f64;
        let got = computed.evaluation.per_target[TARGET].rmse;
        assert!(close(got, mse.sqrt()), "rmse {got} vs {}", mse.sqrt());
    }
}
