//! The prediction files a trainer logs (`predictions/validation_predictions.parquet`,
//! `predictions/test_predictions.parquet`), read and scored: pure, no I/O.
//!
//! A file has a `timestamp` column (ms) and per target `<t>_predicted` and
//! `<t>_actual` in original units (raw actuals, forecasts after the model's
//! floor), suffixed `_t<step>` when a model forecasts more than one step. Rows
//! of the model types of one submission line up on timestamp.
//!
//! Scaled metrics here follow the events' definition (pooled over every row,
//! step and target; errors divided by the dataset scaler's per-target scale),
//! so a score computed from these files is in the units of
//! `TrainingSuccess.validation`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use contracts::Metrics;
use contracts::promotion::NaiveNrmse;

/// Prediction files larger than this are refused (they are eval's input).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// One forecast column and its actuals.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub target: String,
    /// Horizon step, from 1.
    pub step: usize,
    pub predicted: Vec<f64>,
    pub actual: Vec<f64>,
}

/// One prediction file.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub timestamps: Vec<i64>,
    pub columns: Vec<Column>,
}

/// `(target, step)` of a `<t>_predicted` or `<t>_predicted_t<step>` column of `targets`.
fn predicted_column<'a>(name: &str, targets: &'a [String]) -> Option<(&'a String, usize)> {
    targets.iter().find_map(|t| {
        let rest = name.strip_prefix(t.as_str())?.strip_prefix("_predicted")?;
        if rest.is_empty() {
            return Some((t, 1));
        }
        let step: usize = rest.strip_prefix("_t")?.parse().ok()?;
        (step > 0).then_some((t, step))
    })
}

impl Predictions {
    /// Read a prediction file (Parquet, or CSV as `--once` writes it) for `targets`.
    pub fn read(bytes: &[u8], targets: &[String]) -> Result<Predictions, String> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!("{} bytes is over the {MAX_FILE_BYTES} byte limit of a prediction file", bytes.len()));
        }
        let frame =
            dataset::read_raw("predictions", bytes, &dataset::RawOptions::default()).map_err(|e| e.to_string())?;
        let mut columns = Vec::new();
        for c in &frame.columns {
            let Some((target, step)) = predicted_column(&c.name, targets) else { continue };
            let actual_name = c.name.replacen("_predicted", "_actual", 1);
            let actual = frame.column(&actual_name).ok_or_else(|| format!("no `{actual_name}` beside `{}`", c.name))?;
            columns.push(Column { target: target.clone(), step, predicted: c.values.clone(), actual: actual.to_vec() });
        }
        for t in targets {
            if !columns.iter().any(|c| &c.target == t) {
                return Err(format!("no `{t}_predicted` column"));
            }
        }
        columns.sort_by(|a, b| (&a.target, a.step).cmp(&(&b.target, b.step)));
        Ok(Predictions { timestamps: frame.timestamps, columns })
    }

    /// The same columns on `rows` (indices into this file's rows).
    fn select(&self, rows: &[usize]) -> Predictions {
        let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        Predictions {
            timestamps: rows.iter().map(|&i| self.timestamps[i]).collect(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    target: c.target.clone(),
                    step: c.step,
                    predicted: pick(&c.predicted),
                    actual: pick(&c.actual),
                })
                .collect(),
        }
    }

    /// Scaled metrics over every row, step and target with finite values;
    /// `scales` holds each target's scale (the dataset scaler's).
    pub fn scaled_metrics(&self, scales: &BTreeMap<String, f64>) -> Result<Metrics, String> {
        let mut acc = Acc::default();
        for c in &self.columns {
            let scale = scales.get(&c.target).copied().filter(|s| s.is_finite() && *s > 0.0);
            let scale = scale.ok_or_else(|| format!("no usable scale for target `{}`", c.target))?;
            for (p, a) in c.predicted.iter().zip(&c.actual) {
                acc.add(p / scale, a / scale);
            }
        }
        acc.finish().ok_or_else(|| "no finite prediction to score".to_string())
    }

    /// NRMSE per target as the study defines it: RMSE over every row and
    /// step divided by the mean of the actuals, original units.
    pub fn nrmse(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for target in self.targets() {
            let mut acc = Acc::default();
            for c in self.columns.iter().filter(|c| c.target == target) {
                for (p, a) in c.predicted.iter().zip(&c.actual) {
                    acc.add(*p, *a);
                }
            }
            if let Some(v) = acc.nrmse() {
                out.insert(target, v);
            }
        }
        out
    }

    /// The naive forecasts' NRMSE per target on these rows' first-step
    /// actuals, as the trainers define them: last value (the actual one
    /// interval earlier) and seasonal naive (one day earlier), looked up here
    /// and in `history` (the training part's actuals, [`History`]), each on
    /// the rows that have that lag.
    pub fn naive_nrmse(&self, history: &History) -> BTreeMap<String, NaiveNrmse> {
        let mut out = BTreeMap::new();
        let Some(interval) = interval_ms(&self.timestamps) else { return out };
        for c in self.columns.iter().filter(|c| c.step == 1) {
            let mut by_time: HashMap<i64, f64> = history.get(&c.target).cloned().unwrap_or_default();
            by_time.extend(self.timestamps.iter().copied().zip(c.actual.iter().copied()));
            let naive = |lag: i64| {
                let mut acc = Acc::default();
                for (ts, a) in self.timestamps.iter().zip(&c.actual) {
                    if let Some(p) = by_time.get(&(ts - lag)) {
                        acc.add(*p, *a);
                    }
                }
                acc.nrmse()
            };
            out.insert(c.target.clone(), NaiveNrmse { last_value: naive(interval), seasonal_naive: naive(DAY_MS) });
        }
        out
    }

    fn targets(&self) -> BTreeSet<String> {
        self.columns.iter().map(|c| c.target.clone()).collect()
    }
}

