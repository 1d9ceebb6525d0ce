//! [`FittedSet`]: fitted Prophet models as plain data, and the Prophet forecast formula that uses them.
//!
//! augurs-prophet can only forecast with the `Prophet` object that did the fit (it cannot be saved or rebuilt
//! from parameters), so forecasting is done here, from the saved parameters, with Prophet's formula:
//!
//! ```text
//! t       = (time - t_start) / t_span                     0 at the first training row, 1 at the last
//! trend   = y_scale * ((k + sum of deltas of changepoints <= t) * t + m - sum of changepoint * delta)
//! add     = y_scale * sum of beta * feature(time)          over additive columns
//! mult    =           sum of beta * feature(time)          over multiplicative columns
//! yhat    = trend * (1 + mult) + add
//! ```
//!
//! Features are Fourier terms `sin`/`cos(2 pi h days_since_epoch / period)`, holiday indicators, extra
//! regressors `(x - mu) / std` (their values are given with each forecast request) and a constant (the shift
//! [`FittedSet::rescale`] adds). The arithmetic follows augurs-prophet operation for operation, so `yhat` equals its forecast (a unit test
//! holds the two within 1e-9 relative).
//!
//! Intervals are simulated as in Prophet (MAP fit, so without seasonal uncertainty): each of
//! `uncertainty_samples` draws adds future trend changepoints (a Poisson process with the fitted changepoint
//! rate on (1, t_max], deltas from a Laplace with the mean absolute fitted delta as scale) and Gaussian
//! observation noise with the fitted `sigma_obs`; `lower`/`upper` are the percentiles
//! `(1 -/+ interval_width) / 2` of the draws. The draws come from a ChaCha8 generator seeded with
//! `uncertainty_seed + target index`, so a saved model gives the same intervals in every process. They
//! depend on the whole request, since `t_max` is the latest requested time.

use std::f64::consts::PI;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Distribution, Exp1, Normal, Poisson, Uniform};
use serde::{Deserialize, Serialize};

use crate::{ProphetConfig, ProphetError, SeasonalityMode};

/// The JSON layout version [`FittedSet::to_json`] writes. Version 2 added the regressor and constant features;
/// version 1 files (without them) are read too.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest layout [`FittedSet::from_json`] reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

pub(crate) const DAY_S: i64 = 86_400;

/// Fitted models, one per target, with everything needed to forecast without refitting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedSet {
    /// [`FORMAT_VERSION`] when written by this crate.
    pub format_version: u32,
    /// The settings of the fit; forecasting uses `interval_width`, `uncertainty_samples`, `uncertainty_seed`.
    pub config: ProphetConfig,
    /// In the order of the targets given to the fit.
    pub targets: Vec<FittedTarget>,
}

/// One fitted Prophet model. Scaled units are Prophet's: values divided by `y_scale`, time as `t`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedTarget {
    /// The target column.
    pub name: String,
    /// First training timestamp, ms since the epoch.
    pub train_start_ms: i64,
    /// Last training timestamp, ms since the epoch.
    pub train_end_ms: i64,
    /// Number of training rows.
    pub train_rows: usize,
    /// Prophet's scaled units times this are forecast units: the fit's absmax scaling (max |y|, or 1 if all
    /// are 0), divided by the `scale` of a later [`FittedSet::rescale`].
    pub y_scale: f64,
    /// Time origin in whole seconds: the first training row.
    pub t_start_s: i64,
    /// Seconds from the first to the last training row: `t = (seconds - t_start_s) / t_span_s`.
    pub t_span_s: f64,
    /// Trend growth rate before the first changepoint, scaled units per unit of `t`.
    pub k: f64,
    /// Trend offset at `t = 0`, scaled units.
    pub m: f64,
    /// Potential changepoints in `t` units, ascending (Prophet stores one dummy changepoint at 0 when there
    /// are none).
    pub changepoints_t: Vec<f64>,
    /// Change of the growth rate at each changepoint.
    pub deltas: Vec<f64>,
    /// Standard deviation of the observation noise, scaled units.
    pub sigma_obs: f64,
    /// Seasonal and holiday columns in the fit's column order, each with its coefficient.
    pub columns: Vec<FeatureColumn>,
}

