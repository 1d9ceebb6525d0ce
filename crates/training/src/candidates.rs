//! The candidates of one submission, and the choice among them on validation.
//!
//! Each preprocessing choice (outlier handling, see [`series::outliers`]) and
//! each seed of a trainer is one candidate fit. A candidate sees the data in
//! its own units: bounds fitted on the training rows (never on validation
//! targets), a scaler refitted on the clipped training part, the
//! clip applied to model **inputs** and to the targets the model learns from,
//! never to the actuals it is scored against; a floor of 0 on forecasts of
//! columns never negative in training.
//!
//! Every candidate is scored on the validation windows, against raw actuals,
//! in the dataset scaler's units (fitted by preprocess on the raw training
//! part, the same for every candidate and model type, and the units of the
//! test metrics); the lowest RMSE wins. The test windows are never looked
//! at here: [`fit_candidates`] only reads `test_predictions` to hand them on.
//!
//! Candidates with epochs run side by side and are thinned once: at the rung
//! (the first epoch that ends at least [`RUNG_UPDATES`] optimiser updates in,
//! [`rung_epoch`]) only the best by validation RMSE there goes on, the others
//! stop. Counting updates, not epochs, compares candidates after the same
//! optimisation effort on a small file and a large one: on El Born (3,155
//! training windows, batch 128) the rung is epoch 6; on 16,000 rows, epoch 2.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Condvar, Mutex};

use contracts::Metrics;
use series::{Frame, OutlierMethod, OutlierParams, Scaler};

use crate::{ModelTrainer, Prepared, Progress, TrainError, Trained};

/// Optimiser updates before candidates are compared (see [`rung_epoch`]).
pub const RUNG_UPDATES: usize = 128;

/// The epoch at which candidates are compared for a trainer making
/// `updates_per_epoch` optimiser updates per epoch: the first that ends at
/// least [`RUNG_UPDATES`] updates in. Trainers with epochs hand their
/// validation predictions at this epoch ([`crate::Progress::val_predictions`]).
pub fn rung_epoch(updates_per_epoch: usize) -> usize {
    RUNG_UPDATES.div_ceil(updates_per_epoch.max(1)).max(1)
}

/// Calendar features (preprocess's `calendar_features`): never clipped or rescaled.
const CALENDAR: [&str; 4] = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"];

/// One candidate: a preprocessing choice and, for trainers with seeds, a seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateSpec {
    pub outliers: OutlierMethod,
    pub seed: Option<u64>,
}

impl CandidateSpec {
    /// `outliers=percentile seed=43`, for logs and tables.
    pub fn label(&self) -> String {
        match self.seed {
            Some(s) => format!("outliers={} seed={s}", self.outliers.as_str()),
            None => format!("outliers={}", self.outliers.as_str()),
        }
    }

    /// The choice as key/value pairs (the event's `validation.choice`, MLflow params).
    pub fn choice(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([("outliers".to_string(), self.outliers.as_str().to_string())]);
        if let Some(s) = self.seed {
            m.insert("seed".into(), s.to_string());
        }
        m
    }
}

/// Every candidate of `method` (pinned or `auto`) times `seeds` (none: one per method).
pub fn specs(method: OutlierMethod, seeds: &[u64]) -> Vec<CandidateSpec> {
    let seeds: Vec<Option<u64>> = if seeds.is_empty() { vec![None] } else { seeds.iter().copied().map(Some).collect() };
    method
        .candidates()
        .iter()
        .flat_map(|&outliers| seeds.iter().map(move |&seed| CandidateSpec { outliers, seed }))
        .collect()
}

/// `frame` in original units (the inverse of `scaler` on every column it knows).
fn to_raw(frame: &Frame, scaler: &Scaler) -> Frame {
    let mut raw = frame.clone();
    for col in &mut raw.columns {
        if let Some(c) = scaler.columns.iter().find(|c| c.name == col.name) {
            col.values.iter_mut().for_each(|v| *v = *v * c.scale + c.offset);
        }
    }
    raw
}

