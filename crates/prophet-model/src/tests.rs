//! Fits on synthetic series with known answers. One [`Fitter`] (6 s to create in a debug build) serves every
//! test. Fits are not bit-reproducible, so results are checked against tolerances.

use std::f64::consts::TAU;
use std::sync::OnceLock;

use augurs_prophet::{PredictionData, Prophet};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::fit::RecordingOptimizer;
use crate::model::FORMAT_VERSION;
use crate::*;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Monday 2024-01-01 00:00 UTC.
const START_MS: i64 = 1_704_067_200_000;

fn fitter() -> &'static Fitter {
    static FITTER: OnceLock<Fitter> = OnceLock::new();
    FITTER.get_or_init(Fitter::new)
}

/// `n` timestamps `step_ms` apart from [`START_MS`], and each one's age in days.
fn timeline(n: usize, step_ms: i64) -> (Vec<i64>, Vec<f64>) {
    let ms: Vec<i64> = (0..n as i64).map(|i| START_MS + i * step_ms).collect();
    let days = ms.iter().map(|t| (t - START_MS) as f64 / DAY_MS as f64).collect();
    (ms, days)
}

/// Standard normal noise, the same on every run.
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("valid normal");
    (0..n).map(|_| normal.sample(&mut rng)).collect()
}

/// Trend rising 2 per day for 28 days, then falling 1 per day.
fn true_trend(day: f64) -> f64 {
    if day < 28.0 { 500.0 + 2.0 * day } else { 556.0 - (day - 28.0) }
}

/// The hourly series the recovery tests use: 8 weeks of trend with a changepoint at day 28, daily sine of
/// amplitude 10 and weekly cosine of amplitude 5, plus unit noise.
fn additive_series() -> (Vec<i64>, Vec<f64>) {
    let (ms, days) = timeline(56 * 24, HOUR_MS);
    let eps = noise(ms.len(), 1);
    let y = days
        .iter()
        .zip(eps)
        .map(|(d, e)| true_trend(*d) + 10.0 * (TAU * d).sin() + 5.0 * (TAU * d / 7.0).cos() + e)
        .collect();
    (ms, y)
}

fn seconds(ms: &[i64]) -> Vec<i64> {
    ms.iter().map(|t| t / 1000).collect()
}

/// The trend of a fitted target at `day` days after [`START_MS`], original units.
fn fitted_trend(target: &FittedTarget, day: f64) -> f64 {
    let seconds = (START_MS / 1000) as f64 + day * 86_400.0;
    target.scaled_trend((seconds - target.t_start_s as f64) / target.t_span_s) * target.y_scale
}

/// Half the peak-to-peak range of one seasonality's contribution over `days` days (sampled every 10 min).
/// Additive contributions are in original units, multiplicative ones relative to the trend.
fn amplitude(target: &FittedTarget, seasonality: &str, days: i64) -> f64 {
    let values: Vec<f64> = (0..days * 144)
        .map(|i| {
            let s = START_MS / 1000 + i * 600;
            let mut sum = 0.0;
            for c in &target.columns {
                if matches!(&c.feature, Feature::Fourier { seasonality: name, .. } if name == seasonality) {
                    let unit = if c.mode == SeasonalityMode::Additive { target.y_scale } else { 1.0 };
                    sum += c.beta * c.feature.value(s) * unit;
                }
            }
            sum
        })
        .collect();
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    (max - min) / 2.0
}

/// Our forecast from the saved parameters against augurs' own forecast from its fitted model.
fn assert_matches_augurs(prophet: &Prophet<RecordingOptimizer>, target: &FittedTarget, times_ms: &[i64]) {
    assert_matches_augurs_with(prophet, target, times_ms, &[]);
}