const DAY_MS: i64 = 86_400_000;

/// Earlier actuals per target, by timestamp (original units): the history
/// the naive forecasts look back into.
pub type History = BTreeMap<String, HashMap<i64, f64>>;

/// The first-step actuals of a prediction file, as history.
pub fn history_of(p: &Predictions) -> History {
    let mut h = History::new();
    for c in p.columns.iter().filter(|c| c.step == 1) {
        h.entry(c.target.clone()).or_default().extend(p.timestamps.iter().copied().zip(c.actual.iter().copied()));
    }
    h
}

/// The targets' actuals of a processed training Parquet (scaled with its own
/// scaler, which is inverted here), as history.
pub fn history_of_processed(bytes: &[u8], targets: &[String]) -> Result<History, String> {
    let (frame, meta) = dataset::read_processed(bytes).map_err(|e| e.to_string())?;
    let mut h = History::new();
    for t in targets {
        let Some(values) = frame.column(t) else { continue };
        let mut m = HashMap::with_capacity(values.len());
        for (ts, v) in frame.timestamps.iter().zip(values) {
            m.insert(*ts, meta.scaler.inverse_value(t, *v).map_err(|e| e.to_string())?);
        }
        h.insert(t.clone(), m);
    }
    Ok(h)
}

/// The series' interval: the smallest positive step between rows.
pub fn interval_ms(timestamps: &[i64]) -> Option<i64> {
    let mut sorted = timestamps.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).min()
}

/// Rows in one season (a day) of a series with these timestamps.
pub fn season_rows(timestamps: &[i64]) -> Option<usize> {
    interval_ms(timestamps).filter(|i| DAY_MS % i == 0).map(|i| (DAY_MS / i) as usize)
}

/// The rows every file has (by timestamp), each file cut to them in one order;
/// the files must forecast the same targets and steps.
pub fn align(files: &[&Predictions]) -> Result<Vec<Predictions>, String> {
    let Some(first) = files.first() else { return Ok(vec![]) };
    let shape = |p: &Predictions| p.columns.iter().map(|c| (c.target.clone(), c.step)).collect::<Vec<_>>();
    if files.iter().any(|p| shape(p) != shape(first)) {
        return Err("the prediction files forecast different targets or steps".into());
    }
    let mut common: BTreeSet<i64> = first.timestamps.iter().copied().collect();
    for p in &files[1..] {
        let mine: BTreeSet<i64> = p.timestamps.iter().copied().collect();
        common = common.intersection(&mine).copied().collect();
    }
    Ok(files
        .iter()
        .map(|p| {
            let mut index: BTreeMap<i64, usize> = BTreeMap::new();
            for (i, ts) in p.timestamps.iter().enumerate() {
                index.entry(*ts).or_insert(i);
            }
            let rows: Vec<usize> = common.iter().map(|ts| index[ts]).collect();
            p.select(&rows)
        })
        .collect())
}