/// The data as candidate `outliers` sees it: frames and windows in its own
/// scaler's units, with the same windows (gaps dropped alike) as `base`.
pub fn candidate_data(base: &Prepared, outliers: OutlierMethod, params: &OutlierParams) -> Result<Prepared, String> {
    let roles = &base.meta.roles;
    let raw_train = to_raw(&base.train, &base.meta.scaler);
    let raw_test = to_raw(&base.test, &base.meta.scaler);
    // Bounds are fitted on the training rows only, never on validation targets.
    let fit_row = |r: usize| !base.val_rows.get(r).copied().unwrap_or(false);
    let passthrough: Vec<String> = roles.features.iter().filter(|f| CALENDAR.contains(&f.as_str())).cloned().collect();
    let mut clipped = raw_train.clone();
    let mut bounds = BTreeMap::new();
    for col in &mut clipped.columns {
        if passthrough.contains(&col.name) || !roles.features.contains(&col.name) {
            continue;
        }
        let fit: Vec<f64> = col.values.iter().enumerate().filter(|(r, _)| fit_row(*r)).map(|(_, v)| *v).collect();
        if let Some(b) = series::fit_bounds(&fit, outliers, params) {
            series::outliers::clip(&mut col.values, b);
            bounds.insert(col.name.clone(), b);
        }
    }
    let mut scaler =
        Scaler::fit(base.meta.scaler.kind, &clipped, &roles.features, &passthrough).map_err(|e| e.to_string())?;
    for c in &mut scaler.columns {
        c.clip = bounds.get(&c.name).map(|&(lo, hi)| [lo, hi]);
        if roles.targets.contains(&c.name) && raw_train.column(&c.name).is_some_and(|v| v.iter().all(|x| *x >= 0.0)) {
            c.floor = Some(0.0);
        }
    }
    let mut meta = base.meta.clone();
    meta.scaler = scaler;
    // What the model learns from: the clipped training part. What it is
    // scored against: the raw parts, inputs clipped by the scaler.
    let learn = meta.scaler.transform(&clipped).map_err(|e| e.to_string())?;
    let honest_train = meta.scaler.transform(&raw_train).map_err(|e| e.to_string())?;
    let test = meta.scaler.transform(&raw_test).map_err(|e| e.to_string())?;
    let args = crate::WindowArgs {
        input_seq_len: base.spec.input_len,
        output_seq_len: base.spec.output_len,
        validation_fraction: base.validation_fraction,
        validation_blocks: base.validation_blocks,
    };
    let mut view = Prepared::new(learn, test, meta, &args)?;
    // Validation inputs come clipped from the clipped part (clipping then
    // scaling is scaling then clipping); their targets are the raw ones.
    let k = roles.targets.len();
    let raw_targets: Vec<&[f64]> =
        roles.targets.iter().map(|t| honest_train.require(t)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let w = &mut view.val_windows;
    for (i, &first) in w.first_target_row.iter().enumerate() {
        for step in 0..w.output_len {
            for (j, col) in raw_targets.iter().enumerate() {
                w.y[(i * w.output_len + step) * k + j] = col[first + step] as f32;
            }
        }
    }
    view.meta.scaler.clip_scaled_inputs(&mut view.test_windows.x, &roles.features).map_err(|e| e.to_string())?;
    if view.val_windows.first_target_row != base.val_windows.first_target_row
        || view.test_windows.first_target_row != base.test_windows.first_target_row
    {
        return Err("candidate windows differ from the dataset's (internal error)".into());
    }
    // The baselines are the dataset's, scored in its units.
    view.baselines = base.baselines.clone();
    view.val_baselines = base.val_baselines.clone();
    Ok(view)
}

/// Scaled predictions of a candidate (its own units, laid out like
/// `Windows::y`) in the dataset scaler's units, after the candidate's floor.
pub fn to_dataset_units(pred: &[f32], candidate: &Scaler, base: &Prepared) -> Result<Vec<f32>, String> {
    let targets = &base.meta.roles.targets;
    pred.iter()
        .enumerate()
        .map(|(i, p)| {
            let t = &targets[i % targets.len()];
            let raw = candidate.unscale_forecast(t, f64::from(*p)).map_err(|e| e.to_string())?;
            Ok(base.meta.scaler.scale_value(t, raw).map_err(|e| e.to_string())? as f32)
        })
        .collect()
}

/// What became of one candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Trained to the end; its validation metrics (dataset units).
    Finished(Metrics),
    /// Stopped at the rung: its validation RMSE there was not the best.
    Pruned {
        /// Its validation RMSE at the rung.
        rung_rmse: f64,
    },
    Failed(String),
}

