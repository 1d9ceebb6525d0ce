//! Outlier bounds: percentile or IQR clip bounds of one column, fitted on the
//! training rows only. Preprocess never clips (it records the choice in the
//! canonical config, `flts.config` → `settings.clean`); the trainers fit these
//! bounds per preprocessing candidate and apply them to model inputs only,
//! never to the actuals a model is scored against.

use serde::{Deserialize, Serialize};

/// How outlier bounds are fitted (`clean.outliers` of the preprocess config).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutlierMethod {
    /// The trainers try [`OutlierMethod::None`], [`OutlierMethod::Percentile`]
    /// and [`OutlierMethod::Iqr`] as candidates and keep the best on validation.
    #[default]
    Auto,
    /// No clipping.
    None,
    /// Clip to the `lower_pct` and `upper_pct` percentiles.
    Percentile,
    /// Clip to [Q1 - k IQR, Q3 + k IQR] with k = `iqr_k`.
    Iqr,
}

impl OutlierMethod {
    /// The methods to train as candidates: all three for
    /// [`OutlierMethod::Auto`], otherwise the pinned one.
    pub fn candidates(self) -> &'static [OutlierMethod] {
        match self {
            OutlierMethod::Auto => &[OutlierMethod::None, OutlierMethod::Percentile, OutlierMethod::Iqr],
            OutlierMethod::None => &[OutlierMethod::None],
            OutlierMethod::Percentile => &[OutlierMethod::Percentile],
            OutlierMethod::Iqr => &[OutlierMethod::Iqr],
        }
    }

    /// The config name (`auto`, `none`, `percentile`, `iqr`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutlierMethod::Auto => "auto",
            OutlierMethod::None => "none",
            OutlierMethod::Percentile => "percentile",
            OutlierMethod::Iqr => "iqr",
        }
    }
}

/// The parameters of the methods (`clean.outlier_lower_pct`,
/// `clean.outlier_upper_pct`, `clean.outlier_iqr_k`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct OutlierParams {
    /// Lower percentile (0-100) of [`OutlierMethod::Percentile`].
    pub lower_pct: f64,
    /// Upper percentile (0-100) of [`OutlierMethod::Percentile`].
    pub upper_pct: f64,
    /// IQR multiplier of [`OutlierMethod::Iqr`].
    pub iqr_k: f64,
}

impl Default for OutlierParams {
    fn default() -> Self {
        OutlierParams { lower_pct: 0.5, upper_pct: 99.5, iqr_k: 1.5 }
    }
}

impl OutlierParams {
    /// `0 <= lower_pct < upper_pct <= 100` and a finite positive `iqr_k`.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0 <= self.lower_pct && self.lower_pct < self.upper_pct && self.upper_pct <= 100.0) {
            return Err(format!(
                "clean.outlier_lower_pct ({}) and outlier_upper_pct ({}) must satisfy 0 <= lower < upper <= 100",
                self.lower_pct, self.upper_pct
            ));
        }
        if !(self.iqr_k > 0.0 && self.iqr_k.is_finite()) {
            return Err(format!("clean.outlier_iqr_k must be positive, got {}", self.iqr_k));
        }
        Ok(())
    }
}

/// The outlier settings recorded in a canonical preprocess config (the
/// `flts.config` metadata of processed Parquet): `settings.clean.outliers` and
/// its parameters. Keys that are absent take their defaults (`auto`, 0.5,
/// 99.5, 1.5); a present key of the wrong type or an invalid parameter is an error.
pub fn settings_from_config(config: &serde_json::Value) -> Result<(OutlierMethod, OutlierParams), String> {
    let clean = &config["settings"]["clean"];
    let method = match clean.get("outliers") {
        None | Some(serde_json::Value::Null) => OutlierMethod::default(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("settings.clean.outliers: {e}"))?,
    };
    let mut params = OutlierParams::default();
    for (key, slot) in [
        ("outlier_lower_pct", &mut params.lower_pct),
        ("outlier_upper_pct", &mut params.upper_pct),
        ("outlier_iqr_k", &mut params.iqr_k),
    ] {
        if let Some(v) = clean.get(key).filter(|v| !v.is_null()) {
            *slot = v.as_f64().ok_or_else(|| format!("settings.clean.{key} is not a number: {v}"))?;
        }
    }
    params.validate()?;
    Ok((method, params))
}