/// [`assert_matches_augurs`] for a model with extra regressors (raw values at `times_ms`).
fn assert_matches_augurs_with(
    prophet: &Prophet<RecordingOptimizer>,
    target: &FittedTarget,
    times_ms: &[i64],
    regressors: &[(String, Vec<f64>)],
) {
    let mut request = PredictionData::new(seconds(times_ms));
    if !regressors.is_empty() {
        // augurs was given the regressors standardised (see fit.rs), so it forecasts from standardised values.
        let standardised = regressors
            .iter()
            .map(|(name, x)| {
                let (mu, std) = target
                    .columns
                    .iter()
                    .find_map(|c| match &c.feature {
                        Feature::Regressor { name: n, mu, std } if n == name => Some((*mu, *std)),
                        _ => None,
                    })
                    .expect("a fitted regressor column");
                (name.clone(), x.iter().map(|v| (v - mu) / std).collect())
            })
            .collect();
        request = request.with_regressors(standardised).expect("regressors line up");
    }
    let theirs = prophet.predict(request).expect("augurs forecasts").yhat.point;
    let cfg = ProphetConfig { uncertainty_samples: 0, ..Default::default() };
    let set = FittedSet { format_version: FORMAT_VERSION, config: cfg, targets: vec![target.clone()] };
    let ours = &set.predict_with_regressors(times_ms, regressors).expect("valid model")[0].yhat;
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs() / b.abs().max(1e-9)).fold(0.0, f64::max);
    assert!(worst <= 1e-9, "largest relative difference to augurs: {worst:e}");
}

#[test]
fn fit_recovers_trend_changepoint_and_seasonal_amplitudes() {
    let (ms, y) = additive_series();
    let cfg = ProphetConfig::default();
    let (prophet, target) = fitter().fit_target(&cfg, &seconds(&ms), "load", &y, &[]).expect("fit");

    let slope_before = (fitted_trend(&target, 24.0) - fitted_trend(&target, 4.0)) / 20.0;
    let slope_after = (fitted_trend(&target, 54.0) - fitted_trend(&target, 34.0)) / 20.0;
    assert!((slope_before - 2.0).abs() < 0.05, "slope before the changepoint {slope_before}, expected 2 +- 0.05");
    assert!((slope_after + 1.0).abs() < 0.05, "slope after the changepoint {slope_after}, expected -1 +- 0.05");

    // The changepoint: the fitted trend peaks where the true one does (day 28, at 556).
    let (peak_day, peak) = (0..56 * 24)
        .map(|h| (h as f64 / 24.0, fitted_trend(&target, h as f64 / 24.0)))
        .fold((0.0, f64::MIN), |best, (day, v)| if v > best.1 { (day, v) } else { best });
    assert!((peak_day - 28.0).abs() <= 1.5, "trend peaks on day {peak_day}, expected 28 +- 1.5");
    assert!((peak - 556.0).abs() < 2.0, "trend peak {peak}, expected 556 +- 2");

    let daily = amplitude(&target, "daily", 1);
    let weekly = amplitude(&target, "weekly", 7);
    assert!((daily - 10.0).abs() < 0.3, "daily amplitude {daily}, expected 10 +- 0.3");
    assert!((weekly - 5.0).abs() < 0.25, "weekly amplitude {weekly}, expected 5 +- 0.25");

    // In-sample and two weeks ahead, our formula on the saved parameters is augurs' forecast.
    let (ahead, _) = timeline(70 * 24, HOUR_MS);
    assert_matches_augurs(&prophet, &target, &ahead);
}

#[test]
fn intervals_agree_with_augurs_simulation() {
    let (ms, y) = additive_series();
    // 4000 draws on each side keep the Monte Carlo error of a percentile near 2 % of the band.
    let cfg = ProphetConfig { uncertainty_samples: 4000, ..Default::default() };
    let (mut prophet, target) = fitter().fit_target(&cfg, &seconds(&ms), "load", &y, &[]).expect("fit");
    prophet.opts_mut().uncertainty_samples = 4000;
    let future: Vec<i64> = (0..14 * 24).map(|h| START_MS + 56 * DAY_MS + h * HOUR_MS).collect();
    let theirs = prophet.predict(PredictionData::new(seconds(&future))).expect("augurs forecasts").yhat;
    let (Some(their_lower), Some(their_upper)) = (theirs.lower, theirs.upper) else {
        panic!("augurs returned no interval");
    };
    let set = FittedSet { format_version: FORMAT_VERSION, config: cfg, targets: vec![target] };
    let ours = &set.predict(&future).expect("valid model")[0];
    // Both are simulations with different random numbers: compare the bands, not the draws.
    for i in (0..future.len()).step_by(24) {
        let width = their_upper[i] - their_lower[i];
        let (lower, upper) = ((ours.lower[i], their_lower[i]), (ours.upper[i], their_upper[i]));
        assert!((lower.0 - lower.1).abs() < 0.15 * width, "lower at hour {i}: {lower:?}, band width {width}");
        assert!((upper.0 - upper.1).abs() < 0.15 * width, "upper at hour {i}: {upper:?}, band width {width}");
    }
}