/// `sum(weights[i] * files[i])` on aligned files: the actuals of the first.
pub fn weighted(files: &[Predictions], weights: &[f64]) -> Predictions {
    let mut out = files[0].clone();
    for (j, c) in out.columns.iter_mut().enumerate() {
        for (r, v) in c.predicted.iter_mut().enumerate() {
            *v = files.iter().zip(weights).map(|(f, w)| w * f.columns[j].predicted[r]).sum();
        }
    }
    out
}

#[derive(Default)]
struct Acc {
    n: usize,
    sq: f64,
    abs: f64,
    actual: f64,
}

impl Acc {
    fn add(&mut self, pred: f64, actual: f64) {
        if !(pred.is_finite() && actual.is_finite()) {
            return;
        }
        let e = pred - actual;
        self.n += 1;
        self.sq += e * e;
        self.abs += e.abs();
        self.actual += actual;
    }

    fn finish(&self) -> Option<Metrics> {
        let n = (self.n > 0).then_some(self.n as f64)?;
        let mse = self.sq / n;
        Some(Metrics { mse, rmse: mse.sqrt(), mae: self.abs / n })
    }

    fn nrmse(&self) -> Option<f64> {
        let mean = self.actual / self.n as f64;
        self.finish().map(|m| m.rmse / mean).filter(|v| v.is_finite())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file of one target `down`, one step, at hourly timestamps from `start_h`.
    pub fn file(start_h: i64, predicted: &[f64], actual: &[f64]) -> Predictions {
        Predictions {
            timestamps: (0..predicted.len() as i64).map(|i| (start_h + i) * 3_600_000).collect(),
            columns: vec![Column {
                target: "down".into(),
                step: 1,
                predicted: predicted.to_vec(),
                actual: actual.to_vec(),
            }],
        }
    }

    #[test]
    fn columns_are_found_per_target_and_step() {
        let t = vec!["up".to_string(), "up_rate".to_string()];
        assert_eq!(predicted_column("up_predicted", &t), Some((&t[0], 1)));
        assert_eq!(predicted_column("up_predicted_t3", &t), Some((&t[0], 3)));
        assert_eq!(predicted_column("up_rate_predicted", &t), Some((&t[1], 1)));
        assert_eq!(predicted_column("up_actual", &t), None);
        assert_eq!(predicted_column("up_predicted_t0", &t), None);
    }

    #[test]
    fn files_are_aligned_on_their_common_timestamps() {
        let a = file(0, &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        let b = file(1, &[20.0, 30.0, 40.0], &[2.0, 3.0, 4.0]);
        let aligned = align(&[&a, &b]).expect("align");
        assert_eq!(aligned[0].timestamps, aligned[1].timestamps);
        assert_eq!(aligned[0].columns[0].predicted, [2.0, 3.0]);
        assert_eq!(aligned[1].columns[0].predicted, [20.0, 30.0]);
        let mix = weighted(&aligned, &[0.5, 0.5]);
        assert_eq!(mix.columns[0].predicted, [11.0, 16.5]);
    }

    #[test]
    fn nrmse_is_rmse_over_the_mean_of_the_actuals() {
        let p = file(0, &[9.0, 11.0], &[10.0, 10.0]);
        assert!((p.nrmse()["down"] - 0.1).abs() < 1e-12);
        let m = p.scaled_metrics(&BTreeMap::from([("down".to_string(), 2.0)])).expect("metrics");
        assert!((m.rmse - 0.5).abs() < 1e-12 && (m.mse - 0.25).abs() < 1e-12);
        // Last value: rows 1.. use the previous actual; seasonal needs a day of rows.
        let series: Vec<f64> = (0..30).map(|i| 10.0 + (i % 24) as f64).collect();
        let naive = file(0, &series, &series).naive_nrmse(&History::new());
        assert!(naive["down"].last_value.expect("last value") > 0.0);
        assert_eq!(naive["down"].seasonal_naive, Some(0.0), "a daily cycle is seasonal naive's best case");
        // Less than a day of test rows: the history before them gives seasonal naive its lags.
        let test = file(30, &series[..20], &series[..20]);
        assert_eq!(test.naive_nrmse(&History::new())["down"].seasonal_naive, None);
        let history = history_of(&file(0, &series, &series));
        assert!(test.naive_nrmse(&history)["down"].seasonal_naive.is_some());
    }
}
