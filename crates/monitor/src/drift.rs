//! The rolling error of one served model and when it counts as drift (pure).
//!
//! Each performance-eval record scored a batch of forecast windows against
//! the actuals; its RMSE (scaled units, averaged over targets) is in the same
//! units as the model's test RMSE. The rolling error is the RMS of the last
//! `window` records' RMSEs, weighted by their windows (so it is the RMSE over
//! all of their windows). The model is *degraded* while the rolling error is
//! above `ratio` times its test RMSE; a degraded stretch that has lasted
//! `for_secs` (record time, `created_at`) raises one drift event; the stretch
//! ends when the rolling error comes back under the threshold.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

/// When forecasts count as degraded, and for how long before it is drift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Degraded while rolling RMSE > `ratio` x test RMSE.
    pub ratio: f64,
    /// Degraded for at least this long (between the stretch's first and latest record) is drift.
    pub for_secs: u64,
    /// Records in the rolling window.
    pub window: usize,
    /// Forecast windows the rolling window must hold before it is judged.
    pub min_windows: u64,
}

/// One performance-eval record of a served model.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub at: DateTime<Utc>,
    pub rmse: f64,
    pub windows: u64,
    /// Identifies the record's results, so a redelivered record is not counted twice.
    pub key: String,
}

/// What one observation showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Already in the window (a redelivery): nothing changed.
    Duplicate,
    /// Fewer than `min_windows` forecast windows so far.
    Warming,
    /// Within the threshold; `recovered` when this ended a drift episode.
    Healthy { recovered: bool },
    /// Above the threshold since `since`, not (or no longer newly) drift.
    Degraded { since: DateTime<Utc> },
    /// Above the threshold for `for_secs`: raise one drift event.
    Drift { since: DateTime<Utc> },
}

/// The rolling state of one served model.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    /// The model's own test RMSE.
    pub test_rmse: f64,
    recent: VecDeque<Observation>,
    degraded_since: Option<DateTime<Utc>>,
    raised: bool,
}

impl Tracker {
    pub fn new(test_rmse: f64) -> Self {
        Tracker { test_rmse, recent: VecDeque::new(), degraded_since: None, raised: false }
    }

    /// Add one record and judge the window.
    pub fn observe(&mut self, obs: Observation, rule: &Rule) -> Step {
        if self.recent.iter().any(|o| o.key == obs.key) {
            return Step::Duplicate;
        }
        let at = obs.at;
        self.recent.push_back(obs);
        while self.recent.len() > rule.window.max(1) {
            self.recent.pop_front();
        }
        if self.windows() < rule.min_windows.max(1) {
            return Step::Warming;
        }
        if self.ratio() <= rule.ratio {
            let recovered = self.raised;
            self.degraded_since = None;
            self.raised = false;
            return Step::Healthy { recovered };
        }
        let since = *self.degraded_since.get_or_insert(at);
        let lasted = (at - since).num_milliseconds() as f64 / 1000.0;
        if !self.raised && lasted >= rule.for_secs as f64 {
            self.raised = true;
            Step::Drift { since }
        } else {
            Step::Degraded { since }
        }
    }

    /// RMSE over every forecast window of the rolling window.
    pub fn rolling_rmse(&self) -> f64 {
        let (sq, n) =
            self.recent.iter().fold((0.0, 0u64), |(sq, n), o| (sq + o.rmse * o.rmse * o.windows as f64, n + o.windows));
        if n == 0 { 0.0 } else { (sq / n as f64).sqrt() }
    }

    /// Rolling RMSE over test RMSE (a model with a zero test error is degraded by any error).
    pub fn ratio(&self) -> f64 {
        let rolling = self.rolling_rmse();
        if self.test_rmse > f64::EPSILON {
            rolling / self.test_rmse
        } else if rolling > f64::EPSILON {
            f64::INFINITY
        } else {
            1.0
        }
    }

    /// Forecast windows in the rolling window.
    pub fn windows(&self) -> u64 {
        self.recent.iter().map(|o| o.windows).sum()
    }

    /// Records in the rolling window.
    pub fn observations(&self) -> usize {
        self.recent.len()
    }

