//! The pure part of the stage: raw bytes in, processed train and test parts,
//! scaler and roles out. No I/O, so it runs on a blocking thread and in tests.

use bytes::Bytes;
use dataset::RawOptions;
use series::{Column, Frame, ProcessedMeta, Roles, Scaler, WindowSpec};
use tracing::{info, warn};

use crate::clean;
use crate::config::PreprocessConfig;
use crate::error::PreprocessError;

/// Calendar feature names, in the order they are appended.
pub const CALENDAR: [&str; 4] = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"];

/// Column names that make a column the default target (when the config
/// names none), in order of preference, compared case-insensitively; without
/// one the first feature is the target.
pub const TARGET_NAMES: [&str; 3] = ["y", "target", "value"];

/// The target when the config names none: the first feature named as in
/// [`TARGET_NAMES`], else the first feature. `features` must not be empty.
pub fn default_target(features: &[String]) -> String {
    TARGET_NAMES
        .iter()
        .find_map(|t| features.iter().find(|f| f.eq_ignore_ascii_case(t)))
        .unwrap_or(&features[0])
        .clone()
}

/// A raw input: its name (for errors) and bytes, dropped as soon as they are parsed.
#[derive(Debug, Clone)]
pub struct RawInput<'a> {
    pub name: &'a str,
    pub bytes: Bytes,
}

