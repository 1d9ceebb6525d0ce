//! [`Fitter`]: fits one augurs-prophet model per target, in parallel, and turns each into a [`FittedTarget`].
//!
//! augurs-prophet keeps a fitted model's parameters private, so the fit runs through [`RecordingOptimizer`],
//! which hands the work to the native optimizer ([`crate::posterior`]) and keeps a copy of what went in
//! (the scaled data, the changepoints, the feature matrix) and what came out (the parameters). The feature columns arrive in an
//! order augurs picks at random (its seasonalities live in a `HashMap`), so each column is identified by
//! recomputing every configured feature at the training timestamps and matching values, mode and prior.

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use augurs_prophet::optimizer::{Data, InitialParams, OptimizeOpts, OptimizedParams};
use augurs_prophet::{
    Algorithm, FeatureMode, Holiday, HolidayOccurrence, Optimizer, PositiveFloat, Prophet, ProphetOptions, Regressor,
    Scaling, Seasonality, SeasonalityOption, Standardize, TrainingData,
};
use chrono::{DateTime, Datelike};

use crate::config::SeasonalitySpec;
use crate::model::{FORMAT_VERSION, Feature, FeatureColumn, FittedSet, FittedTarget, Wave};
use crate::posterior::NativeOptimizer;
use crate::{HolidaySpec, ProphetConfig, ProphetError, SeasonalityMode};

/// Fits Prophet models: augurs-prophet builds each model's data, features and changepoints as Python
/// Prophet does, and [`NativeOptimizer`] finds the MAP the way Stan's L-BFGS does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fitter;

impl Fitter {
    /// A fitter; cheap (nothing to compile or load).
    pub fn new() -> Fitter {
        Fitter
    }