#[test]
fn multiplicative_mode_recovers_relative_amplitude() {
    // Trend 100 -> 300 over 3 weeks; the daily cycle is +-30 % of it.
    let (ms, days) = timeline(21 * 24, HOUR_MS);
    let eps = noise(ms.len(), 2);
    let y: Vec<f64> =
        days.iter().zip(eps).map(|(d, e)| (100.0 + 200.0 * d / 21.0) * (1.0 + 0.3 * (TAU * d).sin()) + e).collect();
    let cfg = ProphetConfig { seasonality_mode: SeasonalityMode::Multiplicative, ..Default::default() };
    let (prophet, target) = fitter().fit_target(&cfg, &seconds(&ms), "load", &y, &[]).expect("fit");

    assert!(target.columns.iter().all(|c| c.mode == SeasonalityMode::Multiplicative));
    let daily = amplitude(&target, "daily", 1);
    assert!((daily - 0.3).abs() < 0.015, "relative daily amplitude {daily}, expected 0.3 +- 0.015");
    let slope = (fitted_trend(&target, 18.0) - fitted_trend(&target, 3.0)) / 15.0;
    assert!((slope - 200.0 / 21.0).abs() < 0.1, "slope {slope}, expected 9.52 +- 0.1");
    let (ahead, _) = timeline(28 * 24, HOUR_MS);
    assert_matches_augurs(&prophet, &target, &ahead);
}

#[test]
fn holidays_and_custom_seasonalities_are_fitted_and_forecast() {
    // 2-minute samples over 10 days, a 12-hour cycle, and +50 on two holidays (days 3 and 7).
    let (ms, days) = timeline(10 * 720, 120_000);
    let eps = noise(ms.len(), 3);
    let y: Vec<f64> = days
        .iter()
        .zip(eps)
        .map(|(d, e)| {
            let holiday = if d.floor() == 3.0 || d.floor() == 7.0 { 50.0 } else { 0.0 };
            1000.0 + 8.0 * (TAU * d * 2.0).sin() + holiday + e
        })
        .collect();
    let cfg = ProphetConfig {
        daily_seasonality: SeasonalitySwitch::Off,
        custom_seasonalities: vec![CustomSeasonality { name: "half_day".into(), period_days: 0.5, fourier_order: 2 }],
        holidays: vec![HolidaySpec {
            name: "fiesta".into(),
            dates: vec!["2024-01-04".into(), "2024-01-08".into(), "2024-01-12".into()],
        }],
        ..Default::default()
    };
    let (prophet, target) = fitter().fit_target(&cfg, &seconds(&ms), "load", &y, &[]).expect("fit");

    let holiday = target
        .columns
        .iter()
        .find(|c| matches!(c.feature, Feature::Holiday { .. }))
        .map(|c| c.beta * target.y_scale)
        .expect("a holiday column");
    assert!((holiday - 50.0).abs() < 2.5, "holiday effect {holiday}, expected 50 +- 2.5");
    let half_day = amplitude(&target, "half_day", 1);
    assert!((half_day - 8.0).abs() < 0.4, "12-hour amplitude {half_day}, expected 8 +- 0.4");
    // The forecast covers the third, future holiday (day 11).
    let (ahead, _) = timeline(13 * 720, 120_000);
    assert_matches_augurs(&prophet, &target, &ahead);
}

