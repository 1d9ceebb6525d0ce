//! What a finished fit leaves behind: scored metrics, the model card, the
//! test-part predictions in original units, and two plots.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use contracts::{Baselines, Metrics, ModelType};
use plots::{Figure, Panel, Series};
use series::{Column, Evaluation, Frame};

use crate::{Prepared, Trained};

/// Score `trained` on the test windows.
pub fn evaluate(data: &Prepared, trained: &Trained) -> Result<Evaluation, String> {
    let expected = data.test_windows.y.len();
    if trained.test_predictions.len() != expected {
        return Err(format!(
            "the model returned {} test predictions, the test windows need {expected}",
            trained.test_predictions.len()
        ));
    }
    if let Some(i) = trained.test_predictions.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "the model predicted a non-finite value for test window {}",
            i / data.test_windows.y_stride().max(1)
        ));
    }
    series::evaluate(&trained.test_predictions, &data.test_windows, &data.meta.roles, &data.meta.scaler)
        .map_err(|e| e.to_string())
}

/// Every metric a run logs: scaled test metrics (what eval scores), per-target
/// metrics in original units, the baselines, and the trainer's extras.
pub fn metric_list(eval: &Evaluation, baselines: &Baselines, trained: &Trained) -> Vec<(String, f64)> {
    let mut out = vec![
        ("test_mse".to_string(), eval.scaled.mse),
        ("test_rmse".to_string(), eval.scaled.rmse),
        ("test_mae".to_string(), eval.scaled.mae),
    ];
    for (target, m) in &eval.per_target {
        out.push((format!("test_rmse_{target}"), m.rmse));
        out.push((format!("test_mae_{target}"), m.mae));
    }
    push_metrics(&mut out, "baseline_last_value", &baselines.last_value);
    if let Some(s) = &baselines.seasonal_naive {
        push_metrics(&mut out, "baseline_seasonal_naive", s);
    }
    out.extend(trained.extra_metrics.iter().cloned());
    out
}

fn push_metrics(out: &mut Vec<(String, f64)>, prefix: &str, m: &Metrics) {
    out.push((format!("{prefix}_mse"), m.mse));
    out.push((format!("{prefix}_rmse"), m.rmse));
    out.push((format!("{prefix}_mae"), m.mae));
}

/// The model card: what the model is, what it was trained on, how it scored.
pub struct CardInput<'a> {
    pub model_type: ModelType,
    pub identifier: &'a str,
    pub run_id: &'a str,
    pub params: &'a [(String, String)],
    pub train_start: DateTime<Utc>,
    pub train_end: DateTime<Utc>,
}

