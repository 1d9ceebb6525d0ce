//! Naive baselines on exactly the windows a model is scored on: the last
//! observed value, and the value one season (a day) earlier.

use contracts::Baselines;

use crate::error::SeriesError;
use crate::evaluate::evaluate;
use crate::frame::Frame;
use crate::roles::Roles;
use crate::scaler::Scaler;
use crate::windows::Windows;

const DAY_MS: i64 = 86_400_000;

/// Rows in one season (a day) at `interval_ms`; 0 for a non-positive interval.
pub fn season_rows(interval_ms: i64) -> usize {
    if interval_ms <= 0 { 0 } else { (DAY_MS / interval_ms) as usize }
}

/// Every horizon step predicts the last input row's target value.
pub fn last_value_predictions(windows: &Windows, roles: &Roles) -> Result<Vec<f32>, SeriesError> {
    windows.check_roles(roles)?;
    let targets = roles.target_feature_index()?;
    let mut pred = Vec::with_capacity(windows.y.len());
    for w in 0..windows.n {
        let last =
            &windows.x[w * windows.x_stride() + (windows.input_len - 1) * windows.n_features..][..windows.n_features];
        for _ in 0..windows.output_len {
            pred.extend(targets.iter().map(|&t| last[t]));
        }
    }
    Ok(pred)
}

/// Each predicted row gets the target value `season_rows(interval_ms)` rows
/// earlier, looked up in `train ++ test` (`windows` are cut from `test`).
/// `None` when the first predicted row has less than one season of history.
pub fn seasonal_naive_predictions(
    train: &Frame,
    test: &Frame,
    windows: &Windows,
    roles: &Roles,
) -> Result<Option<Vec<f32>>, SeriesError> {
    windows.check_roles(roles)?;
    let season = season_rows(roles.interval_ms);
    if season == 0 {
        return Err(SeriesError::InvalidInterval(roles.interval_ms));
    }
    let Some(&first) = windows.first_target_row.first() else {
        return Err(SeriesError::NoWindows("predict"));
    };
    if train.len() + first < season {
        return Ok(None);
    }
    let columns: Vec<(&[f64], &[f64])> =
        roles.targets.iter().map(|t| Ok((train.require(t)?, test.require(t)?))).collect::<Result<_, SeriesError>>()?;
    let mut pred = Vec::with_capacity(windows.y.len());
    for &row in &windows.first_target_row {
        for step in 0..windows.output_len {
            let target_row = row + step;
            if target_row >= test.len() {
                return Err(SeriesError::Shape {
                    what: "rows of the test frame the windows were cut from".into(),
                    expected: target_row + 1,
                    actual: test.len(),
                });
            }
            // Global row in train ++ test, one season back.
            let src = train.len() + target_row - season;
            pred.extend(columns.iter().map(|(tr, te)| {
                let v = if src < tr.len() { tr[src] } else { te[src - tr.len()] };
                v as f32
            }));
        }
    }
    Ok(Some(pred))
}

