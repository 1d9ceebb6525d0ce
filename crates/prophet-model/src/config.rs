//! [`ProphetConfig`]: the knobs of one Prophet fit, with Python Prophet's defaults.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ProphetError;

/// How to fit a Prophet model. `Default` gives Python Prophet's defaults.
///
/// Growth is always linear (Prophet's default); logistic and flat growth are not offered.
/// Every field may be left out of the JSON form, which then takes the default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProphetConfig {
    /// Number of potential trend changepoints, spread evenly over the first `changepoint_range` of the history.
    pub n_changepoints: u32,
    /// Share of the history, in (0, 1], where changepoints may be placed.
    pub changepoint_range: f64,
    /// Scale of the Laplace prior on trend changes: larger means a more flexible trend.
    pub changepoint_prior_scale: f64,
    /// Scale of the normal prior on seasonality coefficients.
    pub seasonality_prior_scale: f64,
    /// Scale of the normal prior on holiday coefficients.
    pub holidays_prior_scale: f64,
    /// Whether seasonalities and holidays add to the trend or scale it.
    pub seasonality_mode: SeasonalityMode,
    /// Daily seasonality (Fourier order 4 when on). Auto: on with at least 2 days of history sampled below daily.
    pub daily_seasonality: SeasonalitySwitch,
    /// Weekly seasonality (order 3). Auto: on with at least 2 weeks of history sampled below weekly.
    pub weekly_seasonality: SeasonalitySwitch,
    /// Yearly seasonality (order 10). Auto: on with at least 2 years of history.
    pub yearly_seasonality: SeasonalitySwitch,
    /// Extra seasonalities, as Python's `add_seasonality(name, period, fourier_order)`.
    pub custom_seasonalities: Vec<CustomSeasonality>,
    /// Holidays, each with its own dates (Python's `holidays` data frame, without windows).
    pub holidays: Vec<HolidaySpec>,
    /// A country's public holidays, as Python's `add_country_holidays(country_name)`: each holiday name that
    /// falls in the training years becomes one column, with its dates from the first training year to
    /// [`crate::holidays::YEARS_AHEAD`] years after the last. Built in: `"US"` (see [`crate::holidays`]).
    pub country_holidays: Option<String>,
    /// Extra regressors, as Python's `add_regressor`: columns given with the training data (and again for
    /// every forecast).
    pub regressors: Vec<RegressorSpec>,
    /// Probability mass inside the forecast interval `[lower, upper]`.
    pub interval_width: f64,
    /// Simulated draws behind each interval; 0 skips the simulation and returns `lower = upper = yhat`.
    pub uncertainty_samples: u32,
    /// Seed of the interval simulation, so the same saved model gives the same intervals everywhere.
    pub uncertainty_seed: u64,
}

impl Default for ProphetConfig {
    fn default() -> Self {
        Self {
            n_changepoints: 25,
            changepoint_range: 0.8,
            changepoint_prior_scale: 0.05,
            seasonality_prior_scale: 10.0,
            holidays_prior_scale: 10.0,
            seasonality_mode: SeasonalityMode::Additive,
            daily_seasonality: SeasonalitySwitch::Auto,
            weekly_seasonality: SeasonalitySwitch::Auto,
            yearly_seasonality: SeasonalitySwitch::Auto,
            custom_seasonalities: Vec::new(),
            holidays: Vec::new(),
            country_holidays: None,
            regressors: Vec::new(),
            interval_width: 0.8,
            uncertainty_samples: 1000,
            uncertainty_seed: 0,
        }
    }
}

/// How seasonal and holiday terms combine with the trend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeasonalityMode {
    /// `y = trend + seasonal`.
    #[default]
    Additive,
    /// `y = trend * (1 + seasonal)`.
    Multiplicative,
}

/// Whether a built-in seasonality is fitted. JSON: `"auto"`, `"on"`, `"off"` or `{"order": 6}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeasonalitySwitch {
    /// Decided from the length and spacing of the history, as Prophet does.
    #[default]
    Auto,
    /// Always, with the default Fourier order.
    On,
    /// Never.
    Off,
    /// Always, with this Fourier order.
    Order(u32),
}

/// A user-defined seasonality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomSeasonality {
    /// Unique name; `daily`, `weekly` and `yearly` are taken by the built-in ones.
    pub name: String,
    /// Length of one cycle in days (0.5 = twelve hours).
    pub period_days: f64,
    /// Number of sine/cosine pairs.
    pub fourier_order: u32,
}

/// A holiday: one indicator per day it falls on (midnight to midnight UTC), as in Python Prophet
/// without `lower_window`/`upper_window`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HolidaySpec {
    /// Unique name.
    pub name: String,
    /// Days as `YYYY-MM-DD`.
    pub dates: Vec<String>,
}

