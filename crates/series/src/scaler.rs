//! [`Scaler`]: per-column `scaled = (x - offset) / scale`, fitted on the
//! training part only, stored as JSON next to the data (see the contract).

use serde::{Deserialize, Serialize};

use crate::error::SeriesError;
use crate::frame::{Column, Frame};
use crate::roles::Roles;

/// How offsets and scales are fitted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScalerKind {
    /// offset = min, scale = max - min: training values land in [0, 1].
    MinMax,
    /// offset = mean, scale = population standard deviation.
    Standard,
}

/// The transform of one column.
///
/// A model's own scaler (`model/scaler.json`) may also carry what its
/// preprocessing candidate chose: `clip`, applied to the model's **inputs** only
/// (never to the actuals a forecast is scored against), and `floor`, applied to
/// its **forecasts** (0 for a column that is never negative in training).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ScalerColumn {
    pub name: String,
    pub offset: f64,
    pub scale: f64,
    /// `[low, high]` in original units: model inputs are clamped to it before scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<[f64; 2]>,
    /// Lowest forecast in original units: forecasts are raised to it after inverse scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
}

impl ScalerColumn {
    /// A plain affine column (no clip, no floor).
    pub fn new(name: String, offset: f64, scale: f64) -> Self {
        ScalerColumn { name, offset, scale, clip: None, floor: None }
    }

    /// `(x - offset) / scale` after clamping `x` to `clip`: a model input.
    pub fn scale_input(&self, x: f64) -> f64 {
        let x = match self.clip {
            Some([lo, hi]) => x.clamp(lo, hi),
            None => x,
        };
        (x - self.offset) / self.scale
    }

    /// `scaled * scale + offset`, raised to `floor`: a forecast in original units.
    pub fn unscale_forecast(&self, scaled: f64) -> f64 {
        let x = scaled * self.scale + self.offset;
        match self.floor {
            Some(floor) => x.max(floor),
            None => x,
        }
    }

    /// `clip` in scaled units, if any, low first (a negative scale swaps them).
    pub fn scaled_clip(&self) -> Option<(f64, f64)> {
        self.clip.map(|[lo, hi]| {
            let (a, b) = ((lo - self.offset) / self.scale, (hi - self.offset) / self.scale);
            (a.min(b), a.max(b))
        })
    }
}

/// A fitted scaler: one entry per feature column, in feature order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Scaler {
    pub kind: ScalerKind,
    pub columns: Vec<ScalerColumn>,
}

/// What processed Parquet carries in its key-value metadata (`flts.*`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProcessedMeta {
    /// SHA-256 hex of the canonical config (`flts.config_hash`).
    pub config_hash: String,
    /// The canonical config (`flts.config`).
    pub config: serde_json::Value,
    /// The scaler fitted on the training part (`flts.scaler`).
    pub scaler: Scaler,
    /// Column roles (`flts.roles`).
    pub roles: Roles,
    /// Rows whose values preprocess invented to fill a gap longer than
    /// `clean.fill_limit` (`flts.gaps`): inclusive `[first, last]` timestamps
    /// (ms UTC) of each run of such rows, sorted, not overlapping, covering
    /// both parts. No window may read or score a row inside one. Empty (and
    /// the key absent) when there are none.
    #[serde(default)]
    pub gaps: Vec<[i64; 2]>,
}

