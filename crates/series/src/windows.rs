//! Windows: `input_len` rows of every feature followed by `output_len` rows of
//! the targets, as flat row-major `f32` tensors (what the models consume).

use crate::error::SeriesError;
use crate::frame::Frame;
use crate::roles::Roles;

/// Window lengths. The contract's defaults are 10 rows in, 1 row out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub input_len: usize,
    pub output_len: usize,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec { input_len: 10, output_len: 1 }
    }
}

impl WindowSpec {
    /// Rows one window spans (saturating: lengths from input near
    /// `usize::MAX` make a window no series can hold, never an overflow).
    pub fn rows(&self) -> usize {
        self.input_len.saturating_add(self.output_len)
    }

    /// Values of the `x` and `y` tensors of every window of a `rows`-row
    /// frame with `features` and `targets` columns; `None` when that does not
    /// fit in a `usize` (so cannot be allocated).
    pub fn tensor_values(&self, rows: usize, features: usize, targets: usize) -> Option<(usize, usize)> {
        let n = rows.checked_sub(self.rows())?.checked_add(1)?;
        let x = n.checked_mul(self.input_len)?.checked_mul(features)?;
        let y = n.checked_mul(self.output_len)?.checked_mul(targets)?;
        Some((x, y))
    }

    /// Check that `rows` rows hold at least one window.
    pub fn check_rows(&self, rows: usize) -> Result<(), SeriesError> {
        if self.input_len == 0 || self.output_len == 0 {
            return Err(SeriesError::InvalidWindowSpec { input_len: self.input_len, output_len: self.output_len });
        }
        if rows < self.rows() {
            return Err(SeriesError::TooShort {
                rows,
                needed: self.rows(),
                input_len: self.input_len,
                output_len: self.output_len,
            });
        }
        Ok(())
    }
}

/// Every window of a frame, in chronological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    /// Number of windows.
    pub n: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub n_features: usize,
    pub n_targets: usize,
    /// Model input, `[n][input_len][n_features]`, row-major, features in role order.
    pub x: Vec<f32>,
    /// What is predicted, `[n][output_len][n_targets]`, targets in role order.
    pub y: Vec<f32>,
    /// Frame row of each window's first predicted row.
    pub first_target_row: Vec<usize>,
}

/// Cut `frame` into every window of `spec` (stride 1). Window `w` reads rows
/// `w..w+input_len` and predicts rows `w+input_len..w+input_len+output_len`.
pub fn make_windows(frame: &Frame, roles: &Roles, spec: WindowSpec) -> Result<Windows, SeriesError> {
    spec.check_rows(frame.len())?;
    let targets = roles.target_feature_index()?;
    let features: Vec<&[f64]> = roles.features.iter().map(|f| frame.require(f)).collect::<Result<_, _>>()?;
    let target_cols: Vec<&[f64]> = targets.iter().map(|&t| features[t]).collect();
    let (nf, nt) = (features.len(), targets.len());
    let n = frame.len() - spec.rows() + 1;
    let (x_len, y_len) = spec.tensor_values(frame.len(), nf, nt).ok_or(SeriesError::TooLarge {
        what: format!("windows of {} rows over {} rows and {nf} features", spec.rows(), frame.len()),
    })?;
    let mut x = Vec::with_capacity(x_len);
    let mut y = Vec::with_capacity(y_len);
    for w in 0..n {
        for row in w..w + spec.input_len {
            x.extend(features.iter().map(|col| col[row] as f32));
        }
        for row in w + spec.input_len..w + spec.rows() {
            y.extend(target_cols.iter().map(|col| col[row] as f32));
        }
    }
    Ok(Windows {
        n,
        input_len: spec.input_len,
        output_len: spec.output_len,
        n_features: nf,
        n_targets: nt,
        x,
        y,
        first_target_row: (spec.input_len..spec.input_len + n).collect(),
    })
}

/// What [`Windows::split_validation`] cut.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationSplit {
    pub train: Windows,
    pub val: Windows,
    /// The frame rows that are validation targets.
    pub val_rows: Vec<bool>,
    /// Blocks the validation windows were cut into (see [`Windows::usable_blocks`]).
    pub blocks: usize,
}

/// Mark the rows of `timestamps` inside any inclusive `[first, last]` range of
/// `gaps` (the long gaps preprocess filled, `ProcessedMeta::gaps`).
pub fn gap_rows(timestamps: &[i64], gaps: &[[i64; 2]]) -> Vec<bool> {
    timestamps.iter().map(|t| gaps.iter().any(|[a, b]| a <= t && t <= b)).collect()
}

impl Windows {
    /// Values of `x` per window.
    pub fn x_stride(&self) -> usize {
        self.input_len * self.n_features
    }

    /// Values of `y` per window.
    pub fn y_stride(&self) -> usize {
        self.output_len * self.n_targets
    }