/// One regression column of the model: a feature of time, how it combines with the trend, its coefficient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureColumn {
    pub feature: Feature,
    pub mode: SeasonalityMode,
    pub beta: f64,
}

/// A feature of time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feature {
    /// `sin` or `cos` of `2 pi harmonic days_since_epoch / period_days`.
    Fourier { seasonality: String, period_days: f64, harmonic: u32, wave: Wave },
    /// 1 on the listed UTC days of the holiday, else 0.
    Holiday { name: String, day_starts_s: Vec<i64> },
    /// An extra regressor: `(x - mu) / std`, with `x` the column's value at the forecast time.
    Regressor { name: String, mu: f64, std: f64 },
    /// 1 at every time: a fixed shift of the forecast (what [`FittedSet::rescale`] adds).
    Constant,
}

/// Which half of a Fourier pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wave {
    Sin,
    Cos,
}

/// The forecast of one target at the requested timestamps, in original units.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    pub name: String,
    pub yhat: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

impl Feature {
    /// The feature at `time_s` (whole seconds since the epoch); 0 for a regressor, whose value is not a
    /// function of time.
    pub(crate) fn value(&self, time_s: i64) -> f64 {
        match self {
            Feature::Fourier { period_days, harmonic, wave, .. } => {
                // Same operations in the same order as augurs-prophet, so the values are bit-identical.
                let x = time_s as f64 / 3600.0 / 24.0 * PI * 2.0;
                let angle = x * f64::from(*harmonic) / period_days;
                match wave {
                    Wave::Sin => angle.sin(),
                    Wave::Cos => angle.cos(),
                }
            }
            Feature::Holiday { day_starts_s, .. } => {
                let on_holiday = day_starts_s.iter().any(|start| *start <= time_s && time_s < start + DAY_S);
                if on_holiday { 1.0 } else { 0.0 }
            }
            Feature::Regressor { .. } => 0.0,
            Feature::Constant => 1.0,
        }
    }
}

/// The deterministic parts of a forecast, per timestamp.
struct Components {
    t: Vec<f64>,
    /// Original units.
    trend: Vec<f64>,
    /// Original units.
    additive: Vec<f64>,
    /// Relative to the trend.
    multiplicative: Vec<f64>,
}

impl Components {
    fn yhat(&self) -> Vec<f64> {
        (0..self.t.len()).map(|i| self.trend[i] * (1.0 + self.multiplicative[i]) + self.additive[i]).collect()
    }
}

impl FittedTarget {
    /// `regressors`: each regressor's values at `timestamps_ms`.
    fn components(&self, timestamps_ms: &[i64], regressors: &[(String, Vec<f64>)]) -> Result<Components, ProphetError> {
        let seconds: Vec<i64> = timestamps_ms.iter().map(|ms| ms.div_euclid(1000)).collect();
        let t: Vec<f64> = seconds.iter().map(|s| (s - self.t_start_s) as f64 / self.t_span_s).collect();
        let trend = t.iter().map(|t| self.scaled_trend(*t) * self.y_scale).collect();
        let mut additive = vec![0.0; t.len()];
        let mut multiplicative = vec![0.0; t.len()];
        for column in &self.columns {
            let sum = match column.mode {
                SeasonalityMode::Additive => &mut additive,
                SeasonalityMode::Multiplicative => &mut multiplicative,
            };
            if let Feature::Regressor { name, mu, std } = &column.feature {
                let Some((_, x)) = regressors.iter().find(|(given, _)| given == name) else {
                    return Err(ProphetError::InvalidInput(format!(
                        "target `{}` needs regressor `{name}` at every forecast time",
                        self.name
                    )));
                };
                if x.len() != seconds.len() {
                    return Err(ProphetError::InvalidInput(format!(
                        "regressor `{name}`: {} values for {} forecast times",
                        x.len(),
                        seconds.len()
                    )));
                }
                for (total, x) in sum.iter_mut().zip(x) {
                    *total += column.beta * ((x - mu) / std);
                }
            } else {
                for (total, time_s) in sum.iter_mut().zip(&seconds) {
                    *total += column.beta * column.feature.value(*time_s);
                }
            }
        }
        additive.iter_mut().for_each(|a| *a *= self.y_scale);
        Ok(Components { t, trend, additive, multiplicative })
    }

