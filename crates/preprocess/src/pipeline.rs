//! The pure part of the stage: raw bytes in, processed train and test parts,
//! scaler and roles out. No I/O, so it runs on a blocking thread and in tests.

use bytes::Bytes;
use dataset::RawOptions;
use series::{Column, Frame, ProcessedMeta, Roles, Scaler, WindowSpec};

use crate::clean;
use crate::config::PreprocessConfig;
use crate::error::PreprocessError;

/// Calendar feature names, in the order they are appended.
pub const CALENDAR: [&str; 4] = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"];

/// A raw input: its name (for errors) and bytes, dropped as soon as they are parsed.
#[derive(Debug, Clone)]
pub struct RawInput<'a> {
    pub name: &'a str,
    pub bytes: Bytes,
}

/// What happened to the data, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub rows_in: usize,
    pub resorted: bool,
    pub duplicates_dropped: usize,
    pub slots_added: usize,
    pub values_clipped: usize,
    pub values_filled: usize,
    pub rows_dropped: usize,
    pub train_rows: usize,
    pub test_rows: usize,
}

/// The processed dataset, scaled, ready to encode.
#[derive(Debug, Clone)]
pub struct Processed {
    pub train: Frame,
    pub test: Frame,
    pub scaler: Scaler,
    pub roles: Roles,
    pub stats: Stats,
}

/// The encoded outputs: what gets stored.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub train: Vec<u8>,
    pub test: Vec<u8>,
    pub scaler: Vec<u8>,
    pub stats: Stats,
}

/// Add hour-of-day and day-of-week as sin/cos at `offset_minutes` from UTC.
pub fn add_calendar(frame: &mut Frame, offset_minutes: i32) {
    const DAY: i64 = 86_400_000;
    let tau = std::f64::consts::TAU;
    let mut cols: [Vec<f64>; 4] = std::array::from_fn(|_| Vec::with_capacity(frame.len()));
    for &ts in &frame.timestamps {
        let local = ts.saturating_add(offset_minutes as i64 * 60_000);
        let day_frac = local.rem_euclid(DAY) as f64 / DAY as f64;
        // 1970-01-01 was a Thursday; Monday = 0.
        let dow = (local.div_euclid(DAY) + 3).rem_euclid(7) as f64 + day_frac;
        let (h, d) = (tau * day_frac, tau * dow / 7.0);
        for (c, v) in cols.iter_mut().zip([h.sin(), h.cos(), d.sin(), d.cos()]) {
            c.push(v);
        }
    }
    for (name, values) in CALENDAR.iter().zip(cols) {
        frame.columns.push(Column::new(*name, values));
    }
}

/// Rows `..cut` and `cut..`, moving the data (the tail is the only copy).
fn split_off(mut head: Frame, cut: usize) -> (Frame, Frame) {
    let cut = cut.min(head.len());
    let tail = Frame {
        timestamps: head.timestamps.split_off(cut),
        columns: head
            .columns
            .iter_mut()
            .map(|c| Column { name: c.name.clone(), values: c.values.split_off(cut) })
            .collect(),
    };
    (head, tail)
}

/// Load and clean one part up to (not including) the split.
fn load(
    input: RawInput<'_>,
    opts: &RawOptions,
    config: &PreprocessConfig,
    part: &str,
    stats: &mut Stats,
) -> Result<Frame, PreprocessError> {
    let mut frame = dataset::read_raw(input.name, &input.bytes, opts)?;
    drop(input);
    stats.rows_in += frame.len();
    clean::non_finite_to_nan(&mut frame);
    stats.resorted |= clean::sort(&mut frame, config.clean.sort, part)?;
    stats.duplicates_dropped += clean::drop_duplicates(&mut frame, config.clean.drop_duplicates, part)?;
    Ok(frame)
}