/// What happened to the data, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// The raw input's timestamp column (given, or found).
    pub timestamp_column: String,
    pub rows_in: usize,
    pub resorted: bool,
    pub duplicates_dropped: usize,
    pub slots_added: usize,
    pub values_filled: usize,
    /// Rows inside a gap longer than `clean.fill_limit` (filled, and listed
    /// in `flts.gaps` so that no window uses them), both parts.
    pub long_gap_rows: usize,
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
    /// Long-gap ranges of both parts (`ProcessedMeta::gaps`).
    pub gaps: Vec<[i64; 2]>,
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
    let mut frame = if opts.columns.is_none() {
        // No features named: every column that holds numbers is one.
        let (frame, skipped) = dataset::read_raw_numeric(input.name, &input.bytes, opts)?;
        if !skipped.is_empty() {
            warn!(file = input.name, columns = ?skipped, "columns that hold no number are not features");
        }
        frame
    } else {
        dataset::read_raw(input.name, &input.bytes, opts)?
    };
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
        timestamp_column: config.timestamp_column.clone().unwrap_or_default(),
        columns: (!config.features.is_empty()).then(|| config.features.clone()),
        timestamp_format: config.timestamp_format.clone(),
        timestamp_unit: config.timestamp_unit,
        separator: config.csv_separator as u8,
        decimal_comma: false,
        limits: config.read_limits(),
    };
    let input_name = input.name;
    let read_as = opts.for_file(&input.bytes);
    if (read_as.separator, read_as.decimal_comma) != (opts.separator, opts.decimal_comma) {
        info!(
            file = input_name,
            separator = %(read_as.separator as char).escape_default(),
            decimal_comma = read_as.decimal_comma,
            "the CSV header does not use csv_separator: read with the separator it uses"
        );
    }
    if config.timestamp_column.is_none() {
        opts.timestamp_column = dataset::find_timestamp_column(input_name, &input.bytes, &opts)?;
        info!(file = input_name, column = %opts.timestamp_column, "timestamp column found (timestamp_column unset)");
    }
    stats.timestamp_column = opts.timestamp_column.clone();
    let mut full = load(input, &opts, config, "train", &mut stats)?;
    let features: Vec<String> = full.column_names().map(str::to_string).collect();
    if features.is_empty() {
        return Err(PreprocessError::Data {
            part: "train".into(),
            message: format!("{input_name} has no columns besides `{}`", opts.timestamp_column),
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
    let targets = if config.targets.is_empty() { vec![default_target(&features)] } else { config.targets.clone() };
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

    // Outliers are not clipped here: the trainers clip model inputs only
    // (config.clean.outliers is recorded in the canonical config).
    let c = &config.clean;
    let mut part_gaps: Vec<Vec<[i64; 2]>> = Vec::with_capacity(2);
    for (part, frame) in [("train", &mut train), ("test", &mut test)] {
        // Long runs are filled too, but their rows are recorded, by time
        // (rows may still be trimmed or dropped below).
        let long = clean::ranges(&frame.timestamps, &clean::long_gap_rows(frame, c.fill_limit));
        stats.values_filled += clean::fill(frame, c.fill, c.fill_value);
        if frame.is_empty() {
            return Err(PreprocessError::Data { part: part.into(), message: "no rows".into() });
        }
        let rows = frame.len();
        let trimmed = clean::drop_unfilled(frame, c.drop_unfilled, part)?;
        stats.rows_dropped += trimmed;
        let in_gap = clean::in_ranges(&frame.timestamps, &long);
        let gap_rows = in_gap.iter().filter(|g| **g).count();
        // Rows trimmed because they miss a value at the part's start or end
        // are as unmeasured as a long gap's: a gap that runs across the
        // train/test cut ends one part and starts the other.
        let unmeasured = gap_rows + trimmed;
        if unmeasured as f64 > clean::MAX_LONG_GAP_SHARE * rows as f64 {
            let trimmed_note = if trimmed > 0 {
                format!(" or miss a value at the start or end of the part ({trimmed} of them)")
            } else {
                String::new()
            };
            return Err(PreprocessError::Data {
                part: part.into(),
                message: format!(
                    "mostly gap: {unmeasured} of {rows} rows are in gaps longer than clean.fill_limit = {}\
                     {trimmed_note}; fix the input or raise fill_limit",
                    c.fill_limit
                ),
            });
        }
        if trimmed > 0 {
            warn!(part, rows = trimmed, of = rows, "rows missing a value at the start or end of the part were dropped");
        }
        stats.long_gap_rows += gap_rows;
        part_gaps.push(clean::ranges(&frame.timestamps, &in_gap));
        let spec = WindowSpec { input_len: config.input_len, output_len: config.output_len };
        spec.check_rows(frame.len())
            .map_err(|e| PreprocessError::Data { part: part.into(), message: e.to_string() })?;
        if config.calendar_features {
            add_calendar(frame, config.calendar_utc_offset_minutes);
        }
    }

    let gaps = join_gaps(part_gaps, &train, &test);
    if stats.long_gap_rows > 0 {
        warn!(
            rows = stats.long_gap_rows,
            ranges = gaps.len(),
            fill_limit = c.fill_limit,
            "rows inside gaps longer than clean.fill_limit were filled and are listed in flts.gaps: no window uses them"
        );
    }

    let calendar: Vec<String> = if config.calendar_features { CALENDAR.map(String::from).to_vec() } else { Vec::new() };
    let all_features: Vec<String> = features.iter().chain(&calendar).cloned().collect();
    // The scaler is fitted on measured rows, not on values invented over long gaps.
    let train_in_gap = clean::in_ranges(&train.timestamps, &gaps);
    let measured;
    let fit_on = if train_in_gap.contains(&true) {
        measured = clean::without(&train, &train_in_gap);
        &measured
    } else {
        &train
    };
    let scaler = Scaler::fit(config.scaler, fit_on, &all_features, &calendar)
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
    Ok(Processed { train, test, scaler, roles, gaps, stats })
}

/// The gap ranges of the train and test parts as one sorted list; a range
/// ending on the last training row and one starting on the first test row
/// are one gap.
fn join_gaps(parts: Vec<Vec<[i64; 2]>>, train: &Frame, test: &Frame) -> Vec<[i64; 2]> {
    let (train_end, test_start) = (train.timestamps.last().copied(), test.timestamps.first().copied());
    let mut out: Vec<[i64; 2]> = Vec::new();
    for r in parts.into_iter().flatten() {
        match out.last_mut() {
            Some(last) if Some(last[1]) == train_end && Some(r[0]) == test_start => last[1] = r[1],
            _ => out.push(r),
        }
    }
    out
}

impl Processed {
    /// Encode both parts with their metadata, and the scaler JSON.
    pub fn encode(self, config_hash: &str, canonical: serde_json::Value) -> Result<Encoded, PreprocessError> {
        let Processed { train, test, scaler, roles, gaps, stats } = self;
        let meta = ProcessedMeta { config_hash: config_hash.to_string(), config: canonical, scaler, roles, gaps };
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
    fn separate_test_file_and_outliers_recorded_never_applied() {
        let f = traffic(&Spec { rows: 2_000, gap_every: 0, nan_every: 0, ..Default::default() });
        let mut train = f.slice(0..1_500);
        train.columns[0].values[100] = 1e12; // a spike only in training
        let test = f.slice(1_500..2_000);
        let (a, b) =
            (Bytes::from(dataset::write_raw_csv(&train, "time")), Bytes::from(dataset::write_raw_csv(&test, "time")));
        let run = |patch| {
            process(
                &config(patch),
                RawInput { name: "train.csv", bytes: a.clone() },
                Some(RawInput { name: "test.csv", bytes: b.clone() }),
            )
        };
        let none = run(json!({"clean": {"outliers": "none"}})).unwrap();
        assert_eq!((none.train.len(), none.test.len()), (1_500, 500));
        for outliers in ["percentile", "iqr", "auto"] {
            let p = run(json!({"clean": {"outliers": outliers, "outlier_upper_pct": 99.0}})).unwrap();
            assert_eq!((&p.train, &p.test, &p.scaler), (&none.train, &none.test, &none.scaler), "{outliers}");
        }
        let down = none.scaler.columns.iter().find(|c| c.name == "down").unwrap();
        assert_eq!(down.offset + down.scale, 1e12, "the spike is kept: trainers clip inputs, not preprocess");
        let e = process(
            &config(json!({})),
            RawInput { name: "test.csv", bytes: b },
            Some(RawInput { name: "train.csv", bytes: a }),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("test part: train.csv starts at 2018-03-28 15:56:00, not after the training part ends"),
            "{e}"
        );
    }

    #[test]
    fn defaults_find_the_time_column_and_predict_one_target() {
        let bytes = csv(1_000);
        let p = process(&PreprocessConfig::default(), input(&bytes), None).unwrap();
        assert_eq!(p.stats.timestamp_column, "time");
        assert_eq!(p.roles.timestamp, "timestamp");
        assert_eq!(p.roles.targets, ["down"], "the first numeric column");
        assert_eq!(p.roles.features.len(), 11, "every numeric column is a feature");
        assert_eq!(default_target(&["a".into(), "Value".into(), "target".into()]), "target");
        assert_eq!(default_target(&["a".into(), "VALUE".into()]), "VALUE");
        assert_eq!(default_target(&["a".into(), "y".into(), "target".into()]), "y");
        assert_eq!(default_target(&["a".into(), "b".into()]), "a");
        // A Parquet file whose Datetime column has another name.
        let f = traffic(&Spec { rows: 1_000, ..Default::default() });
        let pq = dataset::write_raw_parquet(&f, "measured_at").unwrap();
        let p = process(&PreprocessConfig::default(), RawInput { name: "g.parquet", bytes: pq.into() }, None).unwrap();
        assert_eq!(p.stats.timestamp_column, "measured_at");
        assert_eq!(p.roles.features.len(), 11);
        // A given name still wins; a wrong one is an error.
        let cfg = |ts: &str| PreprocessConfig { timestamp_column: Some(ts.into()), ..Default::default() };
        let e = process(&cfg("when"), input(&bytes), None).unwrap_err();
        assert!(e.to_string().starts_with("gen.csv: column `when` not found"), "{e}");
    }

    #[test]
    fn long_gaps_are_filled_listed_and_kept_out_of_the_scaler() {
        let spec = Spec { rows: 3_000, gap_every: 0, nan_every: 0, long_gap: Some((1_000, 195)), ..Default::default() };
        let f = traffic(&spec);
        let bytes = dataset::write_raw_csv(&f, "time");
        let p = process(&config(json!({})), input(&bytes), None).unwrap();
        let (first, last) = (f.timestamps[1_000], f.timestamps[1_194]);
        assert_eq!(p.gaps, vec![[first, last]]);
        assert_eq!(p.stats.long_gap_rows, 195);
        assert_eq!(p.train.len() + p.test.len(), 3_000, "no row dropped");
        assert!(p.train.columns.iter().all(|c| c.values.iter().all(|v| v.is_finite())));
        // Linear fill: the rows over the gap lie between its two ends.
        let down = p.train.column("down").unwrap();
        let (lo, hi) = (down[999].min(down[1_195]), down[999].max(down[1_195]));
        assert!(down[1_000..1_195].iter().all(|v| (lo - 1e-12..=hi + 1e-12).contains(v)), "[{lo}, {hi}]");
        let e = p.encode("ab", json!({})).unwrap();
        let (_, meta) = dataset::read_processed(&e.train).unwrap();
        assert_eq!(meta.gaps, vec![[first, last]]);
        // Within the limit: no gap recorded; limit 0: none either.
        let p = process(&config(json!({"clean": {"fill_limit": 195}})), input(&bytes), None).unwrap();
        assert!(p.gaps.is_empty() && p.stats.long_gap_rows == 0);
        let p = process(&config(json!({"clean": {"fill_limit": 0}})), input(&bytes), None).unwrap();
        assert!(p.gaps.is_empty());
        // fill = none leaves the gap: an error, or its rows dropped with drop_unfilled.
        let e = process(&config(json!({"clean": {"fill": "none"}})), input(&bytes), None).unwrap_err();
        assert!(e.to_string().contains("a gap of 195 rows left unfilled by clean.fill = none"), "{e}");
        let p =
            process(&config(json!({"clean": {"fill": "none", "drop_unfilled": true}})), input(&bytes), None).unwrap();
        assert_eq!(p.train.len() + p.test.len(), 3_000 - 195);
        assert!(p.gaps.is_empty(), "dropped rows are no gap");
    }

    #[test]
    fn a_mostly_gap_part_fails_clearly() {
        let spec = Spec { rows: 3_000, gap_every: 0, nan_every: 0, long_gap: Some((500, 1_500)), ..Default::default() };
        let bytes = dataset::write_raw_csv(&traffic(&spec), "time");
        let e = process(&config(json!({})), input(&bytes), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "train part: mostly gap: 1500 of 2400 rows are in gaps longer than clean.fill_limit = 30; fix the \
             input or raise fill_limit"
        );
        // A gap across the train/test cut is trimmed from the end of the
        // training part (and the start of the test part): it counts too.
        let spec_cut = Spec { long_gap: Some((1_000, 2_000)), ..spec };
        let e =
            process(&config(json!({})), input(&dataset::write_raw_csv(&traffic(&spec_cut), "time")), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "train part: mostly gap: 1400 of 2400 rows are in gaps longer than clean.fill_limit = 30 or miss a \
             value at the start or end of the part (1400 of them); fix the input or raise fill_limit"
        );
        // Exactly half is not "mostly".
        let spec = Spec { long_gap: Some((500, 1_200)), ..spec };
        let bytes = dataset::write_raw_csv(&traffic(&spec), "time");
        assert_eq!(process(&config(json!({})), input(&bytes), None).unwrap().stats.long_gap_rows, 1_200);
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