impl Scaler {
    /// Fit one entry per column of `names` on `frame` (the training part).
    /// Columns in `passthrough` (calendar features) get offset 0 and scale 1;
    /// a constant column gets scale 1. Any NaN or infinity is an error naming
    /// its column and row: clean the frame first.
    pub fn fit(
        kind: ScalerKind,
        frame: &Frame,
        names: &[String],
        passthrough: &[String],
    ) -> Result<Scaler, SeriesError> {
        if frame.is_empty() {
            return Err(SeriesError::Empty { what: "frame to fit the scaler on" });
        }
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            if columns.iter().any(|c: &ScalerColumn| &c.name == name) {
                return Err(SeriesError::DuplicateColumn { column: name.clone() });
            }
            let values = frame.require(name)?;
            if passthrough.contains(name) {
                columns.push(ScalerColumn::new(name.clone(), 0.0, 1.0));
                continue;
            }
            if let Some(row) = values.iter().position(|v| !v.is_finite()) {
                return Err(SeriesError::NonFinite { column: name.clone(), row, value: values[row], action: "fitted" });
            }
            let (offset, spread) = match kind {
                ScalerKind::MinMax => {
                    let (min, max) =
                        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    (min, max - min)
                }
                ScalerKind::Standard => {
                    let n = values.len() as f64;
                    let mean = values.iter().sum::<f64>() / n;
                    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
            };
            let scale = if spread > 0.0 && spread.is_finite() { spread } else { 1.0 };
            columns.push(ScalerColumn::new(name.clone(), offset, scale));
        }
        Ok(Scaler { kind, columns })
    }