pub fn model_card(card: &CardInput<'_>, data: &Prepared, trained: &Trained, eval: &Evaluation) -> String {
    let roles = &data.meta.roles;
    let mut s = String::new();
    let _ = writeln!(s, "# {} model for `{}`\n", card.model_type, card.identifier);
    let _ = writeln!(s, "- MLflow run: `{}`", card.run_id);
    let _ = writeln!(s, "- config_hash: `{}`", data.meta.config_hash);
    let _ = writeln!(s, "- trained: {} to {}", card.train_start.to_rfc3339(), card.train_end.to_rfc3339());
    let _ = writeln!(s, "- inputs ({}): {}", roles.features.len(), roles.features.join(", "));
    let _ = writeln!(s, "- targets ({}): {}", roles.targets.len(), roles.targets.join(", "));
    let _ = writeln!(
        s,
        "- window: {} input rows -> {} predicted rows, sampling interval {} s",
        data.spec.input_len,
        data.spec.output_len,
        roles.interval_ms / 1000
    );
    let _ = writeln!(
        s,
        "- windows: {} train, {} validation, {} test",
        data.train_windows.n, data.val_windows.n, data.test_windows.n
    );
    let _ = writeln!(s, "- evaluation protocol: `{:?}`\n", trained.protocol);
    let _ = writeln!(s, "## Parameters\n");
    for (k, v) in card.params {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(s, "\n## Test metrics\n");
    let _ = writeln!(s, "Scaled units, averaged over targets (what eval scores):\n");
    let _ = writeln!(s, "| model | RMSE | MAE | MSE |\n|---|---|---|---|");
    let row = |s: &mut String, name: &str, m: &Metrics| {
        let _ = writeln!(s, "| {name} | {:.6} | {:.6} | {:.6} |", m.rmse, m.mae, m.mse);
    };
    row(&mut s, &card.model_type.to_string(), &eval.scaled);
    row(&mut s, "last value", &data.baselines.last_value);
    if let Some(m) = &data.baselines.seasonal_naive {
        row(&mut s, "seasonal naive", m);
    }
    let _ = writeln!(s, "\nPer target, original units:\n");
    let _ = writeln!(s, "| target | RMSE | MAE |\n|---|---|---|");
    for (t, m) in &eval.per_target {
        let _ = writeln!(s, "| {t} | {:.6} | {:.6} |", m.rmse, m.mae);
    }
    if !trained.card_notes.is_empty() {
        let _ = writeln!(s, "\n{}", trained.card_notes.trim_end());
    }
    s
}

/// Test-part predictions in original units: one row per test window, at the
/// timestamp of its first predicted row, with per target and horizon step the
/// prediction and the actual value (`{target}_predicted`, `{target}_actual`,
/// suffixed `_t{step}` when more than one step is predicted).
pub fn predictions_frame(data: &Prepared, trained: &Trained) -> Result<Frame, String> {
    windows_frame(data, &data.test_windows, &data.test, &trained.test_predictions)
}

/// The same for the validation windows (cut from the train part): what the
/// candidates, model types and ensemble weights are chosen on.
pub fn validation_frame(data: &Prepared, trained: &Trained) -> Result<Frame, String> {
    windows_frame(data, &data.val_windows, &data.train, &trained.val_predictions)
}

/// [`validation_frame`] as Parquet.
pub fn validation_parquet(data: &Prepared, trained: &Trained) -> Result<Vec<u8>, String> {
    dataset::write_raw_parquet(&validation_frame(data, trained)?, "timestamp").map_err(|e| e.to_string())
}

fn windows_frame(data: &Prepared, w: &series::Windows, frame: &Frame, pred: &[f32]) -> Result<Frame, String> {
    let roles = &data.meta.roles;
    let scaler = &data.meta.scaler;
    let per_window = w.output_len * w.n_targets;
    if pred.len() != w.y.len() {
        return Err(format!("{} predictions for {} window values", pred.len(), w.y.len()));
    }
    let mut columns = Vec::with_capacity(2 * per_window);
    for step in 0..w.output_len {
        let suffix = if w.output_len > 1 { format!("_t{}", step + 1) } else { String::new() };
        for (j, t) in roles.targets.iter().enumerate() {
            let at = |i: usize| i * per_window + step * w.n_targets + j;
            let invert = |values: &[f32]| -> Result<Vec<f64>, String> {
                (0..w.n).map(|i| scaler.inverse_value(t, values[at(i)] as f64).map_err(|e| e.to_string())).collect()
            };
            columns.push(Column::new(format!("{t}_predicted{suffix}"), invert(pred)?));
            columns.push(Column::new(format!("{t}_actual{suffix}"), invert(&w.y)?));
        }
    }
    let timestamps = w.first_target_row.iter().map(|&row| frame.timestamps[row]).collect();
    Frame::new(timestamps, columns).map_err(|e| e.to_string())
}

/// NRMSE per target as the study defines it: RMSE divided by the mean of the
/// actuals, original units, on the test windows; for the model (`pred`, the
/// dataset's scaled units) and the two naive baselines.
pub fn nrmse(data: &Prepared, pred: &[f32]) -> Result<Vec<NrmseRow>, String> {
    let w = &data.test_windows;
    let roles = &data.meta.roles;
    let per_target = |p: &[f32]| -> Result<std::collections::BTreeMap<String, Metrics>, String> {
        Ok(series::evaluate(p, w, roles, &data.meta.scaler).map_err(|e| e.to_string())?.per_target)
    };
    let model = per_target(pred)?;
    let last = per_target(&series::last_value_predictions(w, roles).map_err(|e| e.to_string())?)?;
    let seasonal =
        match series::seasonal_naive_predictions(&data.train, &data.test, w, roles).map_err(|e| e.to_string())? {
            Some(p) => Some(per_target(&p)?),
            None => None,
        };
    let mut rows = Vec::new();
    for (j, t) in roles.targets.iter().enumerate() {
        let actual: Vec<f64> =
            w.y.iter()
                .skip(j)
                .step_by(w.n_targets)
                .map(|a| data.meta.scaler.inverse_value(t, f64::from(*a)).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
        let mean = actual.iter().sum::<f64>() / actual.len().max(1) as f64;
        let norm = |m: Option<&Metrics>| m.map(|m| m.rmse / mean).filter(|v| v.is_finite());
        rows.push(NrmseRow {
            target: t.clone(),
            mean_actual: mean,
            model: norm(model.get(t)),
            last_value: norm(last.get(t)),
            seasonal_naive: seasonal.as_ref().and_then(|s| norm(s.get(t))),
        });
    }
    Ok(rows)
}

/// One target's NRMSE on test (absent when the mean of the actuals is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct NrmseRow {
    pub target: String,
    pub mean_actual: f64,
    pub model: Option<f64>,
    pub last_value: Option<f64>,
    pub seasonal_naive: Option<f64>,
}

/// [`predictions_frame`] as CSV, timestamps in RFC 3339.
pub fn predictions_csv(data: &Prepared, trained: &Trained) -> Result<String, String> {
    let frame = predictions_frame(data, trained)?;
    let mut out = String::from("timestamp");
    for c in &frame.columns {
        let _ = write!(out, ",{}", c.name);
    }
    out.push('\n');
    for (i, &ms) in frame.timestamps.iter().enumerate() {
        let _ = write!(out, "{}", DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339());
        for c in &frame.columns {
            let _ = write!(out, ",{}", c.values[i]);
        }
        out.push('\n');
    }
    Ok(out)
}

/// [`predictions_frame`] as Parquet (`timestamp` a millisecond datetime).
pub fn predictions_parquet(data: &Prepared, trained: &Trained) -> Result<Vec<u8>, String> {
    dataset::write_raw_parquet(&predictions_frame(data, trained)?, "timestamp").map_err(|e| e.to_string())
}

/// Train and validation loss per epoch; `None` for models without epochs.
pub fn loss_curve_png(model_type: ModelType, trained: &Trained) -> Option<Result<Vec<u8>, String>> {
    if trained.history.is_empty() {
        return None;
    }
    let line = |name: &str, f: fn(&crate::Progress) -> f64| Series {
        name: name.into(),
        points: trained.history.iter().map(|p| (p.step as f64, f(p))).collect(),
    };
    let fig = Figure {
        title: format!("{model_type} training loss (MSE, scaled)"),
        x_label: "epoch".into(),
        time_axis: false,
        panels: vec![Panel {
            title: String::new(),
            y_label: "loss".into(),
            lines: vec![line("train", |p| p.train_loss), line("validation", |p| p.val_loss)],
            band: None,
        }],
    };
    Some(plots::render_png(&fig).map_err(|e| e.to_string()))
}

/// Forecast versus actual on the test part, one panel per target, original
/// units, first horizon step.
pub fn forecast_png(model_type: ModelType, data: &Prepared, trained: &Trained) -> Result<Vec<u8>, String> {
    let w = &data.test_windows;
    let roles = &data.meta.roles;
    let per_window = w.output_len * w.n_targets;
    let mut panels = Vec::new();
    for (j, t) in roles.targets.iter().enumerate() {
        let mut actual = Vec::with_capacity(w.n);
        let mut predicted = Vec::with_capacity(w.n);
        for i in 0..w.n {
            let x = data.test.timestamps[w.first_target_row[i]] as f64;
            let k = i * per_window + j;
            let inv = |v: f32| data.meta.scaler.inverse_value(t, v as f64).map_err(|e| e.to_string());
            actual.push((x, inv(w.y[k])?));
            predicted.push((x, inv(trained.test_predictions[k])?));
        }
        panels.push(Panel {
            title: t.clone(),
            y_label: t.clone(),
            lines: vec![
                Series { name: "actual".into(), points: actual },
                Series { name: model_type.to_string(), points: predicted },
            ],
            band: None,
        });
    }
    let fig = Figure {
        title: format!("{model_type}: forecast vs actual on the test part ({:?})", trained.protocol),
        x_label: "time (UTC)".into(),
        time_axis: true,
        panels,
    };
    plots::render_png(&fig).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Progress, WindowArgs};
    use contracts::{EvalProtocol, ModelFormat};
    use series::{ProcessedMeta, Roles, Scaler, ScalerKind};

    /// Hourly rows: `a = i`, `b = 100 + i`; scaled with min-max on rows 0..100
    /// (both columns get scale 99), so scaled `b = i / 99`.
    fn prepared() -> Prepared {
        let frame = |start: usize, rows: usize| {
            let idx: Vec<usize> = (start..start + rows).collect();
            Frame::new(
                idx.iter().map(|&i| i as i64 * 3_600_000).collect(),
                vec![
                    Column::new("a", idx.iter().map(|&i| i as f64).collect()),
                    Column::new("b", idx.iter().map(|&i| 100.0 + i as f64).collect()),
                ],
            )
            .unwrap()
        };
        let names = vec!["a".to_string(), "b".to_string()];
        let scaler = Scaler::fit(ScalerKind::MinMax, &frame(0, 100), &names, &[]).unwrap();
        let roles =
            Roles { timestamp: "timestamp".into(), features: names, targets: vec!["b".into()], interval_ms: 3_600_000 };
        let meta = ProcessedMeta {
            config_hash: "h".into(),
            config: serde_json::json!({}),
            scaler: scaler.clone(),
            roles,
            gaps: Vec::new(),
        };
        let (train, test) = (scaler.transform(&frame(0, 60)).unwrap(), scaler.transform(&frame(60, 14)).unwrap());
        let args = WindowArgs { input_seq_len: 10, output_seq_len: 2, validation_fraction: 0.2, validation_blocks: 1 };
        Prepared::new(train, test, meta, &args).unwrap()
    }

    fn trained(test_predictions: Vec<f32>) -> Trained {
        Trained {
            format: ModelFormat::Onnx,
            model_file: ("model.onnx".into(), vec![]),
            val_predictions: vec![],
            test_predictions,
            protocol: EvalProtocol::OneStepAhead,
            history: vec![],
            extra_metrics: vec![],
            card_notes: String::new(),
            extra_files: vec![],
        }
    }

    #[test]
    fn predictions_are_in_original_units_per_step() {
        let data = prepared();
        // 14 test rows, 10 in + 2 out: 3 windows; predict every value 1/99 too high (one unit of b).
        let pred: Vec<f32> = data.test_windows.y.iter().map(|y| y + 1.0 / 99.0).collect();
        let frame = predictions_frame(&data, &trained(pred.clone())).unwrap();
        let names: Vec<&str> = frame.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b_predicted_t1", "b_actual_t1", "b_predicted_t2", "b_actual_t2"]);
        // Window 0 predicts test rows 10 and 11 = global rows 70 and 71.
        assert_eq!(frame.timestamps, vec![70 * 3_600_000, 71 * 3_600_000, 72 * 3_600_000]);
        let close = |got: &[f64], want: &[f64]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-3);
        assert!(close(&frame.columns[1].values, &[170.0, 171.0, 172.0]), "{:?}", frame.columns[1]);
        assert!(close(&frame.columns[0].values, &[171.0, 172.0, 173.0]), "{:?}", frame.columns[0]);
        assert!(close(&frame.columns[3].values, &[171.0, 172.0, 173.0]), "{:?}", frame.columns[3]);
        let csv = predictions_csv(&data, &trained(pred.clone())).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("timestamp,b_predicted_t1,b_actual_t1,b_predicted_t2,b_actual_t2"));
        assert!(lines.next().is_some_and(|l| l.starts_with("1970-01-03T22:00:00+00:00,171")), "{csv}");
        assert_eq!(csv.lines().count(), 4);
        // The per-target metrics are in the same original units: every error is 1.
        let eval = evaluate(&data, &trained(pred)).unwrap();
        assert!((eval.per_target["b"].mae - 1.0).abs() < 1e-3, "{:?}", eval.per_target);
        assert!((eval.scaled.mae - 1.0 / 99.0).abs() < 1e-6, "{:?}", eval.scaled);
    }

    #[test]
    fn a_wrong_number_of_predictions_or_a_nan_is_an_error() {
        let data = prepared();
        let e = evaluate(&data, &trained(vec![0.5; 5])).unwrap_err();
        assert_eq!(e, "the model returned 5 test predictions, the test windows need 6");
        let mut pred = vec![0.5; 6];
        pred[3] = f32::NAN;
        let e = evaluate(&data, &trained(pred)).unwrap_err();
        assert_eq!(e, "the model predicted a non-finite value for test window 1", "two values per window");
    }

    #[test]
    fn loss_curve_only_for_models_with_epochs() {
        assert!(loss_curve_png(ModelType::Gru, &trained(vec![])).is_none());
        let mut t = trained(vec![]);
        t.history =
            vec![Progress { step: 1, total: 2, train_loss: 0.2, val_loss: 0.3, seconds: 0.1, val_predictions: None }];
        let png = loss_curve_png(ModelType::Gru, &t).expect("a curve").expect("renders");
        assert!(png.starts_with(b"\x89PNG"));
    }
}
