//! The evaluation protocol shared by every model type: the same windows, the
//! same metrics, the same baselines (see `docs/data-contract.md`).

use contracts::Baselines;
use series::{Frame, ProcessedMeta, WindowSpec, Windows};

/// Window settings, identical for every trainer.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Rows of input per window.
    #[arg(long, env = "INPUT_SEQ_LEN", default_value_t = 10)]
    pub input_seq_len: usize,
    /// Rows predicted after each window (multi-step when > 1).
    #[arg(long, env = "OUTPUT_SEQ_LEN", default_value_t = 1)]
    pub output_seq_len: usize,
    /// Share of the training windows held out for validation (early stopping and every choice).
    #[arg(long, env = "VALIDATION_FRACTION", default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Validation blocks: the held-out share is cut into this many equal
    /// blocks, each at the end of one equal stretch of the training part (the
    /// last at its very end), so that validation sees the series' regimes in
    /// about the proportions training does (fewer when a block would be
    /// shorter than a window span). 1 holds out the tail only, as the
    /// published study.
    #[arg(long, env = "VALIDATION_BLOCKS", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub validation_blocks: u16,
}

impl Default for WindowArgs {
    fn default() -> Self {
        WindowArgs { input_seq_len: 10, output_seq_len: 1, validation_fraction: 0.2, validation_blocks: 20 }
    }
}

/// Processed data cut into the windows every model is trained and scored on.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub meta: ProcessedMeta,
    pub train: Frame,
    pub test: Frame,
    pub spec: WindowSpec,
    pub train_windows: Windows,
    pub val_windows: Windows,
    pub test_windows: Windows,
    /// Naive baselines on the test windows (reported beside the test metrics).
    pub baselines: Baselines,
    /// Naive baselines on the validation windows (what choices are compared with).
    pub val_baselines: Baselines,
    /// The share of training windows held out for validation, and in how many
    /// blocks (as cut: fewer than asked when they would be shorter than a window span).
    pub validation_fraction: f64,
    pub validation_blocks: u16,
    /// Train-part rows that are validation targets: no training window touches them.
    pub val_rows: Vec<bool>,
    /// Windows dropped because they touch a long gap (`meta.gaps`): train and validation, test.
    pub gap_windows_dropped: (usize, usize),
}