/// Most of a column's training values, on either side, that IQR fences may
/// cap (percent). Tukey's fences assume light tails: on heavy-tailed columns
/// (traffic, counts) Q3 + 1.5 IQR caps a fifth of the values, which truncates
/// the body of the distribution rather than its outliers, and a model fed so
/// cannot forecast ordinary busy hours. Such a fence moves out to the
/// percentile that caps this share.
pub const IQR_MAX_CAPPED_PCT: f64 = 1.0;

/// Percentile `p` (0-100) with linear interpolation between closest ranks
/// (numpy's default). `values` must be non-empty and free of NaN; their order changes.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    let n = values.len();
    let pos = p / 100.0 * (n - 1) as f64;
    let k = (pos.floor() as usize).min(n - 1);
    let (_, at_k, right) = values.select_nth_unstable_by(k, f64::total_cmp);
    let lo = *at_k;
    let hi = right.iter().copied().min_by(f64::total_cmp).unwrap_or(lo);
    lo + (hi - lo) * (pos - k as f64)
}

/// Clip bounds `(lower, upper)` of one column's training values: the
/// percentiles, or Q1/Q3 ± k·IQR. NaN values are ignored. `None` for
/// [`OutlierMethod::None`] and [`OutlierMethod::Auto`] (which is not a method
/// but a choice among candidates), or when no value is left.
pub fn fit_bounds(values: &[f64], method: OutlierMethod, params: &OutlierParams) -> Option<(f64, f64)> {
    if matches!(method, OutlierMethod::None | OutlierMethod::Auto) {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    Some(match method {
        OutlierMethod::Percentile => (percentile(&mut v, params.lower_pct), percentile(&mut v, params.upper_pct)),
        _ => {
            let (q1, q3) = (percentile(&mut v, 25.0), percentile(&mut v, 75.0));
            let (lo, hi) = (q1 - params.iqr_k * (q3 - q1), q3 + params.iqr_k * (q3 - q1));
            let (floor_lo, floor_hi) =
                (percentile(&mut v, IQR_MAX_CAPPED_PCT), percentile(&mut v, 100.0 - IQR_MAX_CAPPED_PCT));
            (lo.min(floor_lo), hi.max(floor_hi))
        }
    })
}

/// Clip `values` to `bounds` (NaN stays NaN); returns how many changed.
pub fn clip(values: &mut [f64], (lower, upper): (f64, f64)) -> usize {
    let mut changed = 0;
    for v in values.iter_mut().filter(|v| !v.is_nan()) {
        let c = v.clamp(lower, upper);
        if c != *v {
            *v = c;
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentile_and_iqr_bounds() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        let p = OutlierParams { lower_pct: 5.0, upper_pct: 95.0, iqr_k: 1.5 };
        assert_eq!(fit_bounds(&v, OutlierMethod::Percentile, &p), Some((5.0, 95.0)));
        // Q1 = 25, Q3 = 75, IQR 50, k = 1.5 -> [-50, 150]
        assert_eq!(fit_bounds(&v, OutlierMethod::Iqr, &p), Some((-50.0, 150.0)));
        // Interpolated: 4 values, p50 between 2 and 3; p100 is the maximum.
        assert_eq!(percentile(&mut [4., 1., 3., 2.], 50.0), 2.5);
        assert_eq!(percentile(&mut [4., 1., 3., 2.], 100.0), 4.0);
        assert_eq!(percentile(&mut [7.], 99.5), 7.0);
    }

    #[test]
    fn iqr_fences_never_cap_the_body_of_a_heavy_tail() {
        // Traffic-like: most values small, a long right tail (Pareto-ish).
        let v: Vec<f64> = (1..=10_000).map(|i| 1e6 / (1.0 - f64::from(i) / 10_001.0)).collect();
        let p = OutlierParams::default();
        let (lo, hi) = fit_bounds(&v, OutlierMethod::Iqr, &p).unwrap();
        let capped = v.iter().filter(|x| **x < lo || **x > hi).count() as f64 / v.len() as f64;
        // Tukey's fence alone (Q3 + 1.5 IQR) would cap about 10% of these values.
        let (q1, q3) = (percentile(&mut v.clone(), 25.0), percentile(&mut v.clone(), 75.0));
        let tukey = v.iter().filter(|x| **x > q3 + 1.5 * (q3 - q1)).count() as f64 / v.len() as f64;
        assert!(tukey > 0.05, "{tukey}");
        assert!(capped <= IQR_MAX_CAPPED_PCT / 100.0 + 1e-9, "capped {capped}");
    }

    #[test]
    fn nan_is_ignored_and_none_auto_give_no_bounds() {
        let nan = f64::NAN;
        let p = OutlierParams { lower_pct: 0.0, upper_pct: 100.0, ..Default::default() };
        assert_eq!(fit_bounds(&[nan, 3., nan, -1., 8.], OutlierMethod::Percentile, &p), Some((-1.0, 8.0)));
        assert_eq!(fit_bounds(&[nan, nan], OutlierMethod::Iqr, &p), None);
        assert_eq!(fit_bounds(&[1., 2.], OutlierMethod::None, &p), None);
        assert_eq!(fit_bounds(&[1., 2.], OutlierMethod::Auto, &p), None);
    }

    #[test]
    fn one_training_spike_does_not_move_the_percentile_bounds() {
        let mut train: Vec<f64> = (0..1000).map(|i| (i % 50) as f64).collect();
        train[500] = 1e9;
        let b = fit_bounds(&train, OutlierMethod::Percentile, &OutlierParams::default()).unwrap();
        assert!(b.1 < 50.0, "the 99.5th percentile ignores one spike: {b:?}");
        let mut x = vec![f64::NAN, -5.0, 10.0, 1e9];
        assert_eq!(clip(&mut x, b), 2);
        assert!(x[0].is_nan());
        assert_eq!(&x[1..], &[b.0, 10.0, b.1]);
    }

    #[test]
    fn candidates_names_and_serde() {
        assert_eq!(OutlierMethod::Auto.candidates().len(), 3);
        assert_eq!(OutlierMethod::Iqr.candidates(), &[OutlierMethod::Iqr]);
        for m in [OutlierMethod::Auto, OutlierMethod::None, OutlierMethod::Percentile, OutlierMethod::Iqr] {
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
            assert_eq!(serde_json::from_value::<OutlierMethod>(json!(m.as_str())).unwrap(), m);
        }
        assert_eq!(OutlierMethod::default(), OutlierMethod::Auto);
    }

    #[test]
    fn settings_are_read_from_a_canonical_config() {
        let config = json!({"format": 2, "settings": {"clean": {"outliers": "iqr", "outlier_lower_pct": 1.0,
            "outlier_upper_pct": 99.0, "outlier_iqr_k": 3.0}}});
        assert_eq!(
            settings_from_config(&config).unwrap(),
            (OutlierMethod::Iqr, OutlierParams { lower_pct: 1.0, upper_pct: 99.0, iqr_k: 3.0 })
        );
        assert_eq!(settings_from_config(&json!({})).unwrap(), (OutlierMethod::Auto, OutlierParams::default()));
        let bad = json!({"settings": {"clean": {"outliers": "winsor"}}});
        assert!(settings_from_config(&bad).unwrap_err().contains("unknown variant `winsor`"));
        let bad = json!({"settings": {"clean": {"outlier_lower_pct": 60.0, "outlier_upper_pct": 40.0}}});
        assert!(settings_from_config(&bad).unwrap_err().contains("0 <= lower < upper <= 100"));
        let bad = json!({"settings": {"clean": {"outlier_iqr_k": "big"}}});
        assert!(settings_from_config(&bad).is_err());
    }
}
