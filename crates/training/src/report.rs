//! What a finished fit leaves behind: scored metrics, the model card, the
//! test-part predictions in original units, and two plots.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use contracts::{Baselines, Metrics, ModelType};
use plots::{Figure, Panel, Series};
use series::Evaluation;

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
            i / data.test_windows.n_targets.max(1)
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

/// Test-part predictions in original units: one row per test window, with
/// the timestamp of its first predicted row and, per target and horizon
/// step, the prediction and the actual value.
pub fn predictions_csv(data: &Prepared, trained: &Trained) -> Result<String, String> {
    let w = &data.test_windows;
    let roles = &data.meta.roles;
    let scaler = &data.meta.scaler;
    let mut out = String::from("timestamp");
    for step in 0..w.output_len {
        for t in &roles.targets {
            let suffix = if w.output_len > 1 { format!("_t{}", step + 1) } else { String::new() };
            let _ = write!(out, ",{t}_predicted{suffix},{t}_actual{suffix}");
        }
    }
    out.push('\n');
    let per_window = w.output_len * w.n_targets;
    for i in 0..w.n {
        let row = w.first_target_row[i];
        let ts = DateTime::<Utc>::from_timestamp_millis(data.test.timestamps[row]).unwrap_or_default();
        let _ = write!(out, "{}", ts.to_rfc3339());
        for step in 0..w.output_len {
            for (j, t) in roles.targets.iter().enumerate() {
                let k = i * per_window + step * w.n_targets + j;
                let pred = scaler.inverse_value(t, trained.test_predictions[k] as f64).map_err(|e| e.to_string())?;
                let actual = scaler.inverse_value(t, w.y[k] as f64).map_err(|e| e.to_string())?;
                let _ = write!(out, ",{pred},{actual}");
            }
        }
        out.push('\n');
    }
    Ok(out)
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
