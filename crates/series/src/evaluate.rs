//! Metrics of predictions against the windows' targets: the contract's
//! definitions, computed in one place.

use std::collections::BTreeMap;

use contracts::Metrics;

use crate::error::SeriesError;
use crate::roles::Roles;
use crate::scaler::Scaler;
use crate::windows::Windows;

/// Scores of one prediction set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Over every (window, step, target), scaled units: what events carry.
    pub scaled: Metrics,
    /// Per target, original units after inverse scaling: what people read.
    pub per_target: BTreeMap<String, Metrics>,
}

/// Running sums of squared and absolute errors.
#[derive(Default)]
struct Acc {
    n: usize,
    sq: f64,
    abs: f64,
}

impl Acc {
    fn add(&mut self, pred: f64, actual: f64) {
        let e = pred - actual;
        self.n += 1;
        self.sq += e * e;
        self.abs += e.abs();
    }

    fn finish(&self) -> Metrics {
        let n = self.n.max(1) as f64;
        let mse = self.sq / n;
        Metrics { mse, rmse: mse.sqrt(), mae: self.abs / n }
    }
}

/// mse, rmse = sqrt(mse) and mae of `pred` against `actual` (same length, not empty).
pub fn metrics(pred: &[f32], actual: &[f32]) -> Result<Metrics, SeriesError> {
    if pred.len() != actual.len() {
        return Err(SeriesError::Shape { what: "predictions".into(), expected: actual.len(), actual: pred.len() });
    }
    if pred.is_empty() {
        return Err(SeriesError::NoWindows("score"));
    }
    let mut acc = Acc::default();
    for (&p, &a) in pred.iter().zip(actual) {
        acc.add(p as f64, a as f64);
    }
    Ok(acc.finish())
}

/// Score `pred` (laid out like [`Windows::y`], scaled units) against `windows`.
pub fn evaluate(pred: &[f32], windows: &Windows, roles: &Roles, scaler: &Scaler) -> Result<Evaluation, SeriesError> {
    windows.check_roles(roles)?;
    let scaled = metrics(pred, &windows.y)?;
    let mut per_target = BTreeMap::new();
    for (j, name) in roles.targets.iter().enumerate() {
        let mut acc = Acc::default();
        for (p, a) in pred.iter().zip(&windows.y).skip(j).step_by(windows.n_targets) {
            acc.add(scaler.inverse_value(name, *p as f64)?, scaler.inverse_value(name, *a as f64)?);
        }
        per_target.insert(name.clone(), acc.finish());
    }
    Ok(Evaluation { scaled, per_target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaler::{ScalerColumn, ScalerKind};

    fn windows() -> Windows {
        // 2 windows, 2 steps, 2 targets: y = [w0s0: 1, 2][w0s1: 3, 4][w1s0: 5, 6][w1s1: 7, 8]
        Windows {
            n: 2,
            input_len: 1,
            output_len: 2,
            n_features: 2,
            n_targets: 2,
            x: vec![0.0; 4],
            y: vec![1., 2., 3., 4., 5., 6., 7., 8.],
            first_target_row: vec![1, 2],
        }
    }

    fn roles() -> Roles {
        Roles {
            timestamp: "t".into(),
            features: vec!["a".into(), "b".into()],
            targets: vec!["a".into(), "b".into()],
            interval_ms: 1,
        }
    }

    fn scaler() -> Scaler {
        Scaler {
            kind: ScalerKind::MinMax,
            columns: vec![ScalerColumn::new("a".into(), 100.0, 10.0), ScalerColumn::new("b".into(), 0.0, 2.0)],
        }
    }

    #[test]
    fn scaled_and_per_target_metrics_by_hand() {
        // errors: target a (positions 0,2,4,6): +1, -1, +2, 0; target b (1,3,5,7): 0, +2, 0, -2
        let pred = [2., 2., 2., 6., 7., 6., 7., 6.];
        let ev = evaluate(&pred, &windows(), &roles(), &scaler()).unwrap();
        // squares: 1 0 1 4 4 0 0 4 = 14 / 8 = 1.75; abs: 1 0 1 2 2 0 0 2 = 8 / 8 = 1
        assert_eq!(ev.scaled.mse, 1.75);
        assert_eq!(ev.scaled.rmse, 1.75f64.sqrt());
        assert_eq!(ev.scaled.mae, 1.0);
        // a in original units: errors x10 -> 10, -10, 20, 0: mse (100+100+400)/4 = 150, mae 40/4 = 10
        let a = ev.per_target["a"];
        assert!((a.mse - 150.0).abs() < 1e-9 && (a.mae - 10.0).abs() < 1e-9, "{a:?}");
        assert!((a.rmse - 150f64.sqrt()).abs() < 1e-9);
        // b: errors x2 -> 0, 4, 0, -4: mse 32/4 = 8, mae 2
        let b = ev.per_target["b"];
        assert!((b.mse - 8.0).abs() < 1e-9 && (b.mae - 2.0).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn shape_errors_are_clear() {
        let e = evaluate(&[1.0; 7], &windows(), &roles(), &scaler()).unwrap_err();
        assert_eq!(e.to_string(), "predictions: expected 8 values, got 7");
        let mut r = roles();
        r.targets.pop();
        let e = evaluate(&[1.0; 8], &windows(), &r, &scaler()).unwrap_err();
        assert_eq!(e.to_string(), "targets per predicted row: expected 1 values, got 2");
        assert!(matches!(metrics(&[], &[]), Err(SeriesError::NoWindows(_))));
    }
}