/// One row of the candidates table (model card, MLflow).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub spec: CandidateSpec,
    pub fate: Fate,
    /// Epochs (or steps) run.
    pub steps: usize,
    pub seconds: f64,
}

/// The winner and what the report needs.
#[derive(Debug)]
pub struct Chosen {
    pub spec: CandidateSpec,
    /// The winner's view of the data (its scaler is the model's `scaler.json`).
    pub data: Prepared,
    /// The fit, predictions in the candidate's units.
    pub trained: Trained,
    /// The winner's predictions in the dataset scaler's units, floored.
    pub val_predictions: Vec<f32>,
    pub test_predictions: Vec<f32>,
    /// Validation metrics (dataset units) of the winner.
    pub validation: Metrics,
    /// Every candidate, in spec order.
    pub outcomes: Vec<Outcome>,
}

/// The rung: every candidate posts its validation RMSE at its rung epoch
/// (from the predictions the trainer gives there, in the dataset scaler's
/// units, so candidates of every preprocessing choice compare), or infinity
/// if it stopped before; when all have, the best goes on (both when there are
/// two: finishing a second fit costs little there). One survivor, not a
/// third: on two cores the survivors' early-stopped fits (25-30 epochs on
/// 16,000 rows) are most of a trainer's time, and the runner-up rarely wins
/// the final comparison.
struct Rung {
    keep: usize,
    state: Mutex<Vec<Option<f64>>>,
    ready: Condvar,
}

impl Rung {
    fn new(n: usize) -> Rung {
        let keep = if n <= 2 { n } else { 1 };
        Rung { keep, state: Mutex::new(vec![None; n]), ready: Condvar::new() }
    }

    /// Post candidate `i`'s score (once); with `wait`, block until every
    /// candidate posted and say whether `i` is among the best `keep`.
    fn post(&self, i: usize, score: f64, wait: bool) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s[i].is_none() {
            s[i] = Some(if score.is_nan() { f64::INFINITY } else { score });
            self.ready.notify_all();
        }
        if !wait {
            return true;
        }
        while s.iter().any(Option::is_none) {
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let mine = s[i].unwrap_or(f64::INFINITY);
        // Rank by score, ties by index: deterministic whatever the thread timing.
        let better = s
            .iter()
            .enumerate()
            .filter(|(j, l)| l.unwrap_or(f64::INFINITY).total_cmp(&mine).then(j.cmp(&i)).is_lt())
            .count();
        better < self.keep
    }
}

/// Posts an infinite loss for candidate `i` when dropped (a no-op if it posted).
struct PostOnExit<'a> {
    rung: &'a Rung,
    i: usize,
}

impl Drop for PostOnExit<'_> {
    fn drop(&mut self) {
        self.rung.post(self.i, f64::INFINITY, false);
    }
}

