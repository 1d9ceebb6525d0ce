//! A deterministic generator of realistic base-station traffic, shaped like
//! the Barcelona LTE (El Born) measurements: daily and weekly seasonality, a
//! slow trend, noise, bursts of activity, a few gaps in time and a few blank
//! cells; optionally traffic spikes in the training period and one long gap,
//! as real base-station files have. Same spec, same bytes, on every machine.
//!
//! ```
//! let frame = dataset::generate::traffic(&dataset::generate::Spec { rows: 1_000, ..Default::default() });
//! assert_eq!(frame.len(), 1_000);
//! assert_eq!(frame.columns.len(), 11);
//! ```

use series::{Column, Frame};

/// The generated columns, as in the El Born data.
pub const COLUMNS: [&str; 11] = [
    "down",
    "up",
    "rnti_count",
    "mcs_down",
    "mcs_down_var",
    "mcs_up",
    "mcs_up_var",
    "rb_down",
    "rb_down_var",
    "rb_up",
    "rb_up_var",
];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Rows produced (gaps skip timestamps, not rows).
    pub rows: usize,
    pub seed: u64,
    /// First timestamp, ms since the epoch (default 2018-03-28 15:56:00 UTC, like El Born).
    pub start_ms: i64,
    /// Sampling interval in ms (default 2 minutes).
    pub interval_ms: i64,
    /// Roughly one gap (1-5 missing timestamps) per this many rows; 0 = none.
    pub gap_every: usize,
    /// Roughly one blank cell (NaN) per this many rows; 0 = none.
    pub nan_every: usize,
    /// Short spikes (1-6 rows at 5-20x the local level of the traffic
    /// columns [`SPIKE_COLUMNS`]), placed in the first 80% of the rows only:
    /// the training period of a default split. 0 = none.
    pub spikes: usize,
    /// `(start_row, rows)`: that many rows from `start_row` are blank in the
    /// [`LONG_GAP_COLUMNS`] (most columns, targets included), like the 6.5 h
    /// hole of a real El Born file. Rows past the end are ignored.
    pub long_gap: Option<(usize, usize)>,
}

/// The load-proportional columns that [`Spec::spikes`] multiply.
pub const SPIKE_COLUMNS: [&str; 5] = ["down", "up", "rnti_count", "rb_down", "rb_up"];

/// The columns blank during [`Spec::long_gap`]: 8 of the 11.
pub const LONG_GAP_COLUMNS: [&str; 8] =
    ["down", "up", "rnti_count", "mcs_down", "mcs_up", "rb_down", "rb_up", "mcs_up_var"];

impl Default for Spec {
    fn default() -> Self {
        Spec {
            rows: 5_000,
            seed: 42,
            start_ms: 1_522_252_560_000,
            interval_ms: 120_000,
            gap_every: 2_000,
            nan_every: 500,
            spikes: 0,
            long_gap: None,
        }
    }
}