impl Prepared {
    /// Cut `train` and `test` into windows and score the naive baselines.
    /// Errors name the part that is too short.
    pub fn new(train: Frame, test: Frame, meta: ProcessedMeta, args: &WindowArgs) -> Result<Prepared, String> {
        if !(0.0..1.0).contains(&args.validation_fraction) {
            return Err(format!("VALIDATION_FRACTION must be in [0, 1), got {}", args.validation_fraction));
        }
        let spec = WindowSpec { input_len: args.input_seq_len, output_len: args.output_seq_len };
        let roles = &meta.roles;
        // Windows that read or predict a row filled over a long gap are dropped.
        let cut = |frame: &Frame, part: &str| -> Result<(Windows, usize), String> {
            let all = series::make_windows(frame, roles, spec).map_err(|e| format!("{part} part: {e}"))?;
            let kept = all.without_rows(&series::gap_rows(&frame.timestamps, &meta.gaps));
            if kept.n == 0 {
                return Err(format!("{part} part: every window touches a long gap"));
            }
            let dropped = all.n - kept.n;
            Ok((kept, dropped))
        };
        let (all, train_dropped) = cut(&train, "train")?;
        let series::ValidationSplit { train: train_windows, val: val_windows, val_rows, blocks } = all
            .split_validation(args.validation_fraction, args.validation_blocks as usize, train.len())
            .map_err(|e| format!("train part: {e}"))?;
        if train_windows.n == 0 {
            return Err("train part: no training windows left after the validation split".into());
        }
        let (test_windows, test_dropped) = cut(&test, "test")?;
        let baselines = series::baselines(&train, &test, &test_windows, roles, &meta.scaler)
            .map_err(|e| format!("baselines: {e}"))?;
        // The validation windows were cut from the train part: it is their "test" frame.
        let val_baselines = if val_windows.n == 0 {
            baselines.clone()
        } else {
            series::baselines(&train.slice(0..0), &train, &val_windows, roles, &meta.scaler)
                .map_err(|e| format!("validation baselines: {e}"))?
        };
        Ok(Prepared {
            meta,
            train,
            test,
            spec,
            train_windows,
            val_windows,
            test_windows,
            baselines,
            val_baselines,
            validation_fraction: args.validation_fraction,
            validation_blocks: blocks as u16,
            val_rows,
            gap_windows_dropped: (train_dropped, test_dropped),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use series::{Column, Roles, Scaler, ScalerKind};

    /// `rows` hourly rows starting at hour `start`: `a = i`, `b = 100 + i`
    /// (global row index `i`), `b` the target.
    fn frame(start: usize, rows: usize) -> Frame {
        let idx: Vec<usize> = (start..start + rows).collect();
        Frame::new(
            idx.iter().map(|&i| i as i64 * 3_600_000).collect(),
            vec![
                Column::new("a", idx.iter().map(|&i| i as f64).collect()),
                Column::new("b", idx.iter().map(|&i| 100.0 + i as f64).collect()),
            ],
        )
        .unwrap()
    }

    fn meta() -> ProcessedMeta {
        let names = vec!["a".to_string(), "b".to_string()];
        let scaler = Scaler::fit(ScalerKind::MinMax, &frame(0, 100), &names, &[]).unwrap();
        ProcessedMeta {
            config_hash: "h".into(),
            config: serde_json::json!({}),
            scaler,
            roles: Roles {
                timestamp: "timestamp".into(),
                features: names,
                targets: vec!["b".into()],
                interval_ms: 3_600_000,
            },
            gaps: Vec::new(),
        }
    }

    fn args(input: usize, output: usize, fraction: f64) -> WindowArgs {
        WindowArgs { input_seq_len: input, output_seq_len: output, validation_fraction: fraction, validation_blocks: 1 }
    }

    #[test]
    fn validation_is_the_tail_of_the_train_part_and_test_windows_come_from_the_test_part() {
        let p = Prepared::new(frame(0, 30), frame(30, 15), meta(), &args(10, 1, 0.2)).unwrap();
        // 30 rows -> 20 windows; the last 4 (ceil of 20 * 0.2) validate.
        assert_eq!((p.train_windows.n, p.val_windows.n), (16, 4));
        // Frame rows of the first predicted row: train windows 10..26, validation 26..30.
        assert_eq!(p.train_windows.first_target_row, (10..26).collect::<Vec<_>>());
        assert_eq!(p.val_windows.first_target_row, (26..30).collect::<Vec<_>>());
        // 15 test rows -> 5 test windows predicting test rows 10..15 (global 40..45),
        // nothing of the test part in training or validation.
        assert_eq!(p.test_windows.first_target_row, (10..15).collect::<Vec<_>>());
        // (The frames come scaled from preprocess; these are not, so values are b's.)
        assert_eq!(p.val_windows.y, vec![126.0, 127.0, 128.0, 129.0]);
        assert_eq!(p.test_windows.y[0], 140.0);
        // Last value: every error is one step of b.
        assert!((p.baselines.last_value.mae - 1.0).abs() < 1e-9, "{:?}", p.baselines.last_value);
    }

    #[test]
    fn validation_blocks_are_spread_and_training_never_touches_their_targets() {
        let mut a = args(10, 1, 0.2);
        a.validation_blocks = 4;
        // 230 rows -> 220 windows predicting rows 10..230; 44 validate, in 4 blocks of 11,
        // each at the end of a quarter: windows 44..55, 99..110, 154..165, 209..220.
        let p = Prepared::new(frame(0, 230), frame(230, 15), meta(), &a).unwrap();
        assert_eq!(p.validation_blocks, 4);
        let firsts: Vec<usize> =
            [44, 99, 154, 209].iter().flat_map(|&b| (b + 10..b + 21).collect::<Vec<_>>()).collect();
        assert_eq!(p.val_windows.first_target_row, firsts);
        assert_eq!(p.val_rows.iter().filter(|&&v| v).count(), 44);
        // No training window reads or predicts a validation target row.
        for (i, &first) in p.train_windows.first_target_row.iter().enumerate() {
            assert!((first - 10..=first).all(|r| !p.val_rows[r]), "training window {i} touches validation");
        }
        // The windows that would read a block's targets as inputs are left out too.
        assert_eq!(p.train_windows.n, 220 - 44 - 4 * 10 + 10, "{}", p.train_windows.n);
    }

    #[test]
    fn blocks_shorter_than_a_window_span_are_merged() {
        // 100 windows, 20 validate: 20 blocks of one window would cost training 10
        // windows each; blocks of at least 11 windows leave one block.
        let mut a = args(10, 1, 0.2);
        a.validation_blocks = 20;
        let p = Prepared::new(frame(0, 110), frame(110, 15), meta(), &a).unwrap();
        assert_eq!(p.validation_blocks, 1);
        assert_eq!(p.val_windows.first_target_row, (90..110).collect::<Vec<_>>());
        assert_eq!(p.train_windows.n, 80);
        // 44 validation windows hold 4 blocks of 11, not 20.
        let p = Prepared::new(frame(0, 230), frame(230, 15), meta(), &a).unwrap();
        assert_eq!((p.validation_blocks, p.val_windows.n), (4, 44));
    }

    #[test]
    fn too_few_rows_name_the_part() {
        let e = Prepared::new(frame(0, 10), frame(10, 20), meta(), &args(10, 1, 0.2)).unwrap_err();
        assert!(e.starts_with("train part: series has 10 rows; one window needs"), "{e}");
        let e = Prepared::new(frame(0, 40), frame(40, 11), meta(), &args(10, 2, 0.2)).unwrap_err();
        assert!(e.starts_with("test part: series has 11 rows; one window needs input_len+output_len = 12"), "{e}");
        // One train window: it would all go to validation.
        let e = Prepared::new(frame(0, 11), frame(11, 20), meta(), &args(10, 1, 0.2)).unwrap_err();
        assert_eq!(e, "train part: no training windows left after the validation split");
        let e = Prepared::new(frame(0, 40), frame(40, 20), meta(), &args(10, 1, 1.0)).unwrap_err();
        assert!(e.contains("VALIDATION_FRACTION"), "{e}");
    }

    #[test]
    fn exactly_one_test_window_is_enough() {
        let p = Prepared::new(frame(0, 40), frame(40, 12), meta(), &args(10, 2, 0.2)).unwrap();
        assert_eq!((p.test_windows.n, p.test_windows.y.len()), (1, 2));
    }
}