/// An extra regressor (Python's `add_regressor(name, prior_scale, standardize, mode)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegressorSpec {
    /// The column's name; unique among the regressors.
    pub name: String,
    /// Scale of the normal prior on its coefficient; default `holidays_prior_scale`, as in Python.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_scale: Option<f64>,
    /// Whether it is standardised (minus the training mean, over the training sample standard deviation).
    /// Default: yes unless the column only holds 0 and 1, as in Python.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<bool>,
    /// Additive or multiplicative; default the model's `seasonality_mode`, as in Python.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SeasonalityMode>,
}

impl RegressorSpec {
    /// An additive or multiplicative (per `seasonality_mode`) regressor with Python's defaults.
    pub fn new(name: impl Into<String>) -> RegressorSpec {
        RegressorSpec { name: name.into(), prior_scale: None, standardize: None, mode: None }
    }
}

/// Fourier orders Prophet uses when a built-in seasonality is switched on without an order.
pub(crate) const DAILY_ORDER: u32 = 4;
pub(crate) const WEEKLY_ORDER: u32 = 3;
pub(crate) const YEARLY_ORDER: u32 = 10;
const BUILT_IN_NAMES: [&str; 3] = ["daily", "weekly", "yearly"];

const DAY_S: i64 = 86_400;

/// A seasonality that is part of a fitted model: name, period and Fourier order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SeasonalitySpec {
    pub(crate) name: String,
    pub(crate) period_days: f64,
    pub(crate) order: u32,
}

impl ProphetConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ProphetError> {
        let bad = |msg: String| Err(ProphetError::InvalidConfig(msg));
        if !(self.changepoint_range > 0.0 && self.changepoint_range <= 1.0) {
            return bad(format!("changepoint_range must be in (0, 1], got {}", self.changepoint_range));
        }
        for (name, value) in [
            ("changepoint_prior_scale", self.changepoint_prior_scale),
            ("seasonality_prior_scale", self.seasonality_prior_scale),
            ("holidays_prior_scale", self.holidays_prior_scale),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(format!("{name} must be a positive number, got {value}"));
            }
        }
        if !(self.interval_width > 0.0 && self.interval_width < 1.0) {
            return bad(format!("interval_width must be in (0, 1), got {}", self.interval_width));
        }
        for (name, switch) in [
            ("daily_seasonality", self.daily_seasonality),
            ("weekly_seasonality", self.weekly_seasonality),
            ("yearly_seasonality", self.yearly_seasonality),
        ] {
            if switch == SeasonalitySwitch::Order(0) {
                return bad(format!("{name}: a Fourier order must be at least 1 (use \"off\" to disable)"));
            }
        }
        let mut names: Vec<&str> = BUILT_IN_NAMES.to_vec();
        for s in &self.custom_seasonalities {
            if names.contains(&s.name.as_str()) {
                return bad(format!("seasonality name `{}` is already taken", s.name));
            }
            names.push(&s.name);
            if !(s.period_days.is_finite() && s.period_days > 0.0) {
                return bad(format!("seasonality `{}`: period_days must be positive, got {}", s.name, s.period_days));
            }
            if s.fourier_order == 0 {
                return bad(format!("seasonality `{}`: fourier_order must be at least 1", s.name));
            }
        }
        let mut holiday_names: Vec<&str> = Vec::new();
        for h in &self.holidays {
            if holiday_names.contains(&h.name.as_str()) {
                return bad(format!("holiday `{}` is listed twice", h.name));
            }
            holiday_names.push(&h.name);
            h.day_starts_s()?;
        }
        if let Some(country) = &self.country_holidays {
            crate::holidays::check_country(country)?;
        }
        let mut regressor_names: Vec<&str> = Vec::new();
        for r in &self.regressors {
            if r.name.is_empty() || regressor_names.contains(&r.name.as_str()) {
                return bad(format!("regressor name {:?} is empty or listed twice", r.name));
            }
            regressor_names.push(&r.name);
            if let Some(scale) = r.prior_scale
                && !(scale.is_finite() && scale > 0.0)
            {
                return bad(format!("regressor `{}`: prior_scale must be a positive number, got {scale}", r.name));
            }
        }
        Ok(())
    }

    /// The seasonalities a fit on `ds` (sorted timestamps in seconds, at least two) includes, with Prophet's
    /// rules for `Auto`: built-in ones in the order yearly, weekly, daily, then the custom ones.
    pub(crate) fn seasonalities_for(&self, ds: &[i64]) -> Vec<SeasonalitySpec> {
        let range_s = match (ds.first(), ds.last()) {
            (Some(first), Some(last)) => (last - first) as f64,
            _ => 0.0,
        };
        let min_step_s = ds.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).min().unwrap_or(i64::MAX) as f64;
        let day = DAY_S as f64;
        let built_in = [
            ("yearly", 365.25, self.yearly_seasonality, YEARLY_ORDER, range_s >= 2.0 * 365.25 * day),
            ("weekly", 7.0, self.weekly_seasonality, WEEKLY_ORDER, range_s >= 14.0 * day && min_step_s < 7.0 * day),
            ("daily", 1.0, self.daily_seasonality, DAILY_ORDER, range_s >= 2.0 * day && min_step_s < day),
        ];
        let mut specs = Vec::new();
        for (name, period_days, switch, default_order, auto_on) in built_in {
            let order = match switch {
                SeasonalitySwitch::Auto if auto_on => Some(default_order),
                SeasonalitySwitch::Auto | SeasonalitySwitch::Off => None,
                SeasonalitySwitch::On => Some(default_order),
                SeasonalitySwitch::Order(order) => Some(order),
            };
            if let Some(order) = order {
                specs.push(SeasonalitySpec { name: name.to_string(), period_days, order });
            }
        }
        specs.extend(self.custom_seasonalities.iter().map(|s| SeasonalitySpec {
            name: s.name.clone(),
            period_days: s.period_days,
            order: s.fourier_order,
        }));
        specs
    }
}