#[test]
fn us_holidays_get_their_own_effects() {
    // Hourly, June and July 2024: +30 on Independence Day (Thursday 4 July), nothing on Juneteenth (19 June).
    let june_1_ms = 1_717_200_000_000;
    let ms: Vec<i64> = (0..61 * 24).map(|h| june_1_ms + h * HOUR_MS).collect();
    let eps = noise(ms.len(), 4);
    let y: Vec<f64> = ms
        .iter()
        .zip(eps)
        .map(|(t, e)| {
            let day = (t - june_1_ms) as f64 / DAY_MS as f64;
            let holiday = if day.floor() == 33.0 { 30.0 } else { 0.0 };
            300.0 + 0.2 * day + 6.0 * (TAU * day).sin() + holiday + e
        })
        .collect();
    let cfg = ProphetConfig { country_holidays: Some("US".into()), ..Default::default() };
    let (prophet, target) = fitter().fit_target(&cfg, &seconds(&ms), "load", &y, &[]).expect("fit");

    let effect = |name: &str| {
        target
            .columns
            .iter()
            .find(|c| matches!(&c.feature, Feature::Holiday { name: n, .. } if n == name))
            .map(|c| c.beta * target.y_scale)
            .unwrap_or_else(|| panic!("no column for {name}"))
    };
    let independence = effect("Independence Day");
    assert!((independence - 30.0).abs() < 2.0, "Independence Day effect {independence}, expected 30 +- 2");
    let juneteenth = effect("Juneteenth National Independence Day");
    assert!(juneteenth.abs() < 2.0, "Juneteenth effect {juneteenth}, expected 0 +- 2");
    // Every US holiday of 2024 is a column (Python keeps those outside the data too), with future dates.
    let holidays = target.columns.iter().filter(|c| matches!(c.feature, Feature::Holiday { .. })).count();
    assert_eq!(holidays, 11, "holiday columns");
    // Labor Day (2 September) is forecast with its (zero) effect, as augurs does.
    let (ahead, _) = timeline(100 * 24, HOUR_MS);
    let ahead: Vec<i64> = ahead.iter().map(|t| t - START_MS + june_1_ms).collect();
    assert_matches_augurs(&prophet, &target, &ahead);
}

#[test]
fn extra_regressor_effect_is_recovered() {
    // Three weeks hourly: y = trend + daily cycle + 4 per unit of a noisy "temperature" around 20.
    let (ms, days) = timeline(21 * 24, HOUR_MS);
    let temperature: Vec<f64> = noise(ms.len(), 5).iter().map(|z| 20.0 + 3.0 * z).collect();
    let eps = noise(ms.len(), 6);
    let y: Vec<f64> = (0..ms.len())
        .map(|i| 200.0 + 0.5 * days[i] + 10.0 * (TAU * days[i]).sin() + 4.0 * temperature[i] + eps[i])
        .collect();
    let cfg = ProphetConfig { regressors: vec![RegressorSpec::new("temperature")], ..Default::default() };
    let regressors = vec![("temperature".to_string(), temperature)];
    let (prophet, target) = fitter().fit_target(&cfg, &seconds(&ms), "load", &y, &regressors).expect("fit");

    let (per_degree, mu) = target
        .columns
        .iter()
        .find_map(|c| match &c.feature {
            Feature::Regressor { mu, std, .. } => Some((c.beta * target.y_scale / std, *mu)),
            _ => None,
        })
        .expect("a regressor column");
    assert!((per_degree - 4.0).abs() < 0.1, "effect per degree {per_degree}, expected 4 +- 0.1");
    assert!((mu - 20.0).abs() < 0.5, "standardised around the training mean, got {mu}");
    // A week ahead with new temperatures: our forecast is augurs'.
    let (ahead, _) = timeline(28 * 24, HOUR_MS);
    let future_temperature: Vec<f64> = noise(ahead.len(), 7).iter().map(|z| 20.0 + 3.0 * z).collect();
    assert_matches_augurs_with(&prophet, &target, &ahead, &[("temperature".to_string(), future_temperature)]);
    // The whole set needs the regressor's values to forecast.
    let fitted = fitter().fit_all(&cfg, &ms, &[("load".into(), y)], &regressors, 1).expect("fit");
    let err = fitted.predict(&ahead).expect_err("no temperatures").to_string();
    assert!(err.contains("needs regressor `temperature`"), "{err}");
}