    /// Whether a drift event was raised and the model has not recovered since.
    pub fn drifting(&self) -> bool {
        self.raised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule { ratio: 1.5, for_secs: 3600, window: 3, min_windows: 10 };

    fn obs(minutes: i64, rmse: f64) -> Observation {
        let at = DateTime::from_timestamp(1_700_000_000 + minutes * 60, 0).expect("time");
        Observation { at, rmse, windows: 10, key: format!("r{minutes}") }
    }

    /// Feed `(minute, rmse)` records to a tracker with test RMSE 0.1.
    fn run(records: &[(i64, f64)]) -> Vec<Step> {
        let mut t = Tracker::new(0.1);
        records.iter().map(|&(m, e)| t.observe(obs(m, e), &RULE)).collect()
    }

    fn drifts(steps: &[Step]) -> usize {
        steps.iter().filter(|s| matches!(s, Step::Drift { .. })).count()
    }

    #[test]
    fn the_rolling_error_is_the_rmse_over_all_windows_of_the_last_records() {
        let mut t = Tracker::new(0.1);
        let mut a = obs(0, 0.3);
        a.windows = 30;
        let mut b = obs(1, 0.1);
        b.windows = 10;
        t.observe(a, &RULE);
        t.observe(b, &RULE);
        let expected = ((0.09 * 30.0 + 0.01 * 10.0) / 40.0_f64).sqrt();
        assert!((t.rolling_rmse() - expected).abs() < 1e-12, "{} vs {expected}", t.rolling_rmse());
        assert!((t.ratio() - expected / 0.1).abs() < 1e-9);
        // Only the last `window` records count.
        for m in 2..5 {
            t.observe(obs(m, 0.2), &RULE);
        }
        assert_eq!(t.observations(), 3);
        assert!((t.rolling_rmse() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn a_steady_model_never_drifts() {
        let records: Vec<(i64, f64)> = (0..200).map(|m| (m * 30, 0.1 + 0.02 * ((m % 5) as f64 - 2.0))).collect();
        let steps = run(&records);
        assert_eq!(drifts(&steps), 0);
        assert!(steps.iter().all(|s| matches!(s, Step::Healthy { recovered: false })), "{steps:?}");
    }

    #[test]
    fn a_degradation_that_lasts_raises_one_event_after_the_configured_time() {
        // Healthy for two hours, then the error triples (a level shift) and stays.
        let mut records: Vec<(i64, f64)> = (0..4).map(|i| (i * 30, 0.1)).collect();
        records.extend((4..12).map(|i| (i * 30, 0.3)));
        let steps = run(&records);
        assert_eq!(drifts(&steps), 1, "{steps:?}");
        let first_drift = steps.iter().position(|s| matches!(s, Step::Drift { .. })).expect("drift");
        // The window (3 records) crosses 1.5x at the first bad record (minute 120:
        // RMS of 0.1, 0.1, 0.3 is 0.19); an hour later (minute 180, record 6) it is drift.
        assert!(matches!(steps[3], Step::Healthy { .. }), "{steps:?}");
        assert!(matches!(steps[4], Step::Degraded { .. }), "{steps:?}");
        assert!(matches!(steps[5], Step::Degraded { .. }), "{steps:?}");
        assert_eq!(first_drift, 6, "{steps:?}");
        let Step::Drift { since } = steps[first_drift] else { unreachable!() };
        assert_eq!(since, obs(120, 0.0).at);
        assert!(steps[first_drift + 1..].iter().all(|s| matches!(s, Step::Degraded { .. })));
    }

    #[test]
    fn a_short_spike_is_not_drift_and_recovery_rearms() {
        // Degraded from minute 70 to 110 (the window keeps the spike for two
        // more records), under the hour: no event.
        let spike = [
            (0, 0.1),
            (30, 0.1),
            (60, 0.1),
            (70, 0.5),
            (80, 0.5),
            (90, 0.5),
            (100, 0.1),
            (110, 0.1),
            (120, 0.1),
            (130, 0.1),
        ];
        let steps = run(&spike);
        assert_eq!(drifts(&steps), 0, "{steps:?}");
        assert!(matches!(steps[7], Step::Degraded { .. }), "{steps:?}");
        assert_eq!(steps[8], Step::Healthy { recovered: false });

        // Drift, recovery, drift again: two events, one recovery.
        let mut t = Tracker::new(0.1);
        let rule = Rule { for_secs: 0, window: 1, ..RULE };
        let steps: Vec<Step> =
            [(0, 0.5), (1, 0.5), (2, 0.1), (3, 0.5)].iter().map(|&(m, e)| t.observe(obs(m, e), &rule)).collect();
        assert!(matches!(steps[0], Step::Drift { .. }));
        assert!(matches!(steps[1], Step::Degraded { .. }));
        assert_eq!(steps[2], Step::Healthy { recovered: true });
        assert!(matches!(steps[3], Step::Drift { .. }));
    }

    #[test]
    fn redeliveries_and_thin_windows_are_not_judged() {
        let mut t = Tracker::new(0.1);
        let mut thin = obs(0, 0.9);
        thin.windows = 5;
        assert_eq!(t.observe(thin.clone(), &RULE), Step::Warming, "5 of 10 windows");
        assert_eq!(t.observe(thin, &RULE), Step::Duplicate);
        assert_eq!(t.windows(), 5);
    }

    #[test]
    fn a_model_with_zero_test_error_is_judged_without_dividing_by_zero() {
        let mut t = Tracker::new(0.0);
        let rule = Rule { for_secs: 0, window: 1, min_windows: 1, ratio: 1.5 };
        assert_eq!(t.observe(obs(0, 0.0), &rule), Step::Healthy { recovered: false });
        assert!(matches!(t.observe(obs(1, 0.01), &rule), Step::Drift { .. }));
    }
}