impl HolidaySpec {
    /// The start of each day in seconds since the epoch (UTC midnight).
    pub(crate) fn day_starts_s(&self) -> Result<Vec<i64>, ProphetError> {
        self.dates
            .iter()
            .map(|date| {
                NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp())
                    .map_err(|e| {
                        ProphetError::InvalidConfig(format!(
                            "holiday `{}`: date {date:?} is not YYYY-MM-DD: {e}",
                            self.name
                        ))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pythons() {
        let cfg = ProphetConfig::default();
        assert_eq!(cfg.n_changepoints, 25);
        assert_eq!(cfg.changepoint_range, 0.8);
        assert_eq!(cfg.changepoint_prior_scale, 0.05);
        assert_eq!(cfg.seasonality_prior_scale, 10.0);
        assert_eq!(cfg.holidays_prior_scale, 10.0);
        assert_eq!(cfg.interval_width, 0.8);
        assert_eq!(cfg.uncertainty_samples, 1000);
        cfg.validate().expect("defaults are valid");
    }

    #[test]
    fn json_form_is_partial_and_readable() {
        let cfg: ProphetConfig = serde_json::from_str(
            r#"{"n_changepoints": 50, "seasonality_mode": "multiplicative", "weekly_seasonality": {"order": 5},
                "daily_seasonality": "off", "holidays": [{"name": "easter", "dates": ["2018-04-01"]}]}"#,
        )
        .expect("valid config JSON");
        assert_eq!(cfg.n_changepoints, 50);
        assert_eq!(cfg.seasonality_mode, SeasonalityMode::Multiplicative);
        assert_eq!(cfg.weekly_seasonality, SeasonalitySwitch::Order(5));
        assert_eq!(cfg.daily_seasonality, SeasonalitySwitch::Off);
        assert_eq!(cfg.changepoint_range, 0.8);
        assert_eq!(cfg.holidays[0].day_starts_s().expect("date parses"), vec![1_522_540_800]);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let cases = [
            ProphetConfig { changepoint_range: 0.0, ..Default::default() },
            ProphetConfig { seasonality_prior_scale: -1.0, ..Default::default() },
            ProphetConfig { interval_width: 1.0, ..Default::default() },
            ProphetConfig { daily_seasonality: SeasonalitySwitch::Order(0), ..Default::default() },
            ProphetConfig {
                custom_seasonalities: vec![CustomSeasonality {
                    name: "weekly".into(),
                    period_days: 7.0,
                    fourier_order: 2,
                }],
                ..Default::default()
            },
            ProphetConfig {
                holidays: vec![HolidaySpec { name: "x".into(), dates: vec!["04/01/2018".into()] }],
                ..Default::default()
            },
        ];
        let expected = [
            "changepoint_range",
            "seasonality_prior_scale",
            "interval_width",
            "daily_seasonality",
            "`weekly` is already taken",
            "holiday `x`",
        ];
        for (cfg, needle) in cases.iter().zip(expected) {
            let err = cfg.validate().expect_err(needle).to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
    }

    #[test]
    fn auto_seasonalities_follow_prophet_rules() {
        let hourly = |days: i64| (0..days * 24).map(|h| h * 3600).collect::<Vec<_>>();
        let names =
            |ds: &[i64]| ProphetConfig::default().seasonalities_for(ds).into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert!(names(&hourly(1)).is_empty());
        assert_eq!(names(&hourly(6)), ["daily"]);
        assert_eq!(names(&hourly(15)), ["weekly", "daily"]);
        let daily_samples = (0..30).map(|d| d * DAY_S).collect::<Vec<_>>();
        assert_eq!(names(&daily_samples), ["weekly"]);
    }
}