#[test]
fn json_round_trip_forecasts_identically_and_keeps_target_order() {
    // Three days of 2-minute samples, three targets fitted on two threads.
    let (ms, days) = timeline(3 * 720, 120_000);
    let targets: Vec<(String, Vec<f64>)> = ["down", "up", "rnti_count"]
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let scale = 10f64.powi(k as i32 * 3);
            let eps = noise(ms.len(), 10 + k as u64);
            let y = days.iter().zip(eps).map(|(d, e)| scale * (5.0 + d + (TAU * d).sin() + 0.1 * e)).collect();
            (name.to_string(), y)
        })
        .collect();
    let fitted = fitter().fit_all(&ProphetConfig::default(), &ms, &targets, &[], 2).expect("fit");
    let names: Vec<&str> = fitted.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["down", "up", "rnti_count"]);

    let future: Vec<i64> = (0..360).map(|i| START_MS + 3 * DAY_MS + i * 120_000).collect();
    let here = fitted.predict(&future).expect("forecast");
    let loaded = FittedSet::from_json(&fitted.to_json()).expect("load");
    assert_eq!(loaded, fitted);
    assert_eq!(loaded.predict(&future).expect("forecast"), here);
    // Sanity: a half-day-ahead forecast of a clean series is close to the truth.
    let truth = 1000.0 * (5.0 + 3.25 + (TAU * 3.25).sin());
    let rel = (here[1].yhat[180] - truth).abs() / truth;
    assert!(rel < 0.02, "forecast {} vs truth {truth}", here[1].yhat[180]);
}

#[test]
fn bad_input_errors_name_the_target() {
    let cfg = ProphetConfig::default();
    let (ms, _) = timeline(100, HOUR_MS);
    let ok = vec![1.0; 100];
    let fit = |targets: Vec<(&str, Vec<f64>)>, ms: &[i64]| {
        let targets: Vec<(String, Vec<f64>)> = targets.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        fitter().fit_all(&cfg, ms, &targets, &[], 1).expect_err("bad input").to_string()
    };

    let mut with_nan = ok.clone();
    with_nan[42] = f64::NAN;
    let err = fit(vec![("down", ok.clone()), ("up", with_nan)], &ms);
    assert!(err.contains("target `up`") && err.contains("row 42") && err.contains("NaN"), "{err}");

    let err = fit(vec![("rb_down", vec![1.0])], &ms[..1]);
    assert!(err.contains("target `rb_down`: 1 rows") && err.contains("at least 2"), "{err}");

    let err = fit(vec![("down", ok.clone()), ("rb_up", vec![1.0; 99])], &ms);
    assert!(err.contains("target `rb_up`: 99 values for 100 timestamps"), "{err}");

    let mut shuffled = ms.clone();
    shuffled.swap(5, 6);
    let err = fit(vec![("down", ok.clone())], &shuffled);
    assert!(err.contains("rows 5 and 6"), "{err}");

    let err = fit(vec![("down", ok.clone()), ("down", ok.clone())], &ms);
    assert!(err.contains("target `down` is given twice"), "{err}");

    let with_regressor = ProphetConfig { regressors: vec![RegressorSpec::new("temp")], ..Default::default() };
    let targets = [("down".to_string(), ok.clone())];
    let err = fitter().fit_all(&with_regressor, &ms, &targets, &[], 1).expect_err("missing").to_string();
    assert!(err.contains("regressor `temp` is configured but no column was given"), "{err}");
    let constant = [("temp".to_string(), vec![3.0; 100])];
    let err = fitter().fit_all(&with_regressor, &ms, &targets, &constant, 1).expect_err("constant").to_string();
    assert!(err.contains("regressor `temp` is constant"), "{err}");
    let stray = [("wind".to_string(), ok)];
    let err = fitter().fit_all(&cfg, &ms, &targets, &stray, 1).expect_err("not configured").to_string();
    assert!(err.contains("regressor column `wind` is not in the config"), "{err}");
}