/// Run every step of the config on `input` (and `test_input`, if any).
pub fn process(
    config: &PreprocessConfig,
    input: RawInput<'_>,
    test_input: Option<RawInput<'_>>,
) -> Result<Processed, PreprocessError> {
    let mut stats = Stats::default();
    let mut opts = RawOptions {
        timestamp_column: config.timestamp_column.clone(),
        columns: (!config.features.is_empty()).then(|| config.features.clone()),
        timestamp_format: config.timestamp_format.clone(),
        timestamp_unit: config.timestamp_unit,
        separator: config.csv_separator as u8,
        limits: config.read_limits(),
    };
    let input_name = input.name;
    let mut full = load(input, &opts, config, "train", &mut stats)?;
    let features: Vec<String> = full.column_names().map(str::to_string).collect();
    if features.is_empty() {
        return Err(PreprocessError::Data {
            part: "train".into(),
            message: format!("{input_name} has no columns besides `{}`", config.timestamp_column),
        });
    }
    for name in CALENDAR.iter().filter(|_| config.calendar_features) {
        if features.iter().any(|f| f == name) {
            return Err(PreprocessError::Data {
                part: "train".into(),
                message: format!(
                    "input column `{name}` clashes with a calendar feature; rename it or disable calendar_features"
                ),
            });
        }
    }
    let targets = if config.targets.is_empty() { features.clone() } else { config.targets.clone() };
    if let Some(t) = targets.iter().find(|t| !features.contains(t)) {
        return Err(PreprocessError::Data {
            part: "train".into(),
            message: format!("target `{t}` is not among the input columns {features:?}"),
        });
    }

    let interval = match config.interval_ms {
        Some(i) => i,
        None => clean::detect_interval(&full.timestamps).ok_or_else(|| PreprocessError::Data {
            part: "train".into(),
            message: format!(
                "cannot detect the sampling interval from {} distinct timestamp(s); set interval_ms",
                full.len()
            ),
        })?,
    };
    let anchor = full.timestamps.first().copied().unwrap_or_default();
    let regularize = |f: Frame, part: &str, stats: &mut Stats| -> Result<Frame, PreprocessError> {
        if !config.clean.regularize {
            return Ok(f);
        }
        let (f, added) = clean::regularize(f, interval, anchor, part)?;
        stats.slots_added += added;
        Ok(f)
    };
    full = regularize(full, "train", &mut stats)?;

    let (mut train, mut test) = match test_input {
        Some(t) => {
            // The test file must have the same columns, in the same order.
            opts.columns = Some(features.clone());
            let test_name = t.name;
            let test = load(t, &opts, config, "test", &mut stats)?;
            let test = regularize(test, "test", &mut stats)?;
            if let (Some(&train_end), Some(&test_start)) = (full.timestamps.last(), test.timestamps.first())
                && test_start <= train_end
            {
                return Err(PreprocessError::Data {
                    part: "test".into(),
                    message: format!(
                        "{} starts at {}, not after the training part ends ({})",
                        test_name,
                        clean::show_ts(test_start),
                        clean::show_ts(train_end)
                    ),
                });
            }
            (full, test)
        }
        None => {
            let cut = ((full.len() as f64) * (1.0 - config.test_fraction)).floor() as usize;
            split_off(full, cut)
        }
    };
    if config.sample_train_rows > 0 && train.len() > config.sample_train_rows {
        train = train.slice(train.len() - config.sample_train_rows..train.len());
    }
    if config.sample_test_rows > 0 {
        test = test.slice(0..config.sample_test_rows);
    }

    let bounds = clean::fit_bounds(&train, config.clean.outliers, &config.clean);
    let c = &config.clean;
    for (part, frame) in [("train", &mut train), ("test", &mut test)] {
        stats.values_clipped += clean::clip(frame, &bounds);
        stats.values_filled += clean::fill(frame, c.fill, c.fill_value, c.fill_limit);
        if frame.is_empty() {
            return Err(PreprocessError::Data { part: part.into(), message: "no rows".into() });
        }
        stats.rows_dropped += clean::drop_unfilled(frame, c.drop_unfilled, c.fill_limit, part)?;
        let spec = WindowSpec { input_len: config.input_len, output_len: config.output_len };
        spec.check_rows(frame.len())
            .map_err(|e| PreprocessError::Data { part: part.into(), message: e.to_string() })?;
        if config.calendar_features {
            add_calendar(frame, config.calendar_utc_offset_minutes);
        }
    }

    let calendar: Vec<String> = if config.calendar_features { CALENDAR.map(String::from).to_vec() } else { Vec::new() };
    let all_features: Vec<String> = features.iter().chain(&calendar).cloned().collect();
    let scaler = Scaler::fit(config.scaler, &train, &all_features, &calendar)
        .map_err(|e| PreprocessError::Data { part: "train".into(), message: e.to_string() })?;
    scaler
        .transform_in_place(&mut train)
        .map_err(|e| PreprocessError::Data { part: "train".into(), message: e.to_string() })?;
    scaler
        .transform_in_place(&mut test)
        .map_err(|e| PreprocessError::Data { part: "test".into(), message: e.to_string() })?;
    stats.train_rows = train.len();
    stats.test_rows = test.len();
    let roles = Roles { timestamp: "timestamp".into(), features: all_features, targets, interval_ms: interval };
    Ok(Processed { train, test, scaler, roles, stats })
}