/// Both baselines scored like a model (scaled metrics).
pub fn baselines(
    train: &Frame,
    test: &Frame,
    windows: &Windows,
    roles: &Roles,
    scaler: &Scaler,
) -> Result<Baselines, SeriesError> {
    let last = last_value_predictions(windows, roles)?;
    let last_value = evaluate(&last, windows, roles, scaler)?.scaled;
    let seasonal_naive = match seasonal_naive_predictions(train, test, windows, roles)? {
        Some(pred) => Some(evaluate(&pred, windows, roles, scaler)?.scaled),
        None => None,
    };
    Ok(Baselines { last_value, seasonal_naive })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;
    use crate::scaler::ScalerKind;
    use crate::windows::{WindowSpec, make_windows};

    /// A 6-hour interval: a season is 4 rows.
    fn roles() -> Roles {
        Roles {
            timestamp: "timestamp".into(),
            features: vec!["a".into(), "b".into()],
            targets: vec!["b".into()],
            interval_ms: 6 * 3_600_000,
        }
    }

    fn frame(start: i64, b: &[f64]) -> Frame {
        let n = b.len();
        Frame::new(
            (0..n as i64).map(|i| (start + i) * 6 * 3_600_000).collect(),
            vec![Column::new("a", vec![0.0; n]), Column::new("b", b.to_vec())],
        )
        .unwrap()
    }

    #[test]
    fn season_rows_is_a_day() {
        assert_eq!(season_rows(120_000), 720);
        assert_eq!(season_rows(3_600_000), 24);
        assert_eq!(season_rows(0), 0);
    }

    #[test]
    fn last_value_repeats_the_last_input_row() {
        let test = frame(0, &[1., 2., 3., 4., 5.]);
        let w = make_windows(&test, &roles(), WindowSpec { input_len: 2, output_len: 2 }).unwrap();
        // windows: rows 0,1 -> predict 2,3 ; rows 1,2 -> predict 3,4
        assert_eq!(last_value_predictions(&w, &roles()).unwrap(), vec![2., 2., 3., 3.]);
    }

    #[test]
    fn seasonal_naive_looks_back_into_train() {
        let train = frame(0, &[10., 11., 12.]);
        let test = frame(3, &[13., 14., 15., 16.]);
        let w = make_windows(&test, &roles(), WindowSpec { input_len: 1, output_len: 1 }).unwrap();
        // predicted test rows 1, 2, 3 = global 4, 5, 6; a season back: global 0, 1, 2 (all train)
        let pred = seasonal_naive_predictions(&train, &test, &w, &roles()).unwrap();
        assert_eq!(pred, Some(vec![10., 11., 12.]));
        let long_test = frame(3, &[13., 14., 15., 16., 17., 18., 19., 20.]);
        let w = make_windows(&long_test, &roles(), WindowSpec { input_len: 5, output_len: 1 }).unwrap();
        // predicted test rows 5, 6, 7 = global 8, 9, 10 -> 4, 5, 6 = test rows 1, 2, 3
        let pred = seasonal_naive_predictions(&train, &long_test, &w, &roles()).unwrap();
        assert_eq!(pred, Some(vec![14., 15., 16.]));
    }

    #[test]
    fn seasonal_naive_is_absent_without_a_season_of_history() {
        let train = frame(0, &[10., 11.]);
        let test = frame(2, &[12., 13., 14.]);
        let w = make_windows(&test, &roles(), WindowSpec { input_len: 1, output_len: 1 }).unwrap();
        // first predicted row is global 3 < season 4
        assert_eq!(seasonal_naive_predictions(&train, &test, &w, &roles()).unwrap(), None);
        let scaler = Scaler::fit(ScalerKind::MinMax, &train, &roles().features, &[]).unwrap();
        let b = baselines(&train, &test, &w, &roles(), &scaler).unwrap();
        assert!(b.seasonal_naive.is_none());
        // last value: predicts 12 for 13 and 13 for 14: errors 1, 1
        assert_eq!(b.last_value.mse, 1.0);
        assert_eq!(b.last_value.mae, 1.0);
    }

    #[test]
    fn baselines_score_both_on_the_same_windows() {
        let train = frame(0, &[10., 11., 12., 13.]);
        let test = frame(4, &[14., 16., 12.]);
        let w = make_windows(&test, &roles(), WindowSpec { input_len: 1, output_len: 1 }).unwrap();
        let scaler = Scaler::fit(ScalerKind::MinMax, &train, &roles().features, &[]).unwrap();
        let b = baselines(&train, &test, &w, &roles(), &scaler).unwrap();
        // actual 16, 12; last value 14, 16 -> errors 2, 4 -> mse 10, mae 3
        assert_eq!((b.last_value.mse, b.last_value.mae), (10.0, 3.0));
        // seasonal: global rows 5, 6 -> 1, 2 = 11, 12 -> errors 5, 0 -> mse 12.5, mae 2.5
        let s = b.seasonal_naive.unwrap();
        assert_eq!((s.mse, s.rmse, s.mae), (12.5, 12.5f64.sqrt(), 2.5));
    }
}