/// Train every candidate (side by side, one thread each), thin them at the
/// rung, score the rest on validation and return the best. `progress` sees
/// every candidate's epochs (with its label); a `Break` from it (shutdown)
/// cancels all of them.
pub fn fit_candidates(
    trainer: &dyn ModelTrainer,
    base: &Prepared,
    specs: &[CandidateSpec],
    params: &OutlierParams,
    progress: &(dyn Fn(&str, &Progress) -> ControlFlow<()> + Sync),
) -> Result<Chosen, TrainError> {
    if specs.is_empty() {
        return Err(TrainError::Data("no candidates to train".into()));
    }
    if base.val_windows.n == 0 {
        return Err(TrainError::Data("no validation windows: candidates cannot be compared".into()));
    }
    // One view per preprocessing choice, shared by its seeds.
    let mut views: Vec<(OutlierMethod, Prepared)> = Vec::new();
    for s in specs {
        if !views.iter().any(|(m, _)| *m == s.outliers) {
            views.push((s.outliers, candidate_data(base, s.outliers, params).map_err(TrainError::Data)?));
        }
    }
    let view = |m: OutlierMethod| &views.iter().find(|(v, _)| *v == m).expect("view of every method").1;
    let rung = Rung::new(specs.len());
    let cancelled = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<(Result<Trained, TrainError>, usize, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let (data, rung, cancelled) = (view(spec.outliers), &rung, &cancelled);
                let label = spec.label();
                scope.spawn(move || {
                    // However the fit ends (even by a panic), the rung hears from it.
                    let _posted = PostOnExit { rung, i };
                    let started = std::time::Instant::now();
                    let mut steps = 0;
                    let mut on_step = |p: &Progress| {
                        steps = p.step;
                        if progress(&label, p).is_break() {
                            cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                            return ControlFlow::Break(());
                        }
                        if let Some(pred) = p.val_predictions.as_deref() {
                            let score = score_predictions(pred, data, base).map_or(f64::INFINITY, |(_, m)| m.rmse);
                            if p.total > p.step && !rung.post(i, score, true) {
                                return ControlFlow::Break(());
                            }
                        }
                        ControlFlow::Continue(())
                    };
                    let result = trainer.train(data, spec.seed, &mut on_step);
                    // Stopped before the rung (or never had epochs): nothing to compare there.
                    rung.post(i, f64::INFINITY, false);
                    (result, steps, started.elapsed().as_secs_f64())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| (Err(TrainError::Data("candidate fit panicked".into())), 0, 0.0)))
            .collect()
    });
    if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(TrainError::Cancelled);
    }

    let mut outcomes = Vec::new();
    let mut best: Option<(usize, Trained, Vec<f32>, Metrics)> = None;
    let mut first_error = None;
    for (i, (result, steps, seconds)) in results.into_iter().enumerate() {
        let spec = specs[i];
        let fate = match result {
            Err(TrainError::Cancelled) => {
                Fate::Pruned { rung_rmse: rung.state.lock().map_or(f64::NAN, |s| s[i].unwrap_or(f64::NAN)) }
            }
            Err(e) => {
                let message = e.to_string();
                first_error.get_or_insert(e);
                Fate::Failed(message)
            }
            Ok(trained) => {
                let data = view(spec.outliers);
                match score_validation(&trained, data, base) {
                    Ok((val_pred, metrics)) => {
                        if best.as_ref().is_none_or(|(_, _, _, m)| metrics.rmse < m.rmse) {
                            best = Some((i, trained, val_pred, metrics));
                        }
                        Fate::Finished(metrics)
                    }
                    Err(e) => Fate::Failed(e),
                }
            }
        };
        outcomes.push(Outcome { spec, fate, steps, seconds });
    }
    let Some((i, trained, val_predictions, validation)) = best else {
        return Err(first_error.unwrap_or_else(|| TrainError::Data("every candidate failed".into())));
    };
    let data = view(specs[i].outliers).clone();
    let test_predictions =
        to_dataset_units(&trained.test_predictions, &data.meta.scaler, base).map_err(TrainError::Data)?;
    Ok(Chosen { spec: specs[i], data, trained, val_predictions, test_predictions, validation, outcomes })
}

/// A candidate's validation predictions in dataset units and their metrics
/// against the dataset's (raw, unclipped) validation actuals.
fn score_validation(trained: &Trained, data: &Prepared, base: &Prepared) -> Result<(Vec<f32>, Metrics), String> {
    score_predictions(&trained.val_predictions, data, base)
}