    fn entry(&self, name: &str) -> Result<&ScalerColumn, SeriesError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| SeriesError::UnknownScalerColumn {
            column: name.to_string(),
            available: self.columns.iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Scale the columns the scaler knows; other columns are copied unchanged.
    /// Every scaler column must be in `frame`.
    pub fn transform(&self, frame: &Frame) -> Result<Frame, SeriesError> {
        for c in &self.columns {
            frame.require(&c.name)?;
        }
        let columns = frame
            .columns
            .iter()
            .map(|col| match self.columns.iter().find(|c| c.name == col.name) {
                Some(s) => Column {
                    name: col.name.clone(),
                    values: col.values.iter().map(|x| (x - s.offset) / s.scale).collect(),
                },
                None => col.clone(),
            })
            .collect();
        Ok(Frame { timestamps: frame.timestamps.clone(), columns })
    }

    /// [`Scaler::transform`] without a copy: scale the known columns of `frame` in place.
    pub fn transform_in_place(&self, frame: &mut Frame) -> Result<(), SeriesError> {
        for c in &self.columns {
            frame.require(&c.name)?;
        }
        for col in &mut frame.columns {
            if let Some(s) = self.columns.iter().find(|c| c.name == col.name) {
                col.values.iter_mut().for_each(|x| *x = (*x - s.offset) / s.scale);
            }
        }
        Ok(())
    }

    /// `(x - offset) / scale` for column `name`.
    pub fn scale_value(&self, name: &str, x: f64) -> Result<f64, SeriesError> {
        let c = self.entry(name)?;
        Ok((x - c.offset) / c.scale)
    }

    /// `scaled * scale + offset` for column `name`: back to original units.
    pub fn inverse_value(&self, name: &str, scaled: f64) -> Result<f64, SeriesError> {
        let c = self.entry(name)?;
        Ok(scaled * c.scale + c.offset)
    }

    /// [`ScalerColumn::scale_input`] for column `name`.
    pub fn scale_input(&self, name: &str, x: f64) -> Result<f64, SeriesError> {
        Ok(self.entry(name)?.scale_input(x))
    }

    /// [`ScalerColumn::unscale_forecast`] for column `name`.
    pub fn unscale_forecast(&self, name: &str, scaled: f64) -> Result<f64, SeriesError> {
        Ok(self.entry(name)?.unscale_forecast(scaled))
    }

    /// Clamp already-scaled model inputs laid out `[.., features.len()]` (feature
    /// fastest, as in [`crate::Windows::x`]) to each feature's scaled `clip`.
    pub fn clip_scaled_inputs(&self, x: &mut [f32], features: &[String]) -> Result<(), SeriesError> {
        let bounds: Vec<Option<(f32, f32)>> = features
            .iter()
            .map(|f| Ok(self.entry(f)?.scaled_clip().map(|(lo, hi)| (lo as f32, hi as f32))))
            .collect::<Result<_, SeriesError>>()?;
        if bounds.iter().all(Option::is_none) || features.is_empty() {
            return Ok(());
        }
        for row in x.chunks_mut(features.len()) {
            for (v, b) in row.iter_mut().zip(&bounds) {
                if let Some((lo, hi)) = b {
                    *v = v.clamp(*lo, *hi);
                }
            }
        }
        Ok(())
    }

    /// The contract's JSON form, compact.
    pub fn to_json(&self) -> String {
        // A struct of strings and finite floats always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse and check the JSON form: finite offsets, finite non-zero scales,
    /// unique names.
    pub fn from_json(s: &str) -> Result<Scaler, SeriesError> {
        let scaler: Scaler = serde_json::from_str(s).map_err(SeriesError::ScalerJson)?;
        scaler.validate()?;
        Ok(scaler)
    }

    /// Check what [`Scaler::from_json`] checks (for scalers built by hand).
    pub fn validate(&self) -> Result<(), SeriesError> {
        for (i, c) in self.columns.iter().enumerate() {
            let reason = if !c.offset.is_finite() {
                Some(format!("offset {} is not finite", c.offset))
            } else if !c.scale.is_finite() || c.scale == 0.0 {
                Some(format!("scale {} is not a finite non-zero number", c.scale))
            } else if c.clip.is_some_and(|[lo, hi]| !(lo.is_finite() && hi.is_finite() && lo <= hi)) {
                Some(format!("clip {:?} is not a finite [low, high]", c.clip))
            } else if c.floor.is_some_and(|f| !f.is_finite()) {
                Some(format!("floor {:?} is not finite", c.floor))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SeriesError::InvalidScaler { column: c.name.clone(), reason });
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(SeriesError::DuplicateColumn { column: c.name.clone() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::new(
            vec![0, 1, 2, 3],
            vec![
                Column::new("a", vec![2.0, 4.0, 6.0, 10.0]),
                Column::new("flat", vec![5.0; 4]),
                Column::new("hour_sin", vec![0.0, 0.5, 1.0, 0.5]),
                Column::new("extra", vec![7.0; 4]),
            ],
        )
        .unwrap()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minmax_fits_min_and_range_and_passes_calendar_columns() {
        let s = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a", "flat", "hour_sin"]), &names(&["hour_sin"]))
            .unwrap();
        assert_eq!(
            s.columns,
            vec![
                ScalerColumn::new("a".into(), 2.0, 8.0),
                ScalerColumn::new("flat".into(), 5.0, 1.0),
                ScalerColumn::new("hour_sin".into(), 0.0, 1.0),
            ]
        );
        let t = s.transform(&frame()).unwrap();
        assert_eq!(t.column("a").unwrap(), &[0.0, 0.25, 0.5, 1.0]);
        assert_eq!(t.column("flat").unwrap(), &[0.0; 4]);
        assert_eq!(t.column("hour_sin").unwrap(), frame().column("hour_sin").unwrap());
        assert_eq!(t.column("extra").unwrap(), &[7.0; 4], "unknown columns are kept");
        let mut in_place = frame();
        s.transform_in_place(&mut in_place).unwrap();
        assert_eq!(in_place, t);
    }

    #[test]
    fn standard_uses_population_std() {
        // a = 2, 4, 6, 10: mean 5.5, deviations -3.5 -1.5 .5 4.5, squares sum 35, /4 = 8.75
        let s = Scaler::fit(ScalerKind::Standard, &frame(), &names(&["a"]), &[]).unwrap();
        assert_eq!(s.columns[0].offset, 5.5);
        assert!((s.columns[0].scale - 8.75f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn round_trip_values_and_json() {
        let s = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a", "flat"]), &[]).unwrap();
        for x in [-3.0, 2.0, 7.25, 1e9] {
            let back = s.inverse_value("a", s.scale_value("a", x).unwrap()).unwrap();
            assert!((back - x).abs() <= 1e-9 * x.abs().max(1.0), "{x} -> {back}");
        }
        let json = s.to_json();
        assert_eq!(
            json,
            r#"{"kind":"minmax","columns":[{"name":"a","offset":2.0,"scale":8.0},{"name":"flat","offset":5.0,"scale":1.0}]}"#
        );
        assert_eq!(Scaler::from_json(&json).unwrap(), s);
        let std = Scaler::fit(ScalerKind::Standard, &frame(), &names(&["a"]), &[]).unwrap();
        assert!(std.to_json().starts_with(r#"{"kind":"standard""#));
    }

    #[test]
    fn clip_applies_to_inputs_and_floor_to_forecasts_only() {
        let mut c = ScalerColumn::new("a".into(), 10.0, 2.0);
        c.clip = Some([10.0, 14.0]);
        c.floor = Some(0.0);
        assert_eq!(c.scale_input(100.0), 2.0, "clamped to 14 before scaling");
        assert_eq!(c.scale_input(12.0), 1.0);
        assert_eq!(c.unscale_forecast(-20.0), 0.0, "-30 raised to the floor");
        assert_eq!(c.unscale_forecast(1.0), 12.0);
        let s = Scaler { kind: ScalerKind::MinMax, columns: vec![c.clone(), ScalerColumn::new("b".into(), 0.0, 1.0)] };
        let mut x = vec![5.0_f32, 5.0, -1.0, -1.0];
        s.clip_scaled_inputs(&mut x, &names(&["a", "b"])).unwrap();
        assert_eq!(x, vec![2.0, 5.0, 0.0, -1.0], "only `a` has a clip, in scaled units [0, 2]");
        // Old scaler files (no clip, no floor) still read, and new fields round-trip.
        let back = Scaler::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert!(
            !Scaler::from_json(r#"{"kind":"minmax","columns":[{"name":"a","offset":0,"scale":1}]}"#)
                .unwrap()
                .to_json()
                .contains("clip")
        );
        let mut bad = s.clone();
        bad.columns[0].clip = Some([3.0, 1.0]);
        assert!(bad.validate().is_err());
        // A negative scale (valid, if never fitted) swaps the scaled bounds: no panic.
        let mut neg = ScalerColumn::new("a".into(), 0.0, -2.0);
        neg.clip = Some([0.0, 4.0]);
        assert_eq!(neg.scaled_clip(), Some((-2.0, 0.0)));
    }

    #[test]
    fn errors_name_the_column_and_row() {
        let mut f = frame();
        f.columns[0].values[2] = f64::NAN;
        let e = Scaler::fit(ScalerKind::MinMax, &f, &names(&["a"]), &[]).unwrap_err();
        assert_eq!(e.to_string(), "column `a` row 2 is NaN: only finite numbers can be fitted");
        let e = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["zz"]), &[]).unwrap_err();
        assert!(e.to_string().starts_with("column `zz` not found"), "{e}");
        let s = Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a"]), &[]).unwrap();
        let e = s.scale_value("b", 1.0).unwrap_err();
        assert_eq!(e.to_string(), "scaler has no column `b` (scaled columns: [\"a\"])");
        let e = Scaler::from_json(r#"{"kind":"minmax","columns":[{"name":"a","offset":0,"scale":0}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid scaler column `a`: scale 0 is not a finite non-zero number");
        assert!(Scaler::from_json(r#"{"kind":"robust","columns":[]}"#).is_err());
        let e = s.transform(&Frame::new(vec![0], vec![]).unwrap()).unwrap_err();
        assert!(e.to_string().starts_with("column `a` not found"), "{e}");
    }

    #[test]
    fn processed_meta_round_trips_through_json() {
        let meta = ProcessedMeta {
            config_hash: "ab".repeat(32),
            config: serde_json::json!({"scaler": "minmax"}),
            scaler: Scaler::fit(ScalerKind::MinMax, &frame(), &names(&["a"]), &[]).unwrap(),
            roles: Roles {
                timestamp: "timestamp".into(),
                features: names(&["a"]),
                targets: names(&["a"]),
                interval_ms: 120_000,
            },
            gaps: vec![[0, 120_000]],
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(serde_json::from_str::<ProcessedMeta>(&json).unwrap(), meta);
    }
}