/// SplitMix64: tiny, fast, and stable across versions (unlike library RNGs).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, n).
    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Relative load at an instant: daily shape (quiet at night, busy midday and
/// evening), quieter weekends, a slow upward trend.
fn load(ts_ms: i64, start_ms: i64) -> f64 {
    const DAY: f64 = 86_400_000.0;
    let hour = (ts_ms as f64 / 3_600_000.0).rem_euclid(24.0);
    let day_angle = std::f64::consts::TAU * hour / 24.0;
    // Trough near 04:00, peaks around 13:00 and 20:00.
    let daily = 1.0 - 0.62 * (day_angle - std::f64::consts::TAU * 4.0 / 24.0).cos().max(-1.0)
        + 0.12 * (2.0 * day_angle - std::f64::consts::TAU * 9.0 / 24.0).sin();
    // 1970-01-01 was a Thursday: day 0 -> Thursday.
    let dow = ((ts_ms as f64 / DAY).floor() as i64 + 3).rem_euclid(7); // 0 = Monday
    let weekly = match dow {
        5 => 0.82,
        6 => 0.74,
        _ => 1.0,
    };
    let trend = 1.0 + 0.04 * (ts_ms - start_ms) as f64 / (30.0 * DAY);
    (daily * weekly * trend).max(0.05)
}

/// Generate `spec.rows` rows of the eleven [`COLUMNS`].
pub fn traffic(spec: &Spec) -> Frame {
    let mut rng = Rng(spec.seed ^ 0x5EED_F175);
    let n = spec.rows;
    let mut timestamps = Vec::with_capacity(n);
    let mut cols: Vec<Vec<f64>> = (0..COLUMNS.len()).map(|_| Vec::with_capacity(n)).collect();
    let mut slot: i64 = 0;
    let mut burst_left = 0usize;
    let mut burst_gain = 1.0;
    for i in 0..n {
        if i > 0 && spec.gap_every > 0 && rng.below(spec.gap_every) == 0 {
            slot += 1 + rng.below(5) as i64;
        }
        let ts = spec.start_ms + slot * spec.interval_ms;
        slot += 1;
        timestamps.push(ts);
        if burst_left == 0 && rng.below(400) == 0 {
            burst_left = 5 + rng.below(25);
            burst_gain = 1.5 + 1.5 * rng.uniform();
        }
        let burst = if burst_left > 0 {
            burst_left -= 1;
            burst_gain
        } else {
            1.0
        };
        let a = load(ts, spec.start_ms) * burst * (1.0 + 0.08 * rng.normal()).max(0.05);
        let mut jitter = |sd: f64| 1.0 + sd * rng.normal();
        let values = [
            1.8e8 * a * jitter(0.10),
            2.2e6 * a * jitter(0.12),
            (1.0e4 * a * jitter(0.05)).round(),
            15.2 - 0.4 * (a - 1.0) + 0.3 * (jitter(1.0) - 1.0),
            87.0 + (jitter(1.0) - 1.0),
            15.5 + 0.8 * (jitter(1.0) - 1.0),
            55.0 + 8.0 * (jitter(1.0) - 1.0),
            0.033 * a * jitter(0.08),
            4.5e-8 * jitter(0.05),
            7.0e-4 * a * jitter(0.15),
            3.5e-8 * jitter(0.2),
        ];
        for (col, v) in cols.iter_mut().zip(values) {
            col.push(v.max(0.0));
        }
        if spec.nan_every > 0 && rng.below(spec.nan_every) == 0 {
            // Like El Born, the uplink MCS columns are the ones left blank.
            let c = 5 + rng.below(2);
            cols[c][i] = f64::NAN;
        }
    }
    let mut frame = Frame {
        timestamps,
        columns: COLUMNS.iter().zip(cols).map(|(name, values)| Column::new(*name, values)).collect(),
    };
    // Own generators, so that specs without spikes or a long gap are unchanged.
    add_spikes(&mut frame, spec.spikes, &mut Rng(spec.seed ^ 0x5B1C_E5ED));
    if let Some((start, rows)) = spec.long_gap {
        for c in frame.columns.iter_mut().filter(|c| LONG_GAP_COLUMNS.contains(&c.name.as_str())) {
            let end = start.saturating_add(rows).min(c.values.len());
            c.values.get_mut(start.min(end)..end).into_iter().flatten().for_each(|v| *v = f64::NAN);
        }
    }
    frame
}

/// `count` spikes of 1-6 rows at 5-20x the local level of [`SPIKE_COLUMNS`],
/// starting in the first 80% of the rows and ending before it ends.
fn add_spikes(frame: &mut Frame, count: usize, rng: &mut Rng) {
    let train_rows = frame.len() * 4 / 5;
    if count == 0 || train_rows < 8 {
        return;
    }
    let mut taken = vec![false; train_rows];
    for _ in 0..count {
        let len = 1 + rng.below(6);
        let mut start = rng.below(train_rows - len);
        // Spikes do not overlap (a few tries; a crowded series gets fewer).
        for _ in 0..20 {
            if !taken[start.saturating_sub(1)..start + len + 1].contains(&true) {
                break;
            }
            start = rng.below(train_rows - len);
        }
        if taken[start..start + len].contains(&true) {
            continue;
        }
        taken[start..start + len].iter_mut().for_each(|t| *t = true);
        let gain = 5.0 + 15.0 * rng.uniform();
        for c in frame.columns.iter_mut().filter(|c| SPIKE_COLUMNS.contains(&c.name.as_str())) {
            let round = c.name == "rnti_count";
            for v in &mut c.values[start..start + len] {
                *v = if round { (*v * gain).round() } else { *v * gain };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value's bits (NaN != NaN, but its bits are equal).
    fn bits(f: &Frame) -> (Vec<i64>, Vec<Vec<u64>>) {
        (f.timestamps.clone(), f.columns.iter().map(|c| c.values.iter().map(|v| v.to_bits()).collect()).collect())
    }

    #[test]
    fn deterministic_and_seedable() {
        let spec = Spec { rows: 3_000, ..Default::default() };
        assert!(bits(&traffic(&spec)) == bits(&traffic(&spec)));
        assert!(bits(&traffic(&spec)) != bits(&traffic(&Spec { seed: 7, ..spec.clone() })));
    }

    #[test]
    fn spikes_stay_in_training_and_the_long_gap_blanks_most_columns() {
        let base = Spec { rows: 5_000, nan_every: 0, ..Default::default() };
        let plain = traffic(&base);
        assert!(bits(&plain) == bits(&traffic(&Spec { spikes: 0, long_gap: None, ..base.clone() })));
        let spiky = traffic(&Spec { spikes: 6, ..base.clone() });
        assert_eq!(spiky.timestamps, plain.timestamps, "spikes change values, not times");
        let down = (plain.column("down").unwrap(), spiky.column("down").unwrap());
        let changed: Vec<usize> = (0..5_000).filter(|&i| down.0[i] != down.1[i]).collect();
        assert!((6..=36).contains(&changed.len()), "{} spiked rows", changed.len());
        assert!(changed.iter().all(|&i| i < 4_000), "spikes only in the first 80%: {changed:?}");
        for &i in &changed {
            let gain = down.1[i] / down.0[i];
            assert!((5.0..=20.0).contains(&gain), "row {i}: gain {gain}");
        }
        assert!(spiky.column("mcs_down").unwrap() == plain.column("mcs_down").unwrap(), "only traffic columns");

        let holed = traffic(&Spec { long_gap: Some((1_000, 195)), ..base });
        for c in &holed.columns {
            let blank = c.values.iter().filter(|v| v.is_nan()).count();
            let want = if LONG_GAP_COLUMNS.contains(&c.name.as_str()) { 195 } else { 0 };
            assert_eq!(blank, want, "{}", c.name);
            if want > 0 {
                assert!(c.values[1_000..1_195].iter().all(|v| v.is_nan()), "{}", c.name);
            }
        }
        let tail = traffic(&Spec { rows: 100, long_gap: Some((90, 50)), ..Default::default() });
        assert_eq!(tail.column("down").unwrap().iter().filter(|v| v.is_nan()).count(), 10, "clipped at the end");
    }

    #[test]
    fn looks_like_traffic() {
        let spec = Spec { rows: 20_000, ..Default::default() };
        let f = traffic(&spec);
        assert_eq!(f.len(), 20_000);
        assert_eq!(f.column_names().collect::<Vec<_>>(), COLUMNS);
        // Strictly increasing, mostly one interval apart, a few gaps.
        let steps: Vec<i64> = f.timestamps.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|&s| s >= spec.interval_ms && s % spec.interval_ms == 0));
        let gaps = steps.iter().filter(|&&s| s > spec.interval_ms).count();
        assert!((2..40).contains(&gaps), "{gaps} gaps");
        // A few blanks, only in the uplink MCS columns.
        let nans: usize = f.columns.iter().map(|c| c.values.iter().filter(|v| v.is_nan()).count()).sum();
        assert!((10..100).contains(&nans), "{nans} NaNs");
        assert!(
            f.columns.iter().filter(|c| !c.name.starts_with("mcs_up")).all(|c| c.values.iter().all(|v| v.is_finite()))
        );
        // Daily seasonality: 04:00 is much quieter than 13:00.
        let down = f.column("down").unwrap();
        let mean_at = |hour: i64| {
            let v: Vec<f64> = f
                .timestamps
                .iter()
                .zip(down)
                .filter(|(t, _)| (**t / 3_600_000).rem_euclid(24) == hour)
                .map(|(_, v)| *v)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean_at(13) > 2.0 * mean_at(4), "13h {} vs 4h {}", mean_at(13), mean_at(4));
    }
}