    /// Fits one model per `(name, values)` target on the shared `timestamps_ms` (ms since the epoch, strictly
    /// increasing, whole seconds: sub-second parts are dropped), using up to `threads` threads (at least one).
    /// `regressors` holds a column for each of `cfg.regressors` (name, values at `timestamps_ms`), shared by
    /// every target.
    ///
    /// The input is checked in full before any fit starts; the error names the first bad target. If fits
    /// fail, the error is that of the first failing target in input order.
    pub fn fit_all(
        &self,
        cfg: &ProphetConfig,
        timestamps_ms: &[i64],
        targets: &[(String, Vec<f64>)],
        regressors: &[(String, Vec<f64>)],
        threads: usize,
    ) -> Result<FittedSet, ProphetError> {
        cfg.validate()?;
        let seconds = whole_seconds(timestamps_ms)?;
        check_targets(cfg, targets, seconds.len())?;
        prepare_regressors(cfg, regressors, seconds.len())?;

        let next = AtomicUsize::new(0);
        let workers = threads.clamp(1, targets.len().max(1));
        let mut results: Vec<(usize, Result<FittedTarget, ProphetError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        // Each worker takes the next unfitted target until none is left.
                        loop {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            let Some((name, values)) = targets.get(index) else { break };
                            let fitted =
                                self.fit_target(cfg, &seconds, name, values, regressors).map(|(_, fitted)| fitted);
                            done.push((index, fitted));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        results.sort_by_key(|(index, _)| *index);
        let targets = results.into_iter().map(|(_, fitted)| fitted).collect::<Result<_, _>>()?;
        Ok(FittedSet { format_version: FORMAT_VERSION, config: cfg.clone(), targets })
    }

    /// Fits one target on checked timestamps; returns augurs' model too, so tests can compare forecasts with
    /// it. `regressors` as for [`Fitter::fit_all`].
    pub(crate) fn fit_target(
        &self,
        cfg: &ProphetConfig,
        seconds: &[i64],
        name: &str,
        values: &[f64],
        regressors: &[(String, Vec<f64>)],
    ) -> Result<(Prophet<RecordingOptimizer>, FittedTarget), ProphetError> {
        let fit_error = |source| ProphetError::Fit { target: name.to_string(), source };
        let seasonalities = cfg.seasonalities_for(seconds);
        let holidays = holidays_for(cfg, seconds)?;
        let regressors = prepare_regressors(cfg, regressors, seconds.len())?;
        let (recorder, recorded) = RecordingOptimizer::new();
        let mut prophet = Prophet::new(augurs_options(cfg, &seasonalities, &holidays)?, recorder);
        for custom in &cfg.custom_seasonalities {
            let seasonality = Seasonality::new(positive(custom.period_days)?, nonzero(custom.fourier_order)?);
            prophet.add_seasonality(custom.name.clone(), seasonality).map_err(fit_error)?;
        }
        for r in &regressors {
            // Standardised here, as Python does it (augurs' own standardisation differs).
            let regressor = match r.mode {
                SeasonalityMode::Additive => Regressor::additive(),
                SeasonalityMode::Multiplicative => Regressor::multiplicative(),
            };
            let regressor = regressor.with_prior_scale(positive(r.prior_scale)?).with_standardize(Standardize::No);
            prophet.add_regressor(r.name.clone(), regressor);
        }
        let mut data = TrainingData::new(seconds.to_vec(), values.to_vec()).map_err(fit_error)?;
        if !regressors.is_empty() {
            let columns = regressors.iter().map(|r| (r.name.clone(), r.values.clone())).collect();
            data = data.with_regressors(columns).map_err(fit_error)?;
        }
        prophet.fit(data, python_optimize_opts(values.len())).map_err(fit_error)?;
        let Some(Recorded { data, params }) = recorded.borrow_mut().take() else {
            return Err(ProphetError::Internal(format!("target `{name}`: the fit never called the optimizer")));
        };

        let candidates = candidate_columns(cfg, &seasonalities, &holidays, &regressors, seconds)?;
        let columns = identify_columns(&data, &params, candidates)
            .map_err(|msg| ProphetError::Internal(format!("target `{name}`: {msg}")))?;
        let max_abs = values.iter().fold(0.0_f64, |max, v| max.max(v.abs()));
        let (first, last) = (seconds[0], seconds[seconds.len() - 1]);
        let fitted = FittedTarget {
            name: name.to_string(),
            train_start_ms: first * 1000,
            train_end_ms: last * 1000,
            train_rows: values.len(),
            // augurs' default absmax scaling (Python Prophet's too).
            y_scale: if max_abs == 0.0 { 1.0 } else { max_abs },
            t_start_s: first,
            t_span_s: (last - first) as f64,
            k: params.k,
            m: params.m,
            changepoints_t: data.t_change,
            deltas: params.delta,
            sigma_obs: *params.sigma_obs,
            columns,
        };
        Ok((prophet, fitted))
    }
}

/// What one optimizer call saw and returned.
#[derive(Debug)]
struct Recorded {
    data: Data,
    params: OptimizedParams,
}

/// [`NativeOptimizer`], plus a copy of its last input and output (see the module docs).
#[derive(Debug)]
pub(crate) struct RecordingOptimizer {
    last_call: Rc<RefCell<Option<Recorded>>>,
}

impl RecordingOptimizer {
    /// The optimizer, and a handle to read what it records.
    fn new() -> (Self, Rc<RefCell<Option<Recorded>>>) {
        let last_call = Rc::new(RefCell::new(None));
        (Self { last_call: Rc::clone(&last_call) }, last_call)
    }
}

impl Optimizer for RecordingOptimizer {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &Data,
        opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, augurs_prophet::optimizer::Error> {
        let params = NativeOptimizer.optimize(init, data, opts)?;
        *self.last_call.borrow_mut() = Some(Recorded { data: data.clone(), params: params.clone() });
        Ok(params)
    }
}

/// `timestamps_ms` as whole seconds, which must be strictly increasing.
fn whole_seconds(timestamps_ms: &[i64]) -> Result<Vec<i64>, ProphetError> {
    let seconds: Vec<i64> = timestamps_ms.iter().map(|ms| ms.div_euclid(1000)).collect();
    if let Some(row) = seconds.windows(2).position(|w| w[1] <= w[0]) {
        return Err(ProphetError::InvalidInput(format!(
            "timestamps must increase by at least a second from row to row; rows {} and {} are {} ms and {} ms",
            row,
            row + 1,
            timestamps_ms[row],
            timestamps_ms[row + 1]
        )));
    }
    Ok(seconds)
}

fn check_targets(cfg: &ProphetConfig, targets: &[(String, Vec<f64>)], n_rows: usize) -> Result<(), ProphetError> {
    // Prophet needs two rows, and at least one row inside the changepoint range.
    let needed = 2.max((1.0 / cfg.changepoint_range).ceil() as usize);
    for (i, (name, values)) in targets.iter().enumerate() {
        if targets[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(ProphetError::InvalidInput(format!("target `{name}` is given twice")));
        }
        if values.len() != n_rows {
            return Err(ProphetError::LengthMismatch {
                target: name.clone(),
                values: values.len(),
                timestamps: n_rows,
            });
        }
        if n_rows < needed || (n_rows as f64 * cfg.changepoint_range).floor() < 1.0 {
            return Err(ProphetError::TooFewRows { target: name.clone(), rows: n_rows, needed });
        }
        if let Some(row) = values.iter().position(|v| !v.is_finite()) {
            return Err(ProphetError::NonFinite { target: name.clone(), row, value: values[row] });
        }
    }
    Ok(())
}

/// An extra regressor ready for the fit, standardised as Python Prophet does it.
struct PreparedRegressor {
    name: String,
    mode: SeasonalityMode,
    prior_scale: f64,
    mu: f64,
    std: f64,
    /// `(x - mu) / std` at the training timestamps.
    values: Vec<f64>,
}

/// Checks that `given` has exactly the configured regressors, `n_rows` finite values each, and standardises
/// them: unless the column only holds 0 and 1 (or `standardize` says otherwise), minus the mean over the
/// sample standard deviation, as Python Prophet.
fn prepare_regressors(
    cfg: &ProphetConfig,
    given: &[(String, Vec<f64>)],
    n_rows: usize,
) -> Result<Vec<PreparedRegressor>, ProphetError> {
    let invalid = |msg: String| Err(ProphetError::InvalidInput(msg));
    if let Some((name, _)) = given.iter().find(|(name, _)| !cfg.regressors.iter().any(|r| &r.name == name)) {
        return invalid(format!("regressor column `{name}` is not in the config's regressors"));
    }
    let mut prepared = Vec::with_capacity(cfg.regressors.len());
    for spec in &cfg.regressors {
        let Some((_, x)) = given.iter().find(|(name, _)| *name == spec.name) else {
            return invalid(format!("regressor `{}` is configured but no column was given", spec.name));
        };
        if x.len() != n_rows {
            return invalid(format!("regressor `{}`: {} values for {n_rows} timestamps", spec.name, x.len()));
        }
        if let Some(row) = x.iter().position(|v| !v.is_finite()) {
            return invalid(format!("regressor `{}`: value at row {row} is {}", spec.name, x[row]));
        }
        let binary = x.iter().all(|v| *v == 0.0 || *v == 1.0) && x.contains(&0.0) && x.contains(&1.0);
        let (mu, std) = if spec.standardize.unwrap_or(!binary) {
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            if !(std.is_finite() && std > 0.0) {
                return invalid(format!(
                    "regressor `{}` is constant in the training data: cannot standardise it",
                    spec.name
                ));
            }
            (mean, std)
        } else {
            (0.0, 1.0)
        };
        prepared.push(PreparedRegressor {
            name: spec.name.clone(),
            mode: spec.mode.unwrap_or(cfg.seasonality_mode),
            prior_scale: spec.prior_scale.unwrap_or(cfg.holidays_prior_scale),
            mu,
            std,
            values: x.iter().map(|v| (v - mu) / std).collect(),
        });
    }
    Ok(prepared)
}

/// The configured holidays plus, with `country_holidays`, the country's for the training years (a name in
/// both gets the dates of both, as in Python).
fn holidays_for(cfg: &ProphetConfig, seconds: &[i64]) -> Result<Vec<HolidaySpec>, ProphetError> {
    let mut all = cfg.holidays.clone();
    let Some(country) = &cfg.country_holidays else { return Ok(all) };
    let year = |s: Option<&i64>| {
        s.and_then(|s| DateTime::from_timestamp(*s, 0))
            .map(|d| d.year())
            .ok_or_else(|| ProphetError::InvalidInput("timestamps out of the calendar's range".to_string()))
    };
    let years = year(seconds.first())?..=year(seconds.last())?;
    for holiday in crate::holidays::country_holidays(country, years)? {
        match all.iter_mut().find(|h| h.name == holiday.name) {
            Some(existing) => {
                existing.dates.extend(holiday.dates);
                existing.dates.sort();
                existing.dates.dedup();
            }
            None => all.push(holiday),
        }
    }
    Ok(all)
}

/// The optimizer settings Python Prophet passes to Stan: L-BFGS (Newton below 100 rows), up to 10,000
/// iterations. augurs leaves them at Stan's defaults, whose 2,000 iterations can stop the fit early.
fn python_optimize_opts(n_rows: usize) -> OptimizeOpts {
    let algorithm = if n_rows < 100 { Algorithm::Newton } else { Algorithm::Lbfgs };
    OptimizeOpts { algorithm: Some(algorithm), iter: Some(10_000), ..OptimizeOpts::default() }
}

fn positive(value: f64) -> Result<PositiveFloat, ProphetError> {
    PositiveFloat::try_new(value).map_err(|_| ProphetError::InvalidConfig(format!("{value} is not positive")))
}

fn nonzero(order: u32) -> Result<NonZeroU32, ProphetError> {
    NonZeroU32::new(order).ok_or_else(|| ProphetError::InvalidConfig("a Fourier order is 0".to_string()))
}

fn feature_mode(mode: SeasonalityMode) -> FeatureMode {
    match mode {
        SeasonalityMode::Additive => FeatureMode::Additive,
        SeasonalityMode::Multiplicative => FeatureMode::Multiplicative,
    }
}

/// augurs' options for `cfg`, with the built-in seasonalities and the holidays already decided.
fn augurs_options(
    cfg: &ProphetConfig,
    seasonalities: &[SeasonalitySpec],
    holidays: &[HolidaySpec],
) -> Result<ProphetOptions, ProphetError> {
    let built_in = |name: &str| -> Result<SeasonalityOption, ProphetError> {
        match seasonalities.iter().find(|s| s.name == name) {
            Some(spec) => Ok(SeasonalityOption::Fourier(nonzero(spec.order)?)),
            None => Ok(SeasonalityOption::Manual(false)),
        }
    };
    let mut augurs_holidays = HashMap::new();
    for holiday in holidays {
        let days = holiday.day_starts_s()?.into_iter().map(HolidayOccurrence::for_day).collect();
        augurs_holidays.insert(holiday.name.clone(), Holiday::new(days));
    }
    Ok(ProphetOptions {
        n_changepoints: cfg.n_changepoints,
        changepoint_range: positive(cfg.changepoint_range)?,
        changepoint_prior_scale: positive(cfg.changepoint_prior_scale)?,
        seasonality_prior_scale: positive(cfg.seasonality_prior_scale)?,
        holidays_prior_scale: positive(cfg.holidays_prior_scale)?,
        seasonality_mode: feature_mode(cfg.seasonality_mode),
        yearly_seasonality: built_in("yearly")?,
        weekly_seasonality: built_in("weekly")?,
        daily_seasonality: built_in("daily")?,
        holidays: augurs_holidays,
        scaling: Scaling::AbsMax,
        // Forecasts and their intervals come from this crate, not from augurs.
        uncertainty_samples: 0,
        ..ProphetOptions::default()
    })
}

/// A feature that may be a column of the fitted model, with its values at the training timestamps.
struct Candidate {
    feature: Feature,
    mode: SeasonalityMode,
    prior_scale: f64,
    values: Vec<f64>,
}

fn candidate_columns(
    cfg: &ProphetConfig,
    seasonalities: &[SeasonalitySpec],
    holidays: &[HolidaySpec],
    regressors: &[PreparedRegressor],
    seconds: &[i64],
) -> Result<Vec<Candidate>, ProphetError> {
    let mut features = Vec::new();
    for s in seasonalities {
        for harmonic in 1..=s.order {
            for wave in [Wave::Sin, Wave::Cos] {
                let feature =
                    Feature::Fourier { seasonality: s.name.clone(), period_days: s.period_days, harmonic, wave };
                features.push((feature, cfg.seasonality_prior_scale));
            }
        }
    }
    for holiday in holidays {
        // augurs adds no column for a holiday without dates.
        if !holiday.dates.is_empty() {
            let feature = Feature::Holiday { name: holiday.name.clone(), day_starts_s: holiday.day_starts_s()? };
            features.push((feature, cfg.holidays_prior_scale));
        }
    }
    let mut candidates: Vec<Candidate> = features
        .into_iter()
        .map(|(feature, prior_scale)| Candidate {
            values: seconds.iter().map(|s| feature.value(*s)).collect(),
            feature,
            mode: cfg.seasonality_mode,
            prior_scale,
        })
        .collect();
    candidates.extend(regressors.iter().map(|r| Candidate {
        feature: Feature::Regressor { name: r.name.clone(), mu: r.mu, std: r.std },
        mode: r.mode,
        prior_scale: r.prior_scale,
        values: r.values.clone(),
    }));
    Ok(candidates)
}

/// Pairs each column of the feature matrix Stan saw with the candidate that produced it.
///
/// Two candidates can only be confused if they have the same values at every training timestamp, the
/// same mode and the same prior; their fitted coefficients are then equal too, so either pairing forecasts
/// the same.
fn identify_columns(
    data: &Data,
    params: &OptimizedParams,
    mut candidates: Vec<Candidate>,
) -> Result<Vec<FeatureColumn>, String> {
    let n_columns = data.K as usize;
    let n_rows = data.T as usize;
    if candidates.is_empty() {
        // augurs fits one all-zero dummy column when the model has no features.
        return if n_columns == 1 { Ok(Vec::new()) } else { Err(format!("{n_columns} columns, none configured")) };
    }
    if n_columns != candidates.len() || params.beta.len() != n_columns || data.X.len() != n_rows * n_columns {
        return Err(format!("{n_columns} fitted feature columns but {} configured", candidates.len()));
    }
    let mut columns = Vec::with_capacity(n_columns);
    for c in 0..n_columns {
        // The matrix is row-major: row r, column c is X[r * K + c].
        let fitted_values = (0..n_rows).map(|r| data.X[r * n_columns + c]);
        let mode = if data.s_m[c] == 1 { SeasonalityMode::Multiplicative } else { SeasonalityMode::Additive };
        let prior_scale = *data.sigmas[c];
        let same = |cand: &Candidate| {
            cand.mode == mode
                && (cand.prior_scale - prior_scale).abs() <= 1e-12 * prior_scale
                && cand.values.iter().zip(fitted_values.clone()).all(|(a, b)| (a - b).abs() <= 1e-9)
        };
        let Some(found) = candidates.iter().position(same) else {
            return Err(format!("fitted feature column {c} matches no configured seasonality or holiday"));
        };
        let candidate = candidates.remove(found);
        columns.push(FeatureColumn { feature: candidate.feature, mode, beta: params.beta[c] });
    }
    Ok(columns)
}