    /// Hold out `fraction` of the windows (rounded up) for validation, in
    /// `blocks` equal blocks, each ending one equal stretch of the series (the
    /// last at its very end): a validation set that sees quiet and busy
    /// stretches alike, not only the last days (blocked cross-validation,
    /// Bergmeir & Benitez 2012). One block is the chronological tail. Every
    /// block costs training the `input_len + output_len - 1` windows around it
    /// that read its rows, so a block holds at least `input_len + output_len`
    /// windows: fewer blocks than asked when the validation share is small
    /// ([`Windows::usable_blocks`]). Training
    /// keeps the windows that touch no validation target row, so nothing it
    /// reads or predicts is scored. `rows` is the length of the frame the
    /// windows were cut from. A fraction of 0 gives an empty validation set.
    pub fn split_validation(&self, fraction: f64, blocks: usize, rows: usize) -> Result<ValidationSplit, SeriesError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(SeriesError::InvalidFraction(fraction));
        }
        let n = self.n;
        // The epsilon keeps an exact product (10 * 0.2) from rounding up.
        let n_val = ((n as f64 * fraction - 1e-9).ceil().max(0.0) as usize).min(n);
        let mut in_val = vec![false; n];
        let blocks = if n_val > 0 { self.usable_blocks(n_val, blocks) } else { 0 };
        for k in 0..blocks {
            // Block k: the last windows of stretch k, sized so the blocks add up to n_val.
            let size = n_val * (k + 1) / blocks - n_val * k / blocks;
            let end = n * (k + 1) / blocks;
            in_val[end.saturating_sub(size)..end].iter_mut().for_each(|v| *v = true);
        }
        let mut val_rows = vec![false; rows];
        for i in (0..n).filter(|&i| in_val[i]) {
            let first = self.first_target_row[i].min(rows);
            let end = (first + self.output_len).min(rows);
            val_rows[first..end].iter_mut().for_each(|v| *v = true);
        }
        let val = self.retain(|i| in_val[i]);
        let train = self.retain(|i| !in_val[i] && !self.touches(i, &val_rows));
        Ok(ValidationSplit { train, val, val_rows, blocks })
    }

    /// How many of `asked` blocks `n_val` validation windows are cut into:
    /// at least 1, and each block at least one window span
    /// (`input_len + output_len` windows).
    pub fn usable_blocks(&self, n_val: usize, asked: usize) -> usize {
        let span = self.input_len.saturating_add(self.output_len).max(1);
        asked.min(n_val / span).max(1)
    }

    /// The windows for which `keep(i)` holds (`i` the window's index), in order.
    pub fn retain(&self, keep: impl Fn(usize) -> bool) -> Windows {
        let (xs, ys) = (self.x_stride(), self.y_stride());
        let mut out = Windows {
            n: 0,
            input_len: self.input_len,
            output_len: self.output_len,
            n_features: self.n_features,
            n_targets: self.n_targets,
            x: Vec::new(),
            y: Vec::new(),
            first_target_row: Vec::new(),
        };
        for i in (0..self.n).filter(|&i| keep(i)) {
            out.n += 1;
            out.x.extend_from_slice(&self.x[i * xs..(i + 1) * xs]);
            out.y.extend_from_slice(&self.y[i * ys..(i + 1) * ys]);
            out.first_target_row.push(self.first_target_row[i]);
        }
        out
    }

    /// Whether window `i` reads or predicts any frame row marked in `rows`.
    pub fn touches(&self, i: usize, rows: &[bool]) -> bool {
        let start = self.first_target_row[i] - self.input_len;
        let end = (self.first_target_row[i] + self.output_len).min(rows.len());
        rows.get(start..end).is_some_and(|r| r.iter().any(|&b| b))
    }

    /// The windows that touch no marked row (see [`gap_rows`]): nothing is
    /// trained or scored on values invented to fill a long gap.
    pub fn without_rows(&self, rows: &[bool]) -> Windows {
        if !rows.iter().any(|&b| b) {
            return self.clone();
        }
        self.retain(|i| !self.touches(i, rows))
    }

    /// Check that this set was cut with `roles` (feature and target counts).
    pub(crate) fn check_roles(&self, roles: &Roles) -> Result<(), SeriesError> {
        for (what, expected, actual) in [
            ("features per window row", roles.features.len(), self.n_features),
            ("targets per predicted row", roles.targets.len(), self.n_targets),
        ] {
            if expected != actual {
                return Err(SeriesError::Shape { what: what.into(), expected, actual });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;

    fn roles() -> Roles {
        Roles {
            timestamp: "timestamp".into(),
            features: vec!["a".into(), "b".into()],
            targets: vec!["b".into()],
            interval_ms: 1000,
        }
    }

    fn frame(rows: usize) -> Frame {
        Frame::new(
            (0..rows as i64).map(|i| i * 1000).collect(),
            vec![
                Column::new("a", (0..rows).map(|i| i as f64).collect()),
                Column::new("b", (0..rows).map(|i| 100.0 + i as f64).collect()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn windows_hold_inputs_then_targets() {
        let w = make_windows(&frame(5), &roles(), WindowSpec { input_len: 2, output_len: 2 }).unwrap();
        assert_eq!((w.n, w.n_features, w.n_targets), (2, 2, 1));
        assert_eq!(w.x, vec![0., 100., 1., 101., 1., 101., 2., 102.]);
        assert_eq!(w.y, vec![102., 103., 103., 104.]);
        assert_eq!(w.first_target_row, vec![2, 3]);
    }

    #[test]
    fn windows_touching_a_gap_are_dropped() {
        let f = frame(10);
        let w = make_windows(&f, &roles(), WindowSpec { input_len: 2, output_len: 1 }).unwrap();
        assert_eq!(w.n, 8);
        // Rows 4 and 5 (timestamps 4000..=5000) were a long gap.
        let rows = gap_rows(&f.timestamps, &[[4000, 5000]]);
        assert_eq!(rows.iter().filter(|&&b| b).count(), 2);
        let kept = w.without_rows(&rows);
        // Windows read rows w..w+2 and predict row w+2: those of w = 2..=5 touch row 4 or 5.
        assert_eq!(kept.first_target_row, vec![2, 3, 8, 9]);
        assert_eq!(kept.n, 4);
        assert_eq!(kept.y, vec![102., 103., 108., 109.]);
        assert_eq!(&kept.x[kept.x_stride() * 2..kept.x_stride() * 3], &[6., 106., 7., 107.]);
        assert_eq!(w.without_rows(&[false; 10]), w);
    }

    #[test]
    fn exactly_one_window() {
        let w = make_windows(&frame(11), &roles(), WindowSpec::default()).unwrap();
        assert_eq!(w.n, 1);
        assert_eq!(w.x.len(), 20);
        assert_eq!(w.y, vec![110.0]);
        assert_eq!(w.first_target_row, vec![10]);
    }

    #[test]
    fn too_short_says_how_many_rows_are_needed() {
        let e = make_windows(&frame(10), &roles(), WindowSpec::default()).unwrap_err();
        assert_eq!(e.to_string(), "series has 10 rows; one window needs input_len+output_len = 11 (10+1)");
        let e = make_windows(&frame(10), &roles(), WindowSpec { input_len: 0, output_len: 1 }).unwrap_err();
        assert!(matches!(e, SeriesError::InvalidWindowSpec { .. }));
        let mut r = roles();
        r.features.push("nope".into());
        let e = make_windows(&frame(20), &r, WindowSpec::default()).unwrap_err();
        assert!(e.to_string().starts_with("column `nope` not found"), "{e}");
    }

    #[test]
    fn lengths_near_usize_max_are_an_error_not_an_overflow() {
        for (input_len, output_len) in [(usize::MAX, 1), (1, usize::MAX), (usize::MAX, usize::MAX), (usize::MAX / 2, 3)]
        {
            let spec = WindowSpec { input_len, output_len };
            let e = make_windows(&frame(20), &roles(), spec).unwrap_err();
            assert!(matches!(e, SeriesError::TooShort { .. }), "{e}");
            assert!(spec.check_rows(usize::MAX - 1).is_err() || spec.rows() < usize::MAX);
        }
        let big = WindowSpec { input_len: 1 << 40, output_len: 1 };
        assert_eq!(big.tensor_values(1 << 41, 1 << 20, 1), None);
        assert_eq!(WindowSpec { input_len: 2, output_len: 1 }.tensor_values(5, 3, 1), Some((18, 3)));
    }

    #[test]
    fn validation_is_the_chronological_tail() {
        let w = make_windows(&frame(20), &roles(), WindowSpec { input_len: 1, output_len: 1 }).unwrap();
        assert_eq!(w.n, 19);
        let split = w.split_validation(0.2, 1, 20).unwrap();
        let (train, val) = (&split.train, &split.val);
        // 19 * 0.2 = 3.8 -> 4 validation windows
        assert_eq!((train.n, val.n), (15, 4));
        assert_eq!(val.first_target_row, vec![16, 17, 18, 19]);
        assert_eq!(val.y, vec![116., 117., 118., 119.]);
        assert_eq!(train.x.len(), 15 * 2);
        let split = w.split_validation(0.0, 1, 20).unwrap();
        assert_eq!((split.train.n, split.val.n), (19, 0));
        assert!(w.split_validation(1.0, 1, 20).is_err());
        assert!(w.split_validation(f64::NAN, 1, 20).is_err());
        let ten = make_windows(&frame(11), &roles(), WindowSpec { input_len: 1, output_len: 1 }).unwrap();
        let split = ten.split_validation(0.2, 1, 11).unwrap();
        assert_eq!((split.train.n, split.val.n), (8, 2), "an exact product is not rounded up");
    }
}