    /// Piecewise-linear trend at `t`, scaled units.
    pub(crate) fn scaled_trend(&self, t: f64) -> f64 {
        let (mut rate, mut offset) = (self.k, self.m);
        for (changepoint, delta) in self.changepoints_t.iter().zip(&self.deltas) {
            if *changepoint <= t {
                rate += delta;
                offset += -changepoint * delta;
            }
        }
        t * rate + offset
    }

    /// `(lower, upper)` per timestamp from simulated trend changes and observation noise (see the module docs).
    fn simulate_interval(
        &self,
        c: &Components,
        yhat: &[f64],
        cfg: &ProphetConfig,
        seed: u64,
    ) -> Result<(Vec<f64>, Vec<f64>), ProphetError> {
        let n_samples = cfg.uncertainty_samples as usize;
        if n_samples == 0 {
            return Ok((yhat.to_vec(), yhat.to_vec()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t_max = c.t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Future changepoints arrive at the fitted rate: as many per unit of t as in the history.
        let new_changepoints =
            (t_max > 1.0).then(|| Poisson::new(self.changepoints_t.len() as f64 * (t_max - 1.0)).ok()).flatten();
        let where_new = (t_max > 1.0).then(|| Uniform::new(1.0, t_max));
        let delta_scale = self.deltas.iter().map(|d| d.abs()).sum::<f64>() / self.deltas.len().max(1) as f64 + 1e-8;
        let noise = Normal::new(0.0, self.sigma_obs)
            .map_err(|e| ProphetError::InvalidModel(format!("target `{}`: sigma_obs: {e}", self.name)))?;

        let mut draws = vec![Vec::with_capacity(n_samples); c.t.len()];
        let mut changes: Vec<(f64, f64)> = Vec::new();
        for _ in 0..n_samples {
            changes.clear();
            if let (Some(count), Some(place)) = (&new_changepoints, &where_new) {
                let n_new = count.sample(&mut rng).round() as usize;
                let times: Vec<f64> = (0..n_new).map(|_| place.sample(&mut rng)).collect();
                for time in times {
                    // Laplace(0, b) is b times the difference of two standard exponentials.
                    let e1: f64 = Exp1.sample(&mut rng);
                    let e2: f64 = Exp1.sample(&mut rng);
                    changes.push((time, delta_scale * (e1 - e2)));
                }
            }
            for (i, draws) in draws.iter_mut().enumerate() {
                let t = c.t[i];
                let extra: f64 = changes.iter().filter(|(at, _)| *at <= t).map(|(at, delta)| delta * (t - at)).sum();
                let trend = c.trend[i] + extra * self.y_scale;
                let y = trend * (1.0 + c.multiplicative[i]) + c.additive[i] + noise.sample(&mut rng) * self.y_scale;
                draws.push(y);
            }
        }
        let lower_q = (1.0 - cfg.interval_width) / 2.0;
        let upper_q = (1.0 + cfg.interval_width) / 2.0;
        let mut lower = Vec::with_capacity(draws.len());
        let mut upper = Vec::with_capacity(draws.len());
        for mut d in draws {
            d.sort_by(f64::total_cmp);
            lower.push(quantile_of_sorted(&d, lower_q));
            upper.push(quantile_of_sorted(&d, upper_q));
        }
        Ok((lower, upper))
    }

    fn check(&self) -> Result<(), String> {
        let finite = |name: &str, v: f64| if v.is_finite() { Ok(()) } else { Err(format!("{name} is {v}")) };
        let positive =
            |name: &str, v: f64| if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{name} is {v}")) };
        positive("y_scale", self.y_scale)?;
        positive("t_span_s", self.t_span_s)?;
        positive("sigma_obs", self.sigma_obs)?;
        finite("k", self.k)?;
        finite("m", self.m)?;
        if self.changepoints_t.len() != self.deltas.len() {
            return Err(format!("{} changepoints but {} deltas", self.changepoints_t.len(), self.deltas.len()));
        }
        for (cp, delta) in self.changepoints_t.iter().zip(&self.deltas) {
            finite("a changepoint", *cp)?;
            finite("a delta", *delta)?;
        }
        for column in &self.columns {
            finite("a beta", column.beta)?;
            match &column.feature {
                Feature::Fourier { period_days, harmonic, .. } => {
                    positive("a period_days", *period_days)?;
                    positive("a harmonic", f64::from(*harmonic))?;
                }
                Feature::Regressor { mu, std, .. } => {
                    finite("a regressor mu", *mu)?;
                    positive("a regressor std", *std)?;
                }
                Feature::Holiday { .. } | Feature::Constant => {}
            }
        }
        Ok(())
    }
}

/// Linear interpolation between order statistics (numpy's default percentile).
fn quantile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
}

impl FittedSet {
    /// Forecasts every target at `timestamps_ms` (ms since the epoch, any order; sub-second parts are
    /// dropped as in the fit). Memory grows with timestamps x `uncertainty_samples`. A model with extra
    /// regressors needs [`FittedSet::predict_with_regressors`].
    pub fn predict(&self, timestamps_ms: &[i64]) -> Result<Vec<Forecast>, ProphetError> {
        self.predict_with_regressors(timestamps_ms, &[])
    }

    /// [`FittedSet::predict`], with each extra regressor's values at `timestamps_ms` (name, values).
    pub fn predict_with_regressors(
        &self,
        timestamps_ms: &[i64],
        regressors: &[(String, Vec<f64>)],
    ) -> Result<Vec<Forecast>, ProphetError> {
        self.check()?;
        self.targets
            .iter()
            .enumerate()
            .map(|(index, target)| {
                let components = target.components(timestamps_ms, regressors)?;
                let yhat = components.yhat();
                let seed = self.config.uncertainty_seed.wrapping_add(index as u64);
                let (lower, upper) = target.simulate_interval(&components, &yhat, &self.config, seed)?;
                Ok(Forecast { name: target.name.clone(), yhat, lower, upper })
            })
            .collect()
    }

    /// Re-expresses target `name`'s forecasts (and intervals) as `(y - offset) / scale`, e.g. in the units of
    /// a dataset's scaler when the fit was in original units. Exact: the trend, additive terms and noise are
    /// divided by `scale` (`y_scale`), multiplicative terms are relative and stay, and `-offset / scale` is
    /// added as a [`Feature::Constant`] column.
    pub fn rescale(&mut self, name: &str, offset: f64, scale: f64) -> Result<(), ProphetError> {
        if !(offset.is_finite() && scale.is_finite() && scale > 0.0) {
            return Err(ProphetError::InvalidInput(format!(
                "rescale `{name}`: offset must be finite and scale positive, got {offset} and {scale}"
            )));
        }
        let target = self
            .targets
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| ProphetError::InvalidInput(format!("rescale: no fitted target `{name}`")))?;
        if offset != 0.0 {
            target.columns.push(FeatureColumn {
                feature: Feature::Constant,
                mode: SeasonalityMode::Additive,
                beta: -offset / target.y_scale,
            });
        }
        target.y_scale /= scale;
        Ok(())
    }

    /// The JSON form (`prophet.json`).
    pub fn to_json(&self) -> String {
        // Plain structs of numbers and strings: serialising cannot fail.
        serde_json::to_string_pretty(self).expect("FittedSet serialises to JSON")
    }

    /// Reads [`FittedSet::to_json`]'s output back, checking the version and the model's shape.
    pub fn from_json(s: &str) -> Result<FittedSet, ProphetError> {
        let set: FittedSet = serde_json::from_str(s)?;
        set.check()?;
        Ok(set)
    }

    fn check(&self) -> Result<(), ProphetError> {
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(ProphetError::InvalidModel(format!(
                "format_version {} (this build reads {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                self.format_version
            )));
        }
        self.config.validate()?;
        for target in &self.targets {
            target.check().map_err(|msg| ProphetError::InvalidModel(format!("target `{}`: {msg}", target.name)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model by hand: y = 10 * trend, one changepoint at t = 0.5, a daily sine of amplitude 0.1 (scaled).
    fn hand_made(mode: SeasonalityMode) -> FittedSet {
        let target = FittedTarget {
            name: "y".into(),
            train_start_ms: 0,
            train_end_ms: 10 * DAY_S * 1000,
            train_rows: 241,
            y_scale: 10.0,
            t_start_s: 0,
            t_span_s: (10 * DAY_S) as f64,
            k: 1.0,
            m: 0.5,
            changepoints_t: vec![0.5],
            deltas: vec![-2.0],
            sigma_obs: 0.01,
            columns: vec![FeatureColumn {
                feature: Feature::Fourier {
                    seasonality: "daily".into(),
                    period_days: 1.0,
                    harmonic: 1,
                    wave: Wave::Sin,
                },
                mode,
                beta: 0.1,
            }],
        };
        FittedSet { format_version: FORMAT_VERSION, config: ProphetConfig::default(), targets: vec![target] }
    }

    #[test]
    fn trend_bends_at_the_changepoint() {
        let set = hand_made(SeasonalityMode::Additive);
        let target = &set.targets[0];
        // Slope 1 up to t = 0.5, then 1 - 2 = -1; continuous at the changepoint.
        assert!((target.scaled_trend(0.25) - 0.75).abs() < 1e-12);
        assert!((target.scaled_trend(0.5) - 1.0).abs() < 1e-12);
        assert!((target.scaled_trend(0.75) - 0.75).abs() < 1e-12);
        assert!((target.scaled_trend(1.5) - 0.0).abs() < 1e-12);
    }

    #[test]
    fn additive_and_multiplicative_combine_as_prophet() {
        // At 06:00 on day 5 (t = 0.525): trend = 10 * (1 - 0.025) = 9.75, daily sine = 1.
        let at_ms = (5 * DAY_S + 6 * 3600) * 1000;
        let additive = hand_made(SeasonalityMode::Additive).predict(&[at_ms]).expect("valid model");
        assert!((additive[0].yhat[0] - (9.75 + 10.0 * 0.1)).abs() < 1e-9, "{:?}", additive[0].yhat);
        let multiplicative = hand_made(SeasonalityMode::Multiplicative).predict(&[at_ms]).expect("valid model");
        assert!((multiplicative[0].yhat[0] - 9.75 * 1.1).abs() < 1e-9, "{:?}", multiplicative[0].yhat);
    }

    #[test]
    fn intervals_cover_the_forecast_and_widen_with_the_horizon() {
        let set = hand_made(SeasonalityMode::Additive);
        let times: Vec<i64> = (0..40).map(|d| d * DAY_S * 1000 / 2).collect();
        let forecast = &set.predict(&times).expect("valid model")[0];
        for i in 0..times.len() {
            assert!(forecast.lower[i] < forecast.yhat[i] && forecast.yhat[i] < forecast.upper[i], "row {i}");
        }
        // In the history the band is the noise alone: 80 % of a normal is +-1.28 sd = 0.128 * 10 * 2 wide.
        let width = |i: usize| forecast.upper[i] - forecast.lower[i];
        assert!((width(10) - 0.256).abs() < 0.05, "history width {}", width(10));
        assert!(width(39) > 3.0 * width(10), "far future should be wider: {} vs {}", width(39), width(10));
        // Same seed, same intervals.
        assert_eq!(set.predict(&times).expect("valid model")[0], *forecast);
    }

    #[test]
    fn rescale_is_exact_in_both_modes() {
        let times: Vec<i64> = (0..30).map(|h| (9 * DAY_S + h * 7200) * 1000).collect();
        for mode in [SeasonalityMode::Additive, SeasonalityMode::Multiplicative] {
            let set = hand_made(mode);
            let before = &set.predict(&times).expect("valid model")[0];
            let mut rescaled = set.clone();
            rescaled.rescale("y", 3.0, 4.0).expect("rescale");
            let after =
                &FittedSet::from_json(&rescaled.to_json()).expect("round trip").predict(&times).expect("valid")[0];
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            for i in 0..times.len() {
                assert!(close((before.yhat[i] - 3.0) / 4.0, after.yhat[i]), "{mode:?} yhat row {i}");
                assert!(close((before.lower[i] - 3.0) / 4.0, after.lower[i]), "{mode:?} lower row {i}");
                assert!(close((before.upper[i] - 3.0) / 4.0, after.upper[i]), "{mode:?} upper row {i}");
            }
        }
        let err = hand_made(SeasonalityMode::Additive).rescale("z", 0.0, 1.0).expect_err("no target z").to_string();
        assert!(err.contains("no fitted target `z`"), "{err}");
    }

    #[test]
    fn regressors_are_standardised_and_required() {
        let mut set = hand_made(SeasonalityMode::Additive);
        set.targets[0].columns.push(FeatureColumn {
            feature: Feature::Regressor { name: "temp".into(), mu: 10.0, std: 2.0 },
            mode: SeasonalityMode::Additive,
            beta: 0.5,
        });
        set.config.uncertainty_samples = 0;
        // At t = 0: trend 10 * 0.5 = 5, daily sine 0, regressor 10 * 0.5 * (14 - 10) / 2 = 10.
        let forecast = set.predict_with_regressors(&[0], &[("temp".into(), vec![14.0])]).expect("forecast");
        assert!((forecast[0].yhat[0] - 15.0).abs() < 1e-12, "{:?}", forecast[0].yhat);
        let err = set.predict(&[0]).expect_err("no regressor values").to_string();
        assert!(err.contains("needs regressor `temp`"), "{err}");
        let err =
            set.predict_with_regressors(&[0, 1000], &[("temp".into(), vec![14.0])]).expect_err("short").to_string();
        assert!(err.contains("regressor `temp`: 1 values for 2 forecast times"), "{err}");
    }

    #[test]
    fn no_samples_means_no_interval() {
        let mut set = hand_made(SeasonalityMode::Additive);
        set.config.uncertainty_samples = 0;
        let forecast = &set.predict(&[0, 1000]).expect("valid model")[0];
        assert_eq!(forecast.lower, forecast.yhat);
        assert_eq!(forecast.upper, forecast.yhat);
    }

    #[test]
    fn holiday_is_on_for_its_utc_day_only() {
        let easter = Feature::Holiday { name: "easter".into(), day_starts_s: vec![1_522_540_800] };
        assert_eq!(easter.value(1_522_540_800 - 1), 0.0);
        assert_eq!(easter.value(1_522_540_800), 1.0);
        assert_eq!(easter.value(1_522_540_800 + DAY_S - 1), 1.0);
        assert_eq!(easter.value(1_522_540_800 + DAY_S), 0.0);
    }

    #[test]
    fn from_json_rejects_other_versions_and_broken_models() {
        let mut set = hand_made(SeasonalityMode::Additive);
        assert_eq!(FittedSet::from_json(&set.to_json()).expect("round trip"), set);
        set.format_version = FORMAT_VERSION + 1;
        let err = FittedSet::from_json(&set.to_json()).expect_err("a newer version").to_string();
        assert!(err.contains(&format!("format_version {}", FORMAT_VERSION + 1)), "{err}");
        set.format_version = OLDEST_FORMAT_VERSION;
        assert_eq!(FittedSet::from_json(&set.to_json()).expect("version 1 still reads"), set);
        set.format_version = FORMAT_VERSION;
        set.targets[0].deltas.push(0.0);
        let err = FittedSet::from_json(&set.to_json()).expect_err("shape").to_string();
        assert!(err.contains("target `y`: 1 changepoints but 2 deltas"), "{err}");
        assert!(FittedSet::from_json("{}").is_err());
    }
}