impl Processed {
    /// Encode both parts with their metadata, and the scaler JSON.
    pub fn encode(self, config_hash: &str, canonical: serde_json::Value) -> Result<Encoded, PreprocessError> {
        let Processed { train, test, scaler, roles, stats } = self;
        let meta =
            ProcessedMeta { config_hash: config_hash.to_string(), config: canonical, scaler, roles, gaps: Vec::new() };
        // Each part is dropped once encoded: peak memory is one part in two forms.
        let train_bytes = dataset::write_processed(&train, &meta)?;
        drop(train);
        let test_bytes = dataset::write_processed(&test, &meta)?;
        drop(test);
        Ok(Encoded { train: train_bytes, test: test_bytes, scaler: meta.scaler.to_json().into_bytes(), stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::generate::{Spec, traffic};
    use serde_json::json;

    fn config(patch: serde_json::Value) -> PreprocessConfig {
        let base = json!({"timestamp_column": "time", "targets": ["down", "up"]});
        PreprocessConfig::resolve(&[&base, &patch]).unwrap()
    }

    fn csv(rows: usize) -> Vec<u8> {
        dataset::write_raw_csv(&traffic(&Spec { rows, ..Default::default() }), "time")
    }

    fn input(bytes: &[u8]) -> RawInput<'static> {
        RawInput { name: "gen.csv", bytes: Bytes::copy_from_slice(bytes) }
    }

    #[test]
    fn generated_data_comes_out_regular_finite_and_scaled() {
        let bytes = csv(3_000);
        let p = process(&config(json!({})), input(&bytes), None).unwrap();
        assert_eq!(p.roles.interval_ms, 120_000);
        assert_eq!(p.roles.features.len(), 11);
        assert_eq!(p.roles.targets, ["down", "up"]);
        for part in [&p.train, &p.test] {
            assert!(part.timestamps.windows(2).all(|w| w[1] - w[0] == 120_000), "regular");
            assert!(part.columns.iter().all(|c| c.values.iter().all(|v| v.is_finite())), "finite");
        }
        assert!(p.stats.slots_added > 0 && p.stats.values_filled > 0, "{:?}", p.stats);
        // Min-max on train: every train column spans [0, 1].
        for c in &p.train.columns {
            let (lo, hi) = c.values.iter().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            assert!(lo.abs() < 1e-12 && (hi - 1.0).abs() < 1e-12, "{}: [{lo}, {hi}]", c.name);
        }
        // 80/20 split of the regularised rows, test right after train.
        let total = p.train.len() + p.test.len();
        assert_eq!(p.train.len(), (total as f64 * 0.8).floor() as usize);
        assert_eq!(p.test.timestamps[0] - p.train.timestamps[p.train.len() - 1], 120_000);
        let e = p.encode("ab", json!({})).unwrap();
        let (back, meta) = dataset::read_processed(&e.train).unwrap();
        assert_eq!(back.len(), e.stats.train_rows);
        assert_eq!(meta.roles.targets, ["down", "up"]);
    }

    #[test]
    fn calendar_features_pass_through_the_scaler() {
        let bytes = csv(1_000);
        let p =
            process(&config(json!({"calendar_features": true, "scaler": "standard"})), input(&bytes), None).unwrap();
        assert_eq!(&p.roles.features[11..], CALENDAR);
        let hs = p.scaler.columns.iter().find(|c| c.name == "hour_sin").unwrap();
        assert_eq!((hs.offset, hs.scale), (0.0, 1.0));
        // 2018-03-28 15:56 UTC: hour angle 15.933/24 of a turn.
        let want = (std::f64::consts::TAU * (15.0 + 56.0 / 60.0) / 24.0).sin();
        assert!((p.train.column("hour_sin").unwrap()[0] - want).abs() < 1e-12);
        let down = p.train.column("down").unwrap();
        let mean = down.iter().sum::<f64>() / down.len() as f64;
        assert!(mean.abs() < 1e-9, "standard scaling centres the training part: {mean}");
    }

    #[test]
    fn separate_test_file_and_outliers_fitted_on_train() {
        let f = traffic(&Spec { rows: 2_000, gap_every: 0, nan_every: 0, ..Default::default() });
        let mut train = f.slice(0..1_500);
        train.columns[0].values[100] = 1e12; // a spike only in training
        let test = f.slice(1_500..2_000);
        let (a, b) =
            (Bytes::from(dataset::write_raw_csv(&train, "time")), Bytes::from(dataset::write_raw_csv(&test, "time")));
        let cfg = config(json!({"clean": {"outliers": "percentile", "outlier_upper_pct": 99.0}}));
        let p = process(
            &cfg,
            RawInput { name: "train.csv", bytes: a.clone() },
            Some(RawInput { name: "test.csv", bytes: b.clone() }),
        )
        .unwrap();
        assert_eq!((p.train.len(), p.test.len()), (1_500, 500));
        assert!(p.stats.values_clipped > 0);
        let down = p.scaler.columns.iter().find(|c| c.name == "down").unwrap();
        assert!(down.offset + down.scale < 1e11, "the spike was clipped before scaling: {down:?}");
        let e = process(&cfg, RawInput { name: "test.csv", bytes: b }, Some(RawInput { name: "train.csv", bytes: a }))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("test part: train.csv starts at 2018-03-28 15:56:00, not after the training part ends"),
            "{e}"
        );
    }

    #[test]
    fn sampling_keeps_the_rows_next_to_the_split() {
        let bytes = csv(2_000);
        let full = process(&config(json!({})), input(&bytes), None).unwrap();
        let p =
            process(&config(json!({"sample_train_rows": 300, "sample_test_rows": 50})), input(&bytes), None).unwrap();
        assert_eq!((p.train.len(), p.test.len()), (300, 50));
        assert_eq!(p.train.timestamps[299], full.train.timestamps[full.train.len() - 1]);
        assert_eq!(p.test.timestamps[0], full.test.timestamps[0]);
    }

    #[test]
    fn too_short_and_unknown_columns_are_clear() {
        let bytes = csv(40);
        let e = process(&config(json!({})), input(&bytes), None).unwrap_err();
        assert!(e.to_string().starts_with("test part: series has"), "{e}");
        assert!(e.to_string().ends_with("one window needs input_len+output_len = 11 (10+1)"), "{e}");
        let e = process(&config(json!({"features": ["down", "upp"], "targets": ["down"]})), input(&bytes), None)
            .unwrap_err();
        assert!(e.to_string().starts_with("gen.csv: column `upp` not found"), "{e}");
        let e = process(&config(json!({"targets": ["nope"]})), input(&bytes), None).unwrap_err();
        assert!(e.to_string().starts_with("train part: target `nope` is not among the input columns"), "{e}");
    }
}