/// Validation predictions in a candidate's units, scored (see [`score_validation`]).
fn score_predictions(pred: &[f32], data: &Prepared, base: &Prepared) -> Result<(Vec<f32>, Metrics), String> {
    let w = &base.val_windows;
    if pred.len() != w.y.len() {
        return Err(format!(
            "the model returned {} validation predictions, the windows need {}",
            pred.len(),
            w.y.len()
        ));
    }
    let pred = to_dataset_units(pred, &data.meta.scaler, base)?;
    if pred.iter().any(|v| !v.is_finite()) {
        return Err("a validation prediction is not finite".into());
    }
    let metrics = series::metrics(&pred, &w.y).map_err(|e| e.to_string())?;
    Ok((pred, metrics))
}

impl Chosen {
    /// The chosen fit with its predictions in the dataset's scaled units
    /// (what is scored, reported and compared across model types).
    pub fn scored(&self) -> Trained {
        Trained {
            val_predictions: self.val_predictions.clone(),
            test_predictions: self.test_predictions.clone(),
            ..self.trained.clone()
        }
    }

    /// The event's `validation`: the winner's validation scores beside the
    /// naive baselines on the same windows, and what it was trained with.
    pub fn validation_summary(&self, base: &Prepared) -> contracts::Validation {
        contracts::Validation {
            metrics: self.validation,
            baselines: base.val_baselines.clone(),
            windows: base.val_windows.n as u32,
            candidates: self.outcomes.len() as u32,
            choice: self.spec.choice(),
        }
    }

    /// Metrics a run logs besides the test metrics: validation scores, test
    /// NRMSE per target (model and baselines), the candidates.
    pub fn metric_list(&self, base: &Prepared) -> Vec<(String, f64)> {
        let mut out = vec![
            ("val_rmse".to_string(), self.validation.rmse),
            ("val_mae".to_string(), self.validation.mae),
            ("val_mse".to_string(), self.validation.mse),
            ("val_baseline_last_value_rmse".to_string(), base.val_baselines.last_value.rmse),
            ("candidates".to_string(), self.outcomes.len() as f64),
            ("candidates_pruned".to_string(), self.pruned() as f64),
            ("gap_windows_dropped".to_string(), (base.gap_windows_dropped.0 + base.gap_windows_dropped.1) as f64),
        ];
        if let Ok(rows) = crate::report::nrmse(base, &self.test_predictions) {
            for r in rows {
                let t = &r.target;
                for (name, v) in [
                    (format!("test_nrmse_{t}"), r.model),
                    (format!("baseline_last_value_nrmse_{t}"), r.last_value),
                    (format!("baseline_seasonal_naive_nrmse_{t}"), r.seasonal_naive),
                ] {
                    if let Some(v) = v {
                        out.push((name, v));
                    }
                }
            }
        }
        out
    }

    fn pruned(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o.fate, Fate::Pruned { .. })).count()
    }

    /// `card` (the generic model card) with the candidates, the validation
    /// choice, the model's input clips and forecast floors, and test NRMSE.
    pub fn model_card(&self, card: String, base: &Prepared) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut s = card;
        let _ = writeln!(s, "\n## Choice on validation\n");
        let _ = writeln!(
            s,
            "{} candidate(s) trained ({} stopped at the rung, {RUNG_UPDATES} optimiser updates in, behind the best on validation there); each scored on the {} \
             validation windows ({} blocks of the training part, the last at its end) against raw actuals, scaled units. \
             Chosen: **{}** (validation RMSE {:.6}; last value {:.6}). The test part played no part in the choice.\n",
            self.outcomes.len(),
            self.pruned(),
            base.val_windows.n,
            base.validation_blocks,
            self.spec.label(),
            self.validation.rmse,
            base.val_baselines.last_value.rmse,
        );
        let _ = writeln!(s, "| candidate | validation RMSE | outcome | epochs | seconds |\n|---|---|---|---|---|");
        for o in &self.outcomes {
            let (rmse, what) = match &o.fate {
                Fate::Finished(m) => (format!("{:.6}", m.rmse), "trained".to_string()),
                Fate::Pruned { rung_rmse } => {
                    (format!("({rung_rmse:.6} at epoch {})", o.steps), "stopped early".into())
                }
                Fate::Failed(e) => ("-".into(), format!("failed: {e}")),
            };
            let _ = writeln!(s, "| {} | {rmse} | {what} | {} | {:.1} |", o.spec.label(), o.steps, o.seconds);
        }
        let _ = writeln!(s, "\nInputs and forecasts (original units; applied by `scaler.json`):\n");
        for c in self.data.meta.scaler.columns.iter() {
            if c.clip.is_some() || c.floor.is_some() {
                let clip = c.clip.map_or("-".to_string(), |[lo, hi]| format!("inputs clipped to [{lo:.6e}, {hi:.6e}]"));
                let floor = c.floor.map_or(String::new(), |f| format!("; forecasts floored at {f}"));
                let _ = writeln!(s, "- `{}`: {clip}{floor}", c.name);
            }
        }
        let (dropped_train, dropped_test) = base.gap_windows_dropped;
        if dropped_train + dropped_test > 0 {
            let _ = writeln!(
                s,
                "\n{dropped_train} training/validation and {dropped_test} test windows touching long gaps were dropped."
            );
        }
        if let Ok(rows) = crate::report::nrmse(base, &self.test_predictions) {
            let _ = writeln!(s, "\n## Test NRMSE (RMSE / mean of the actuals, per target)\n");
            let _ =
                writeln!(s, "| target | mean actual | model | last value | seasonal naive |\n|---|---|---|---|---|");
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            for r in rows {
                let _ = writeln!(
                    s,
                    "| {} | {:.6e} | {} | {} | {} |",
                    r.target,
                    r.mean_actual,
                    f(r.model),
                    f(r.last_value),
                    f(r.seasonal_naive)
                );
            }
        }
        s.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WindowArgs;
    use series::{Column, ProcessedMeta, Roles, ScalerKind};

    /// Hourly load with a daily cycle; spikes of 20x at `spikes` rows.
    fn frame(start: usize, rows: usize, spikes: &[usize]) -> Frame {
        let load: Vec<f64> = (start..start + rows)
            .map(|i| {
                let base = 100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
                if spikes.contains(&i) { base * 20.0 } else { base }
            })
            .collect();
        let other: Vec<f64> = (start..start + rows).map(|i| (i % 7) as f64).collect();
        Frame::new(
            (start..start + rows).map(|i| i as i64 * 3_600_000).collect(),
            vec![Column::new("load", load), Column::new("other", other)],
        )
        .unwrap()
    }

    /// The dataset as preprocess leaves it: min-max on the raw train part, nothing clipped.
    fn base(train_spikes: &[usize], test_spikes: &[usize]) -> Prepared {
        let (train, test) = (frame(0, 400, train_spikes), frame(400, 120, test_spikes));
        let names = vec!["load".to_string(), "other".to_string()];
        let scaler = Scaler::fit(ScalerKind::MinMax, &train, &names, &[]).unwrap();
        let meta = ProcessedMeta {
            config_hash: "h".into(),
            config: serde_json::json!({"settings": {"clean": {"outliers": "auto"}}}),
            scaler: scaler.clone(),
            roles: Roles {
                timestamp: "timestamp".into(),
                features: names,
                targets: vec!["load".into()],
                interval_ms: 3_600_000,
            },
            gaps: Vec::new(),
        };
        let args = WindowArgs { input_seq_len: 4, output_seq_len: 1, validation_fraction: 0.25, validation_blocks: 1 };
        Prepared::new(scaler.transform(&train).unwrap(), scaler.transform(&test).unwrap(), meta, &args).unwrap()
    }

    /// Predicts the last input row's target (as the candidate's clipped inputs show it).
    struct LastInput {
        epochs: usize,
    }

    impl ModelTrainer for LastInput {
        fn model_type(&self) -> contracts::ModelType {
            contracts::ModelType::Gru
        }
        fn params(&self) -> Vec<(String, String)> {
            vec![]
        }
        fn seeds(&self) -> Vec<u64> {
            vec![1, 2]
        }
        fn train(
            &self,
            data: &Prepared,
            seed: Option<u64>,
            progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
        ) -> Result<Trained, TrainError> {
            let last = |w: &series::Windows| -> Vec<f32> {
                (0..w.n).map(|i| w.x[(i + 1) * w.x_stride() - w.n_features]).collect()
            };
            for epoch in 1..=self.epochs {
                // A fake loss: seed 2 and unclipped candidates look worse.
                let penalty = if seed == Some(2) { 2.0 } else { 1.0 };
                let clipped = data.meta.scaler.columns[0].clip.is_some();
                let val_loss = penalty * if clipped { 1.0 } else { 3.0 } / epoch as f64;
                // At the rung: the final predictions, worse for seed 2 (scaled away from the actuals).
                let val_predictions = (epoch == rung_epoch(26)).then(|| {
                    let p = last(&data.val_windows);
                    if seed == Some(2) { p.iter().map(|v| v * 1.5).collect() } else { p }
                });
                let p = Progress {
                    step: epoch,
                    total: self.epochs,
                    train_loss: val_loss,
                    val_loss,
                    seconds: 0.0,
                    val_predictions,
                };
                if progress(&p).is_break() {
                    return Err(TrainError::Cancelled);
                }
            }
            Ok(Trained {
                format: contracts::ModelFormat::Onnx,
                model_file: ("model.onnx".into(), vec![]),
                val_predictions: last(&data.val_windows),
                test_predictions: last(&data.test_windows),
                protocol: contracts::EvalProtocol::OneStepAhead,
                history: vec![],
                extra_metrics: vec![],
                card_notes: String::new(),
                extra_files: vec![],
            })
        }
    }

    fn go(_: &str, _: &Progress) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    fn choose(data: &Prepared, epochs: usize) -> Chosen {
        let specs = specs(OutlierMethod::Auto, &LastInput { epochs }.seeds());
        fit_candidates(&LastInput { epochs }, data, &specs, &OutlierParams::default(), &go).unwrap()
    }

    #[test]
    fn candidates_clip_inputs_and_training_targets_never_scored_actuals() {
        let data = base(&[150], &[450]);
        let view = candidate_data(&data, OutlierMethod::Percentile, &OutlierParams::default()).unwrap();
        let load = &view.meta.scaler.columns[0];
        let [_, hi] = load.clip.expect("percentile bounds on load");
        assert!(hi < 1_000.0, "the 20x spikes are above the 99.5th percentile: {hi}");
        assert_eq!(load.floor, Some(0.0), "load is never negative in training");
        // The model learns from clipped values: no training target above the bound.
        let top = view.train_windows.y.iter().fold(f32::MIN, |a, b| a.max(*b));
        assert!(load.unscale_forecast(f64::from(top)) <= hi + 1e-6);
        // Test row 450 (window target index 50 - 4 = 46) keeps its raw spike as the actual...
        let k = view.test_windows.first_target_row.iter().position(|&r| r == 50).unwrap();
        let actual = data.meta.scaler.inverse_value("load", f64::from(data.test_windows.y[k])).unwrap();
        assert!(actual > 1_000.0, "raw actual {actual}");
        let seen = view.meta.scaler.inverse_value("load", f64::from(view.test_windows.y[k])).unwrap();
        assert!((seen - actual).abs() < 1e-3 * actual, "the candidate's actuals are the raw ones: {seen} vs {actual}");
        // ...while as an input (the next window's last row) it is clipped.
        let next = view.test_windows.first_target_row.iter().position(|&r| r == 51).unwrap();
        let x = view.test_windows.x[(next + 1) * view.test_windows.x_stride() - 2];
        assert!(view.meta.scaler.inverse_value("load", f64::from(x)).unwrap() <= hi + 1e-6);
    }

    #[test]
    fn clipping_cannot_improve_a_score_on_data_it_does_not_improve() {
        // A "model" whose forecast is the clipped last value scores against raw actuals:
        // predicting the test spike's own clipped value still pays the whole spike.
        let data = base(&[50, 150, 250], &[]);
        let chosen = choose(&data, 1);
        let with_spike = base(&[50, 150, 250], &[450]);
        let again = choose(&with_spike, 1);
        let rmse = |c: &Chosen, d: &Prepared| series::metrics(&c.test_predictions, &d.test_windows.y).unwrap().rmse;
        assert!(rmse(&again, &with_spike) > rmse(&chosen, &data) * 2.0, "the spike counts in full");
    }

    #[test]
    fn the_choice_is_made_on_validation_and_test_rows_cannot_change_it() {
        let data = base(&[50, 150, 250, 330, 370], &[]);
        let chosen = choose(&data, 1);
        assert_ne!(chosen.spec.outliers, OutlierMethod::None, "clipping wins on spiky validation rows");
        assert_eq!(chosen.outcomes.len(), 6);
        // Rewrite the test part completely (spikes everywhere, other levels): same choice,
        // same validation score, different test predictions.
        let other = base(&[50, 150, 250, 330, 370], &(400..520).step_by(3).collect::<Vec<_>>());
        let again = choose(&other, 1);
        assert_eq!(again.spec, chosen.spec);
        assert_eq!(again.validation, chosen.validation);
        assert_ne!(again.test_predictions, chosen.test_predictions);
        let summary = again.validation_summary(&other);
        assert_eq!(summary.choice["outliers"], chosen.spec.outliers.as_str());
        assert_eq!(summary.candidates, 6);
    }

    #[test]
    fn hopeless_candidates_stop_at_the_rung() {
        let data = base(&[50, 150, 250], &[]);
        let rung = rung_epoch(26);
        assert_eq!(rung, 5, "128 updates at 26 per epoch");
        let chosen = choose(&data, rung + 3);
        let pruned: Vec<_> =
            chosen.outcomes.iter().filter(|o| matches!(o.fate, Fate::Pruned { .. })).map(|o| o.spec).collect();
        // Six candidates, the best goes on; seed 2's predictions are off by half.
        assert_eq!(pruned.len(), 5, "{:?}", chosen.outcomes);
        assert!(chosen.outcomes.iter().all(|o| o.steps == rung || o.steps == rung + 3));
        let kept: Vec<_> =
            chosen.outcomes.iter().filter(|o| matches!(o.fate, Fate::Finished(_))).map(|o| o.spec).collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].seed, Some(1), "{kept:?}");
        assert_eq!(chosen.spec, kept[0]);
        assert!(String::from_utf8(chosen.model_card(String::new(), &data)).unwrap().contains("stopped early"));
    }

    #[test]
    fn the_rung_comes_after_the_same_number_of_updates_whatever_the_data_size() {
        assert_eq!(rung_epoch(26), 5);
        assert_eq!(rung_epoch(98), 2);
        assert_eq!(rung_epoch(128), 1);
        assert_eq!(rung_epoch(10_000), 1);
        assert_eq!(rung_epoch(0), RUNG_UPDATES);
    }

    #[test]
    fn specs_follow_the_config_and_the_seeds() {
        assert_eq!(specs(OutlierMethod::Auto, &[7, 8]).len(), 6);
        assert_eq!(specs(OutlierMethod::Iqr, &[]), vec![CandidateSpec { outliers: OutlierMethod::Iqr, seed: None }]);
        assert_eq!(specs(OutlierMethod::None, &[3])[0].label(), "outliers=none seed=3");
    }
}
